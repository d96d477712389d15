"""A loopback TCP proxy that can simulate a server outage: PostgreSQL restarting, Redis stopping.

    with TcpProxy("127.0.0.1", 5432) as proxy:       # listens on 127.0.0.1:<proxy.port>
        ...point the app's DATABASE_URL at proxy.port...
        proxy.cut()       # every open connection is reset, new ones are reset on accept
        proxy.restore()   # connections are forwarded again

The fault suite puts it between DimeConnect's processes and the real server instead of
restarting or stopping that server: a real restart also kills every other connection on the
machine (the test's own, other engineers' test runs), and its timing is not ours to choose.
What the app sees is the same: established connections die mid-conversation (RST), and new
ones fail until the "server" is back. While cut, the proxy keeps its port (accept, then reset)
so nothing else can take it.

Run alone: python -m tests.fakes.tcp_proxy --port 6400 --target 127.0.0.1:6379
"""

from __future__ import annotations

import argparse
import select
import socket
import struct
import threading
import time
from typing import Any

BUFFER = 65536


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a crashed server's kernel would."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class TcpProxy:
    """Forwards every connection on 127.0.0.1:`port` to `target_host`:`target_port`."""

    def __init__(self, target_host: str, target_port: int, *, port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(128)
        self.listener.settimeout(0.05)
        self.port: int = self.listener.getsockname()[1]
        self.up = True
        self.accepted = 0  # connections forwarded
        self.refused = 0  # connections reset because the proxy was cut
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    def __repr__(self) -> str:
        state = "up" if self.up else "cut"
        return f"<TcpProxy 127.0.0.1:{self.port} -> {self.target[0]}:{self.target[1]} {state}>"

    # -- control -----------------------------------------------------------------------------

    def cut(self) -> int:
        """Reset every open connection and refuse new ones until restore(); returns how many
        connections were cut."""
        with self._lock:
            self.up = False
            pairs = list(self._pairs)
            self._pairs.clear()
        for client, upstream in pairs:
            _reset(client)
            _reset(upstream)
        return len(pairs)

    def restore(self) -> None:
        """Forward new connections again."""
        self.up = True

    def open_connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    # -- plumbing ----------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self.up:
                self.refused += 1
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            pair = (client, upstream)
            with self._lock:
                self._pairs.add(pair)
                self.accepted += 1
            threading.Thread(target=self._pump, args=(pair,), daemon=True).start()

    def _pump(self, pair: tuple[socket.socket, socket.socket]) -> None:
        client, upstream = pair
        peers = {client: upstream, upstream: client}
        try:
            while not self._stopping.is_set():
                readable, _, _ = select.select(list(peers), [], [], 0.2)
                for sock in readable:
                    data = sock.recv(BUFFER)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except (OSError, ValueError):  # cut() closed a socket under us
            return
        finally:
            with self._lock:
                was_open = pair in self._pairs
                self._pairs.discard(pair)
            if was_open:
                client.close()
                upstream.close()

    def start(self) -> TcpProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self.cut()
        self.listener.close()
        self._thread.join(timeout=5)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.tcp_proxy")
    parser.add_argument("--port", type=int, default=0, help="Port on 127.0.0.1 (0: any free).")
    parser.add_argument("--target", required=True, help="host:port to forward to (loopback).")
    args = parser.parse_args(argv)
    host, _, port = args.target.rpartition(":")
    if host not in ("127.0.0.1", "localhost"):
        raise SystemExit("The proxy forwards to 127.0.0.1 only.")
    with TcpProxy(host, int(port), port=args.port) as proxy:
        print(f"tcp_proxy listening on 127.0.0.1:{proxy.port} -> {args.target}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
