"""A TCP proxy between the project and PostgreSQL that a test can cut: a lost connection as a
tested fault (threads; one pair of pumps per connection)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress


class CuttingProxy:
    """Forwards 127.0.0.1:``port`` to ``target``; once ``cut_after_bytes`` have gone from one
    client to the server, that connection is cut (both sockets shut), as a network failure
    mid-statement would. ``cut_after_bytes=None`` never cuts."""

    def __init__(self, target: tuple[str, int], *, cut_after_bytes: int | None) -> None:
        self.target = target
        self.cut_after_bytes = cut_after_bytes
        self.cuts = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False

    def serve(self) -> None:
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                _shut(sock)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, server]
            sent = [0]
            threading.Thread(target=self._pump, args=(client, server, sent), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, None), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, sent: list[int] | None) -> None:
        try:
            while data := source.recv(65536):
                if sent is not None and self.cut_after_bytes is not None:
                    sent[0] += len(data)
                    if sent[0] > self.cut_after_bytes:
                        self.cuts += 1
                        break
                sink.sendall(data)
        except OSError:
            pass
        _shut(source)
        _shut(sink)


def _shut(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@contextmanager
def cutting_proxy(
    target: tuple[str, int], *, cut_after_bytes: int | None
) -> Iterator[CuttingProxy]:
    proxy = CuttingProxy(target, cut_after_bytes=cut_after_bytes)
    proxy.serve()
    try:
        yield proxy
    finally:
        proxy.close()
