"""ChipTwin protocols layer (see DESIGN.md).

The protocol language (``protocols.language``: TOML files and the equivalent Python
objects, checked against a rig with line-precise errors), its dry run on the twin
(``protocols.dry_run``) and ``chiptwin protocol check`` (``protocols.cli_protocol``).
See docs/protocols.md.
"""
