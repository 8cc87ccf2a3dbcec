"""The autouse leak check of tests/conftest.py sees what it is meant to see."""

from __future__ import annotations

import socket
import threading

import psutil

from tests.conftest import _children, _leftovers, _listening


def test_the_leak_check_sees_a_thread_and_a_port_left_behind():
    """The check could pass by never seeing anything: a planted thread and listening socket are named."""
    me = psutil.Process()
    threads, children, ports = set(threading.enumerate()), {p.pid for p in _children(me)}, _listening(me)
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait, name="planted-leak")
    worker.start()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    try:
        left = _leftovers(threads, children, ports)
        assert "thread 'planted-leak'" in left and f"listening port {server.getsockname()[1]}" in left
    finally:
        stop.set()
        worker.join()
        server.close()
    assert _leftovers(threads, children, ports) == []
