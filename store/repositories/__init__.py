"""The only code that reads and writes runs, fits and proposals.

``runs``, ``fits`` and ``proposals`` each take a connection for writes (so a row and its audit
entry commit together, in the caller's transaction) and an engine or connection for reads, and
return typed rows (the SQLModel classes of ``store.schema``), never raw tuples.
"""
