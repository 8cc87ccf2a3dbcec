"""Classical PK (MODELS.md §1): NONMEM dosing semantics, exact linear solutions, an integrator.

from twin.pk import simulate_dataset
out = simulate_dataset("data.csv", "oral_1cpt", {"ka": 1.5, "cl": "1.1 L/h", "v": 20, "f2": "@bioav"})
"""

from twin.pk.ode import Integrator
from twin.pk.params import dosing_parameter_names
from twin.pk.sensitivity import DatasetModel, central_difference
from twin.pk.simulate import predict, simulate_dataset

__all__ = ["DatasetModel", "Integrator", "central_difference", "dosing_parameter_names", "predict", "simulate_dataset"]
