"""The base of every loopback fake: a real threaded HTTP(S) server on 127.0.0.1.

A fake subclasses `FakeHandler` (do_GET/do_POST…) and is started with `FakeServer`:

    with FakeServer(WebhookReceiverHandler) as server:   # an ephemeral port
        httpx.post(server.url + "/hook", ...)
        server.requests   # every request received, in order

Each fake can be told to fail (`server.faults`): answer a status, answer slowly, hang, or drip
the body, for the next N requests or all of them. `serve_main()` runs a fake alone:
`python -m tests.fakes.NAME --port N`.
"""

from __future__ import annotations

import argparse
import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return {k.lower(): v for k, v in self.headers.items()}.get(name.lower())


@dataclass
class Faults:
    """What the next requests get instead of a normal answer (the first matching wins)."""

    status: int | None = None  # answer this status (with `body`)
    body: bytes = b'{"error": {"code": "Fake", "message": "Injected failure"}}'
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # wait before answering
    hang: bool = False  # never answer (until the server stops)
    drip_s: float = 0.0  # send the body one byte every drip_s seconds
    count: int | None = None  # how many requests; None = all until reset
    path: str | None = None  # only requests whose path contains this ("/token"); None = all

    def active(self) -> bool:
        return self.count is None or self.count > 0

    def applies_to(self, path: str) -> bool:
        return self.path is None or self.path in path

    def consume(self) -> None:
        if self.count is not None:
            self.count -= 1


class FakeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 state: Any) -> None:
        super().__init__(address, handler)
        self.state = state
        self.requests: list[Recorded] = []
        self.faults: Faults | None = None
        self.lock = threading.Lock()
        self.stopping = threading.Event()


class FakeHandler(BaseHTTPRequestHandler):
    """Records every request and applies injected faults before the subclass answers."""

    server: FakeHTTPServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm on, a keep-alive
    # client's delayed ACK then stalls every answer by ~40 ms.
    disable_nagle_algorithm = True
    body: bytes = b""
    # Headers the next reply() adds, set by a gate for this request only (e.g. the final
    # `WWW-Authenticate: Negotiate …` token of a SPNEGO handshake on the 200).
    extra_headers: dict[str, str] = {}  # replaced (never mutated) per request in _dispatch

    def log_message(self, format: str, *args: Any) -> None:  # quiet in tests
        pass

    # -- plumbing ---------------------------------------------------------------------------
    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _record(self) -> Recorded:
        parts = urlsplit(self.path)
        recorded = Recorded(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query),
            headers=dict(self.headers.items()),
            body=self.body,
        )
        with self.server.lock:
            self.server.requests.append(recorded)
        return recorded

    def _apply_faults(self) -> bool:
        with self.server.lock:
            faults = self.server.faults
            if faults is None or not faults.active() or not faults.applies_to(self.recorded.path):
                return False
            faults.consume()
        if faults.hang:
            self.server.stopping.wait(120)
            self.close_connection = True
            return True
        if faults.delay_s:
            time.sleep(faults.delay_s)
        if faults.status is None and not faults.drip_s:
            return False
        status = faults.status or 200
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **faults.headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(faults.body)))
        self.end_headers()
        if faults.drip_s:
            for byte in faults.body:
                if self.server.stopping.is_set():
                    break
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(faults.drip_s)
        else:
            self.wfile.write(faults.body)
        return True

    def _dispatch(self, method: str) -> None:
        self.extra_headers = {}
        self.body = self._read_body()
        self.recorded = self._record()
        if self._apply_faults():
            return
        handler = getattr(self, f"handle_{method}", None)
        if handler is None:
            self.reply(405, {"error": {"code": "MethodNotAllowed", "message": method}})
            return
        handler()

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch("PATCH")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    # -- answering --------------------------------------------------------------------------
    def reply(self, status: int, body: Any = None, *, content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        if isinstance(body, bytes):
            payload = body
        elif isinstance(body, str):
            payload = body.encode()
        elif body is None:
            payload = b""
        else:
            payload = json.dumps(body).encode()
        self.send_response(status)
        if payload or content_type != "application/json":
            self.send_header("Content-Type", content_type)
        for name, value in {**self.extra_headers, **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload and self.command != "HEAD":
            self.wfile.write(payload)


class FakeServer:
    """Runs a handler class on 127.0.0.1 in a background thread (optionally over TLS)."""

    def __init__(self, handler: type[FakeHandler], *, port: int = 0,
                 tls: ssl.SSLContext | None = None, state: Any = None) -> None:
        self.httpd = FakeHTTPServer(("127.0.0.1", port), handler, state)
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        # A short poll interval: stop() (shutdown) waits for one poll, 0.5 s by default.
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[Recorded]:
        return self.httpd.requests

    @property
    def state(self) -> Any:
        return self.httpd.state

    def fail(self, **faults: Any) -> Faults:
        """Inject faults (see Faults) until `reset()` or `count` requests have had them."""
        self.httpd.faults = Faults(**faults)
        return self.httpd.faults

    def reset(self) -> None:
        self.httpd.faults = None
        self.httpd.requests.clear()

    def start(self) -> FakeServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def serve_main(name: str, build: Any, argv: list[str] | None = None) -> None:
    """Command-line entry point: `python -m tests.fakes.NAME --port N`.

    `build(args)` returns a FakeServer; extra arguments can be added by the caller through
    `build.add_arguments(parser)` when present.
    """
    parser = argparse.ArgumentParser(prog=f"python -m tests.fakes.{name}")
    parser.add_argument("--port", type=int, default=0, help="Port on 127.0.0.1 (0: any free).")
    if hasattr(build, "add_arguments"):
        build.add_arguments(parser)
    args = parser.parse_args(argv)
    server = build(args)
    server.start()
    print(f"{name} listening on {server.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
