"""Dose optimisation under posterior uncertainty, for a patient or a chip (``optimise``)."""
