"""`chiptwin demo`: the simulated liver4 rig, the closed-loop protocol, and its summary against the truth.

Public face: ``setup.prepare_store`` / ``setup.run_demo`` and ``summary.summary_tables``.
"""
