"""Acquisition: every channel polled at its period, flagged, batched to a sink.

Public face: ``poller.Poller`` (with ``types.Channel``, ``Reading``, ``ReadingQuality``), ``batch``
(flush every N readings or T seconds) and ``check.check_sequences`` (was every reading delivered once).
"""
