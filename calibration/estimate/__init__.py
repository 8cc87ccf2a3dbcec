"""Estimation: individual, pooled and population fits (Fisher scoring, FOCE-I, SAEM).

Public face: ``lab_fit.fit_lab`` (organ-chip lab data) and ``nonmem_fit.fit_nonmem`` (NONMEM-style data).
Their engines: ``individual``, ``scoring``, ``chip_jacobian``, ``population``, ``foce_gradient``, ``saem``,
``sequential`` (warm-started updates as readings arrive) and ``error_models``.
"""
