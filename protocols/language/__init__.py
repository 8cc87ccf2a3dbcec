"""The protocol language: parse, validate and dry-run a protocol against a rig.

Public face: ``api`` (``load_protocol``, ``parse_protocol``, ``check_protocol``, the step types) and
``dry_run.dry_run``. The other modules are its parts: steps and fields, quantities, interlock rules,
plumbing (which pump serves a chip), the timeline, and the rig as the language sees it.
"""
