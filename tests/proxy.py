"""A TCP proxy on 127.0.0.1 in front of the database, for network-fault tests: it can
reset every connection, or black-hole them (half-open: no reset and no answer, every
byte dropped), and heal. Connections that were black-holed stay dead after the heal, as
they would after a real network cut; new ones pass."""

import contextlib
import socket
import threading


class FaultyProxy:
    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.black_hole = False
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket, list[bool]]] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            dead = [self.black_hole]  # a connection made during a black hole never works
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, server, dead))
            for source, target in ((client, server), (server, client)):
                threading.Thread(
                    target=self._pump, args=(source, target, dead), daemon=True
                ).start()

    def _pump(self, source: socket.socket, target: socket.socket, dead: list[bool]) -> None:
        try:
            while data := source.recv(65536):
                if self.black_hole:
                    dead[0] = True
                if dead[0]:
                    continue  # dropped on the floor
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def start_black_hole(self) -> None:
        self.black_hole = True

    def heal(self) -> None:
        self.black_hole = False

    def reset(self) -> None:
        """End every connection at once, at both ends, as a reset does.

        shutdown(), not close(): closing a socket another thread is reading from
        leaves the connection open until that read returns, which it never would."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair[:2]:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        self.reset()
