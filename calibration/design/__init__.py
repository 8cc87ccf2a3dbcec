"""Experiment design: what to do next, ranked by what it is expected to teach.

Public face: ``rank.Designer`` / ``Proposal`` and ``space.load_space`` (the design space file).
Parts: ``posterior``, ``sensitivity``, ``update``; ``insilico`` runs experiments on the twin instead.
"""
