"""The closed loop: calibrate, propose, approve, execute — on the rig, once per step index.

Public face: ``steps`` (the four loop steps the runner executes). ``decide`` is the thinking (fit,
design, approval policy) and ``lab_data`` turns the store into the lab dataset the fit uses.
"""
