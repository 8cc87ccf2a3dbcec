"""The computational twin: models of MODELS.md, their simulation, IVIVE and virtual patients.

The twin imports nothing else of the project (an import-linter contract holds this), so
calibration, the simulated rig and the panel can all stand on it.
"""
