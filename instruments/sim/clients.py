"""Who talks to a simulated device: bytes received, connections, and the client processes.

Tests of "one rig, one owner" need to know not just *that* bytes arrived but *whose* they
were. On Linux the simulators can tell without the client's help:

- a pty client (pyserial with ``exclusive=True``, as ``SerialLink`` opens ports) holds an
  flock on the slave device, listed with its pid in ``/proc/locks``;
- a TCP client's socket is found in ``/proc/net/tcp`` by its address and port, and its
  inode in some process's ``/proc/PID/fd``.

Where that is not possible (no /proc, a client without the lock) the bytes are counted
under an unknown client (pid None).
"""

from __future__ import annotations

import os
import threading
from collections import Counter


class ClientLog:
    """Thread-safe tallies: bytes received per client pid (None: unknown) and connections accepted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.bytes_by_pid: Counter[int | None] = Counter()
        self.connections = 0

    def received(self, n_bytes: int, pid: int | None) -> None:
        with self._lock:
            self.bytes_by_pid[pid] += n_bytes

    def connected(self) -> None:
        with self._lock:
            self.connections += 1

    @property
    def bytes_received(self) -> int:
        with self._lock:
            return sum(self.bytes_by_pid.values())

    def pids(self) -> set[int]:
        """The client processes identified so far."""
        with self._lock:
            return {pid for pid in self.bytes_by_pid if pid is not None}


def device_id(fd: int) -> str:
    """The ``MAJ:MIN:INODE`` key (hex device numbers) under which ``/proc/locks`` lists the file."""
    st = os.fstat(fd)
    return f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"


def flock_holder(key: str) -> int | None:
    """The pid holding an flock on the file with ``device_id`` ``key``, or None."""
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            for line in locks:
                fields = line.split()  # "1: FLOCK  ADVISORY  WRITE 12345 00:1a:3 0 EOF"
                if "->" in fields or "FLOCK" not in fields or key not in fields:
                    continue  # "->": a waiter, not the holder
                return int(fields[fields.index(key) - 1])
    except (OSError, ValueError):
        return None
    return None


def _hex_address(ip: str, port: int) -> str:
    """``/proc/net/tcp``'s spelling of an IPv4 address and port (address bytes little-endian)."""
    octets = [int(part) for part in ip.split(".")]
    return "".join(f"{o:02X}" for o in reversed(octets)) + f":{port:04X}"


def tcp_client_pid(client: tuple[str, int], server: tuple[str, int]) -> int | None:
    """The local process whose socket is ``client`` connected to ``server`` (IPv4), or None."""
    local, remote = _hex_address(*client), _hex_address(*server)
    inode = None
    try:
        with open("/proc/net/tcp", encoding="ascii") as table:
            for line in table:
                fields = line.split()
                if len(fields) > 9 and fields[1] == local and fields[2] == remote:
                    inode = fields[9]
                    break
    except (OSError, ValueError):
        return None
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return int(pid)
        except OSError:
            continue  # gone, or another user's
    return None
