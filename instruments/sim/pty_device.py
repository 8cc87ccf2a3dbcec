"""A simulated serial device on a real pty: the driver under test cannot tell it from hardware.

``os.openpty()`` gives a master/slave pair; the slave (``/dev/pts/N``) is put in raw mode
and its path published as ``path``; a thread reads requests from the master, cuts them
with a framing object, asks the subclass for a reply and writes it back. The simulator
keeps its own slave fd open, so the pty lives while clients come and go.

Faults come from a ``FaultPlan``: at each request the simulator calls
``plan.take(name, now_s())`` and records every fault it acts on with ``plan.record``.
The base handles ``timeout``/``dropout`` (no reply), ``garbled``, ``truncated`` and
``vanish`` (the pty closes and a new one appears under another path, optionally after
``params["gap_s"]`` seconds of real time with no device at all); subclasses handle the
rest in ``before_request`` (e.g. ``pump_alarm``) and ``corrupt`` (e.g. ``crc_error``).

Usage::

    with NE1000Sim(plan=plan) as sim:           # start() ... stop()
        link = SerialLink("pump", lambda: sim.path, StxEtxFraming())
"""

from __future__ import annotations

import os
import select
import threading
import time
import tty
from typing import Callable

from instruments.sim.clients import ClientLog, device_id, flock_holder
from instruments.sim.faults import Fault, FaultPlan
from instruments.transport.framing import Framing

NO_REPLY_KINDS = ("timeout", "dropout")
REPLY_FAULT_KINDS = ("garbled", "truncated", "crc_error")


class PtyDevice:
    """Base class; subclasses implement ``handle`` and optionally ``tick``, ``before_request``, ``corrupt``."""

    GARBLE_KEEP_TAIL = 1  # bytes of terminator a garbled reply keeps (2 for CR LF lines)

    def __init__(
        self,
        name: str,
        request_framing: Framing,
        *,
        plan: FaultPlan | None = None,
        now_s: Callable[[], float] = time.monotonic,
        poll_s: float = 0.01,
    ) -> None:
        self.name = name
        self.plan = plan or FaultPlan()
        self.now_s = now_s
        self.lock = threading.RLock()  # guards the subclass's device state
        self.requests: list[bytes] = []
        self.clients = ClientLog()  # bytes received per client pid (the flock on the slave names it)
        self._slave_key = ""
        self._framing = request_framing
        self._poll_s = poll_s
        self._master: int | None = None
        self._slave: int | None = None
        self._path: str | None = None
        self._reappear_at: float | None = None
        self._vanish_gap_s: float | None = None
        self._path_changed = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------
    @property
    def path(self) -> str | None:
        """The slave device path now (``/dev/pts/N``), or None while vanished."""
        return self._path

    def start(self) -> "PtyDevice":
        if self._thread is not None:
            raise RuntimeError(f"{self.name}: already started")
        self._open_pty()
        self._thread = threading.Thread(target=self._run, name=f"pty-sim-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and close every fd; safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self._close_pty()

    def __enter__(self) -> "PtyDevice":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def vanish(self, gap_s: float = 0.0, wait_s: float = 2.0) -> str | None:
        """Close the pty and reappear under a new path (after ``gap_s``); return the new path."""
        self._path_changed.clear()
        self._vanish_gap_s = gap_s
        self._path_changed.wait(wait_s)
        return self._path

    # -- subclass hooks -----------------------------------------------------------------
    def handle(self, request: bytes) -> bytes | None:
        """The reply to one framed request (None: stay silent)."""
        raise NotImplementedError

    def tick(self, now_s: float) -> None:
        """Called every poll and before each request: advance simulated physics."""

    def before_request(self, fault: Fault, now_s: float) -> str | None:
        """Act on a device-specific fault before handling; return a log detail, or None if n/a."""
        return None

    def corrupt(self, kind: str, reply: bytes) -> bytes | None:
        """The reply damaged by ``kind`` (garbled/truncated/crc_error), or None if n/a."""
        if kind == "garbled":
            keep = self.GARBLE_KEEP_TAIL
            return reply[:1] + b"\xff" * (len(reply) - 1 - keep) + reply[-keep:] if len(reply) > keep + 1 else b"\xff"
        if kind == "truncated":
            return reply[: len(reply) // 2]
        return None

    # -- the serving thread -------------------------------------------------------------
    def _run(self) -> None:
        buffer = bytearray()
        while not self._stop.is_set():
            if self._vanish_gap_s is not None:
                self._do_vanish(self._vanish_gap_s)
                self._vanish_gap_s = None
                buffer.clear()
            if self._reappear_at is not None and time.monotonic() >= self._reappear_at:
                self._open_pty()
            master = self._master
            if master is None:
                time.sleep(self._poll_s)
                continue
            readable, _, _ = select.select([master], [], [], self._poll_s)
            if readable:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    continue
                self.clients.received(len(chunk), flock_holder(self._slave_key))
                buffer += chunk
                while (request := self._framing.extract(buffer)) is not None:
                    self._serve(request)
                    if self._master != master:  # vanished while serving
                        buffer.clear()
                        break
            with self.lock:
                self.tick(self.now_s())

    def _serve(self, request: bytes) -> None:
        now_s = self.now_s()
        self.requests.append(request)
        faults = self.plan.take(self.name, now_s)
        for fault in faults:
            if fault.kind == "vanish":
                old = self._path
                self._do_vanish(float(fault.params.get("gap_s", 0.0)))
                self.plan.record(fault, now_s, f"{old} -> {self._path or 'gone'}")
                return
            if fault.kind in NO_REPLY_KINDS:
                self.plan.record(fault, now_s, f"no reply to {request!r}")
                return
        with self.lock:
            self.tick(now_s)
            for fault in faults:
                if fault.kind not in REPLY_FAULT_KINDS and (detail := self.before_request(fault, now_s)) is not None:
                    self.plan.record(fault, now_s, detail)
            reply = self.handle(request)
        if reply is None:
            return
        for fault in faults:
            if fault.kind in REPLY_FAULT_KINDS and (damaged := self.corrupt(fault.kind, reply)) is not None:
                self.plan.record(fault, now_s, f"{reply!r} -> {damaged!r}")
                reply = damaged
        self._write(reply)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and self._master is not None:
            try:
                view = view[os.write(self._master, view) :]
            except OSError:
                return

    # -- pty management -----------------------------------------------------------------
    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        self._master, self._slave, self._path = master, slave, os.ttyname(slave)
        self._slave_key = device_id(slave)
        self._reappear_at = None
        self._path_changed.set()

    def _do_vanish(self, gap_s: float) -> None:
        """Open the new pty before closing the old one, so the new path is a different one."""
        old_master, old_slave = self._master, self._slave
        if gap_s > 0:
            self._master = self._slave = self._path = None
            self._reappear_at = time.monotonic() + gap_s
            for fd in (old_master, old_slave):
                _close(fd)
            self._path_changed.set()
            return
        self._open_pty()
        for fd in (old_master, old_slave):
            _close(fd)

    def _close_pty(self) -> None:
        master, slave = self._master, self._slave
        self._master = self._slave = self._path = None
        for fd in (master, slave):
            _close(fd)


def _close(fd: int | None) -> None:
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass
