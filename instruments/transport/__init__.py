"""Transports move bytes and log them; drivers above them know only their command set.

Serial side: ``framing`` (where a reply ends), ``serial_link`` (pyserial, retries, health,
re-finding a re-enumerated USB adapter), ``scripted`` (a fake for byte-exact tests).
Every third-party exception is mapped into ``instruments.errors`` here, once.
"""
