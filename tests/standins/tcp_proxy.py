"""A generic TCP proxy for fault tests: put it in front of MariaDB, Redis or anything else that speaks TCP.

    with TcpProxy("127.0.0.1", 3306) as proxy:
        connect(host="127.0.0.1", port=proxy.port)   # talk through the proxy
        proxy.pause()    # the service is "down": open connections are cut, new ones are reset at once
        proxy.resume()   # it is back: new connections reach the service again

It never touches the service behind it, so a test can take "MariaDB" or "Redis" down without stopping the
shared server. `pause()` closes every relayed connection (clients see "connection lost" mid-query or
mid-command) and, while paused, accepts new connections only to reset them (clients see "connection
refused/reset" immediately instead of hanging on a timeout). `connections` counts accepted client
connections, `relayed` the ones actually forwarded.
"""
from __future__ import annotations

import selectors
import socket
import struct
import threading


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int, *, host: str = "127.0.0.1", port: int = 0,
                 connect_timeout: float = 2.0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.connect_timeout = connect_timeout
        self._listener = socket.create_server((host, port))
        self._listener.settimeout(0.1)
        self._lock = threading.Lock()
        self._paused = False
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name=f"tcp-proxy-{self.port}", daemon=True)
        self.connections = 0
        self.relayed = 0

    # -- lifecycle -----------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._listener.getsockname()[1]

    @property
    def host(self) -> str:
        return self._listener.getsockname()[0]

    def start(self) -> "TcpProxy":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()
        self._cut_all()

    def __enter__(self) -> "TcpProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- faults ----------------------------------------------------------------------------------------
    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        """The service goes down: cut every open connection; refuse new ones until `resume()`."""
        with self._lock:
            self._paused = True
        self._cut_all()

    def resume(self) -> None:
        with self._lock:
            self._paused = False

    # -- internals -------------------------------------------------------------------------------------
    @staticmethod
    def _reset(sock: socket.socket) -> None:
        try:  # SO_LINGER 0: close() sends RST, so the peer fails at once instead of waiting
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            sock.close()
        except OSError:
            pass

    def _cut_all(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, set()
        for pair in pairs:
            for sock in pair:  # the relay thread wakes up on the shutdown and closes both (with RST)
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                paused = self._paused
            if paused:
                self._reset(client)
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=self.connect_timeout)
            except OSError:
                self._reset(client)
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            pair = (client, upstream)
            with self._lock:
                if self._paused:  # paused while we were connecting
                    self._reset(client)
                    self._reset(upstream)
                    continue
                self._pairs.add(pair)
                self.relayed += 1
            threading.Thread(target=self._relay, args=(pair,), name="tcp-proxy-relay", daemon=True).start()

    def _relay(self, pair: tuple[socket.socket, socket.socket]) -> None:
        client, upstream = pair
        peer = {client: upstream, upstream: client}
        sel = selectors.DefaultSelector()
        try:
            sel.register(client, selectors.EVENT_READ)
            sel.register(upstream, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in sel.select(timeout=0.2):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    peer[key.fileobj].sendall(data)  # type: ignore[index]
                with self._lock:
                    if pair not in self._pairs:
                        return
        except (OSError, ValueError):
            return
        finally:
            sel.close()
            with self._lock:
                self._pairs.discard(pair)
            for sock in pair:
                try:
                    sock.close()
                except OSError:
                    pass
