"""The HTTP endpoint of the daemon's own health: ``/metrics``, ``/healthz`` and ``/readyz``.

A stdlib ``ThreadingHTTPServer`` on its own thread. ``/healthz`` says the process lives and its
main loop has beaten recently (a wedged loop turns it 503, so a supervisor restarts it);
``/readyz`` asks a callable (config loaded, store open, polls fresh) and lists its reasons.
The callables run on the server's threads: they must only read thread-safe state.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import cast

from prometheus_client.exposition import CONTENT_TYPE_LATEST

from veilleur.observe.metrics import Metrics

Clock = Callable[[], float]  # seconds, monotonic
Readiness = Callable[[], tuple[bool, list[str]]]

TEXT = "text/plain; charset=utf-8"


class Heartbeat:
    """The main loop calls ``beat()`` each turn; it is alive while beaten within ``max_silence``.

    Starts beaten: a process that has just started is alive until it misses its first bound.
    """

    def __init__(self, max_silence: float, clock: Clock = time.monotonic) -> None:
        if max_silence <= 0:
            raise ValueError("max_silence must be positive")
        self.max_silence = max_silence
        self._clock = clock
        self._lock = threading.Lock()
        self._last = clock()

    def beat(self) -> None:
        now = self._clock()
        with self._lock:
            self._last = now

    def silence(self) -> float:
        """Seconds since the last beat."""
        now = self._clock()
        with self._lock:
            return max(0.0, now - self._last)

    def alive(self) -> bool:
        return self.silence() <= self.max_silence


def parse_listen(listen: str) -> tuple[str, int]:
    """``"127.0.0.1:9108"`` or ``"[::1]:9108"`` into (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f'expected HOST:PORT, got "{listen}"')
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], app: HealthServer) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.app = app
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server_version = "veilleur"
    sys_version = ""
    timeout = 10  # a client that sends nothing does not hold a thread for ever

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def _serve(self, body: bool) -> None:
        app = cast(_Server, self.server).app
        status, content_type, payload = app.respond(self.path.split("?", 1)[0])
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        """Scrapes every 15 s are not worth a log line each."""


class HealthServer:
    """Serves the endpoints on ``host:port`` (port 0: any free port; see ``address``)."""

    def __init__(
        self,
        metrics: Metrics,
        heartbeat: Heartbeat,
        readiness: Readiness,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.metrics = metrics
        self.heartbeat = heartbeat
        self.readiness = readiness
        self._bind = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_listen(
        cls, listen: str, metrics: Metrics, heartbeat: Heartbeat, readiness: Readiness
    ) -> HealthServer:
        host, port = parse_listen(listen)
        return cls(metrics, heartbeat, readiness, host, port)

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port), once started."""
        if self._server is None:
            raise RuntimeError("the health server is not started")
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> None:
        """Bind and serve on a daemon thread; raises OSError when the address is taken."""
        if self._server is not None:
            raise RuntimeError("the health server is already started")
        self._server = _Server(self._bind, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="veilleur-health", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, close the socket and wait for the thread. Safe to call twice."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()

    def __enter__(self) -> HealthServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def respond(self, path: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for a path: the whole routing, testable without HTTP."""
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, self.metrics.render()
        if path == "/healthz":
            silence = self.heartbeat.silence()
            if silence <= self.heartbeat.max_silence:
                return 200, TEXT, b"ok\n"
            text = f"main loop silent for {silence:.0f}s (bound {self.heartbeat.max_silence:.0f}s)"
            return 503, TEXT, f"{text}\n".encode()
        if path == "/readyz":
            try:
                ready, reasons = self.readiness()
            except Exception as exc:  # a broken check must not look ready
                ready, reasons = False, [f"readiness check failed: {type(exc).__name__}"]
            lines = [("ready" if ready else "not ready"), *reasons]
            return (200 if ready else 503), TEXT, ("\n".join(lines) + "\n").encode()
        return 404, TEXT, b"not found\n"
