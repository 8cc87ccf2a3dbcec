"""A rig: the TOML file that describes it, its checks, and the driver objects it opens.

Public face: ``model.load_rig`` / ``Rig`` / ``open_rig`` / ``endpoints_resolver``, ``factory.rig_file_resolver``
and ``health.check_rig`` (what `chiptwin devices check` reports). ``schema``, ``validate`` and ``toml_lines``
are the file's shape, its whole-rig checks and its line numbers.
"""
