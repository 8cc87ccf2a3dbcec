"""The lab's SiLA 2 server: the run queue, channel reads and signed proposal decisions for lab schedulers.

Features are defined in FDL files (features/*.sila.xml) and served by the ``sila2`` package; every
method goes through the same code as the CLI and the panel (protocols.lab.queueing, ui.panel.decisions,
the store's repositories). Start it with ``python -m ui.endpoints.sila --db URL --address HOST:PORT``;
see docs/sila.md.
"""
