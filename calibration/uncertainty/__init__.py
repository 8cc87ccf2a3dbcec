"""Honest uncertainty: the observed information, profile likelihood, MCMC, and the fit review.

Public face: ``information`` (intervals from the Hessian), ``profile`` (profile likelihood), ``mcmc``
(emcee on request) and ``review`` (data against prediction, residuals, profiles).
"""
