"""Data in and results out: datasets, the lab format, NONMEM problems, PEtab, fit records, plots.

Public face: ``datasets.detect_format`` / ``load_nonmem``, ``lab`` (lab dataset to chip problems),
``record.FitRecord`` (a fit as stored), ``petab`` (export/import) and ``plots`` (PNG figures).
"""
