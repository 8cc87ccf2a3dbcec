"""A TCP proxy for store-outage tests: the database "restarts" for this test's clients only.

``down()`` drops every proxied connection and refuses new ones (accepted, then closed at
once, as a server that is starting up does) until ``up()``; the shared PostgreSQL server is
never touched. One accept thread and one thread per connection, all joined by ``stop()``.
"""

from __future__ import annotations

import select
import socket
import threading

SLICE_S = 0.05


class TcpProxy:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._down = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, name="tcp-proxy-accept", daemon=True)

    def start(self) -> TcpProxy:
        self._acceptor.start()
        return self

    def down(self) -> None:
        self._down.set()
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            _close(*pair)

    def up(self) -> None:
        self._down.clear()

    def stop(self) -> None:
        self._stop.set()
        self.down()
        self._acceptor.join(5.0)
        self._listener.close()
        for thread in self._threads:
            thread.join(5.0)

    def _accept(self) -> None:
        while not self._stop.is_set():
            if not select.select([self._listener], [], [], SLICE_S)[0]:
                continue
            client, _ = self._listener.accept()
            if self._down.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5.0)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            thread = threading.Thread(target=self._pipe, args=(client, upstream), name="tcp-proxy-pipe", daemon=True)
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()

    def _pipe(self, client: socket.socket, upstream: socket.socket) -> None:
        peers = {client: upstream, upstream: client}
        try:
            while not self._stop.is_set():
                readable = select.select(list(peers), [], [], SLICE_S)[0]
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except (OSError, ValueError):  # closed by down(): the connection is gone, as in a restart
            return
        finally:
            _close(client, upstream)


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
