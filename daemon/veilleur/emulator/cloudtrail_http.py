"""The emulator's HTTP layer: stdlib ThreadingHTTPServer, bytes in and out, no logic.

Never logs headers: the Authorization header carries a signature."""

from __future__ import annotations

import json
import logging
import socket
import struct
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from veilleur.emulator.cloudtrail_control import FaultKind
from veilleur.emulator.cloudtrail_store import LookupApiError

log = logging.getLogger(__name__)

ADMIN_PREFIX = "/_emulator/"
AMZ_JSON = "application/x-amz-json-1.1"
_MAX_BODY = 64 * 1024 * 1024

_FAULT_REPLIES: dict[FaultKind, tuple[int, str, str]] = {
    FaultKind.INTERNAL_ERROR: (500, "InternalServerError", "Internal server error (injected)"),
    FaultKind.SERVICE_UNAVAILABLE: (503, "ServiceUnavailable", "Service unavailable (injected)"),
    FaultKind.THROTTLE: (400, "ThrottlingException", "Rate exceeded"),
}


@dataclass(frozen=True, slots=True)
class Reply:
    """What to answer: a JSON body with a status, or a reset connection (no answer)."""

    status: int
    body: Any = None
    reset_connection: bool = False
    content_type: str = AMZ_JSON

    @classmethod
    def error(cls, exc: LookupApiError) -> Reply:
        return cls(exc.status, exc.to_body())

    @classmethod
    def fault(cls, kind: FaultKind) -> Reply:
        if kind is FaultKind.RESET:
            return cls(0, reset_connection=True)
        status, error_type, message = _FAULT_REPLIES[kind]
        return cls(status, {"__type": error_type, "message": message})

    @classmethod
    def admin(cls, status: int, body: Any) -> Reply:
        return cls(status, body, content_type="application/json")


class EmulatorApp(Protocol):
    def handle_api(self, target: str | None, authorization: str | None, body: bytes) -> Reply: ...

    def handle_admin(self, method: str, path: str, body: bytes) -> Reply: ...


class EmulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: EmulatorApp) -> None:
        self.app = app
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (timeout, reset) is routine here, not a traceback."""
        log.debug("cloudtrail emulator: request from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle's algorithm on, a kept-alive
    # connection waits for the client's delayed ACK (40 ms on Linux) at every request.
    disable_nagle_algorithm = True
    server: EmulatorHTTPServer

    def do_POST(self) -> None:
        body = self._read_body()
        if body is None:
            return
        if self.path.startswith(ADMIN_PREFIX):
            reply = self.server.app.handle_admin("POST", self.path, body)
        else:
            reply = self.server.app.handle_api(
                self.headers.get("X-Amz-Target"), self.headers.get("Authorization"), body
            )
        self._send(reply)

    def do_GET(self) -> None:
        if self.path.startswith(ADMIN_PREFIX):
            self._send(self.server.app.handle_admin("GET", self.path, b""))
        else:
            self._send(Reply.admin(404, {"message": f"no such path {self.path:.200}"}))

    def _read_body(self) -> bytes | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= _MAX_BODY:
            self._send(Reply.admin(400, {"message": "bad Content-Length"}))
            return None
        return self.rfile.read(length) if length else b""

    def _send(self, reply: Reply) -> None:
        if reply.reset_connection:
            self._reset()
            return
        data = json.dumps(reply.body).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(data)

    def _reset(self) -> None:
        """Close with a TCP RST and no answer: linger on, timeout zero."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:  # pragma: no cover - the peer may be gone already
            pass

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("cloudtrail emulator: " + format, *args)
