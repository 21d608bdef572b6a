"""A loopback TCP proxy that can take a server away and bring it back, for outage tests.

While `down`, every open connection is cut and new ones are closed as soon as they are accepted, as a
store behind a failed load balancer would look to its clients; the server behind keeps its data.
"""

from __future__ import annotations

import socket
import threading


class FaultProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self._down = threading.Event()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        self.refused = 0  # connections cut or refused while down
        threading.Thread(target=self._accept, name="faultproxy", daemon=True).start()

    def down(self) -> None:
        self._down.set()
        with self._lock:
            for s in list(self._open):
                self._cut(s)

    def up(self) -> None:
        self._down.clear()

    def close(self) -> None:
        self._closed = True
        self.down()
        self._listener.close()

    def _cut(self, s: socket.socket) -> None:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()
        self._open.discard(s)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._down.is_set():
                self.refused += 1
                client.close()
                continue
            try:
                server = socket.create_connection(self._target, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data or self._down.is_set():
                    break
                dst.sendall(data)
        except OSError:
            pass
        with self._lock:
            if self._down.is_set():
                self.refused += 1
            self._cut(src)
            self._cut(dst)
