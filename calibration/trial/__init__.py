"""Virtual control arms (#14 item 3): trials of virtual patients or chips, analysed with PROCOVA.

PROCOVA (Schuler et al. 2021; EMA qualification opinion 2022) is an ANCOVA on each subject's
twin-predicted control outcome. The public face:

- ``load_trial_design`` / ``TrialDesign`` — the strict trial file (trial_file.py);
- ``simulate_trials``, ``procova_size_keeping_power`` — many trials at once (simulate.py);
- ``analyze_trial``, ``load_trial_data`` — one real trial's data (analyze.py);
- ``sample_size`` — sizes with and without the prognostic covariate (size.py).
"""

from calibration.trial.analyze import Effect, TrialAnalysis, analyze_trial, load_trial_data
from calibration.trial.errors import TrialError
from calibration.trial.simulate import (
    Estimates,
    SimulatedTrials,
    SizeKeepingPower,
    analyse_arms,
    procova_size_keeping_power,
    simulate_trials,
)
from calibration.trial.size import ArmSizes, SizeResult, sample_size, t_test_power
from calibration.trial.trial_file import TrialDesign, load_trial_design, trial_design_from_dict

__all__ = [
    "ArmSizes",
    "Effect",
    "Estimates",
    "SimulatedTrials",
    "SizeKeepingPower",
    "SizeResult",
    "TrialAnalysis",
    "TrialDesign",
    "TrialError",
    "analyse_arms",
    "analyze_trial",
    "load_trial_data",
    "load_trial_design",
    "procova_size_keeping_power",
    "sample_size",
    "simulate_trials",
    "t_test_power",
    "trial_design_from_dict",
]
