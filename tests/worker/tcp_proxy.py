"""A TCP proxy a test can cut: the database "goes away" for real, connections and all."""

from __future__ import annotations

import selectors
import socket
import threading


class Proxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.down = threading.Event()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        """Drop every open connection and refuse new ones until `restore`."""
        self.down.set()
        with self._lock:
            for pair in self._pairs:
                for sock in pair:
                    sock.close()
            self._pairs.clear()

    def restore(self) -> None:
        self.down.clear()

    def _accept(self) -> None:
        while True:
            client, _ = self.server.accept()
            if self.down.is_set():
                client.close()
                continue
            upstream = socket.create_connection(self.upstream)
            with self._lock:
                self._pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        # selectors (epoll), not select.select: a long test process may hold descriptors
        # numbered above 1024, which select() refuses.
        with selectors.DefaultSelector() as sel:
            sel.register(a, selectors.EVENT_READ, b)
            sel.register(b, selectors.EVENT_READ, a)
            try:
                while a.fileno() != -1 and b.fileno() != -1:  # -1: `cut` closed them
                    for key, _ in sel.select(0.5):
                        data = key.fileobj.recv(65536)
                        if not data:
                            return
                        key.data.sendall(data)
            except (OSError, ValueError):
                return
            finally:
                a.close()
                b.close()
