"""ChipTwin protocols layer (see DESIGN.md).

The protocol language (``protocols.language.api``: TOML files and the equivalent Python
objects, checked against a rig with line-precise errors), its dry run on the twin
(``protocols.language.dry_run``) and ``chiptwin protocol check`` (``ui.cli.protocol``).
See docs/protocols.md.
"""
