"""Running a protocol on a rig: the runner, its intent log, interlocks, requests and records.

Public face: ``runner.Runner``. Its parts: ``step_exec`` (what each step does), ``intents`` (write-ahead
dose log), ``interlocks`` (evaluated on every reading), ``requests`` (panel requests as rows),
``acquire`` (the acquisition sink), ``record`` (what a run writes), ``control``, ``notify``, ``bench``.
"""
