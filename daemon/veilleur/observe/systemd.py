"""sd_notify(3) without libsystemd: one datagram per message to ``$NOTIFY_SOCKET``.

``Type=notify`` units get ``READY=1`` once the daemon serves, ``WATCHDOG=1`` from the main loop,
``RELOADING=1`` on SIGHUP and ``STOPPING=1`` on SIGTERM. Outside systemd (no ``NOTIFY_SOCKET``)
every call is a no-op. A failed send never raises: the daemon's work matters more.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path

MonotonicNs = Callable[[], int]


def _socket_address(value: str) -> str | None:
    """A filesystem path, or an abstract socket (``@name`` on the wire as ``\\0name``)."""
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    return None  # empty, relative or vsock:...: not supported here


class Notifier:
    """Sends notifications to systemd; ``enabled`` is False (and sends nothing) outside it."""

    def __init__(self, address: str | None, monotonic_ns: MonotonicNs = time.monotonic_ns) -> None:
        self.address = _socket_address(address) if address else None
        self._monotonic_ns = monotonic_ns

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Notifier:
        return cls(environ.get("NOTIFY_SOCKET") or None)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` lines in one datagram; True if systemd's socket took it."""
        if self.address is None or not assignments:
            return False
        payload = "\n".join(assignments).encode("utf-8")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                # Never block the main loop on a reader that does not keep up (a full
                # datagram queue): like sd_notify's MSG_DONTWAIT, the message is dropped.
                sock.setblocking(False)
                sock.connect(self.address)
                sock.sendall(payload)
        except OSError:  # BlockingIOError included
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *_status(status))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *_status(status))

    def reloading(self, status: str | None = None) -> bool:
        """``Type=notify-reload`` (systemd 253+) wants the monotonic time with RELOADING=1."""
        usec = self._monotonic_ns() // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}", *_status(status))

    def status(self, text: str) -> bool:
        return self.notify(*_status(text))


def _status(text: str | None) -> tuple[str, ...]:
    if text is None:
        return ()
    # One line: a newline would start another assignment.
    return ("STATUS=" + " ".join(text.splitlines()),)


def watchdog_interval(environ: Mapping[str, str], pid: int | None = None) -> timedelta | None:
    """How often to send WATCHDOG=1: half of ``WATCHDOG_USEC``, or None when not asked.

    None when the variable is unset or not a positive integer, or when ``WATCHDOG_PID`` names
    another process (a child that inherited the environment must not pet the dog).
    """
    raw = environ.get("WATCHDOG_USEC", "").strip()
    if not raw.isdigit() or int(raw) == 0:
        return None
    owner = environ.get("WATCHDOG_PID", "").strip()
    if owner:
        if not owner.isdigit():
            return None
        if int(owner) != (os.getpid() if pid is None else pid):
            return None
    return timedelta(microseconds=int(raw) / 2)


class NotifyReceiver:
    """The systemd side, for tests: a datagram socket bound at ``path``.

    Give ``rx.environ`` to the code under test (``Notifier.from_env``); ``rx.receive()`` then
    returns the next message as a dict, e.g. ``{"READY": "1", "STATUS": "watching"}``.
    """

    def __init__(self, path: Path, timeout: float = 5.0) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._sock.settimeout(timeout)  # a bound for a failing test, not a synchronisation
        self._sock.bind(str(path))

    @property
    def environ(self) -> dict[str, str]:
        return {"NOTIFY_SOCKET": str(self.path)}

    def receive(self) -> dict[str, str]:
        """The next datagram as a dict; raises TimeoutError if none comes."""
        data = self._sock.recv(65536).decode("utf-8")
        return dict(line.split("=", 1) for line in data.splitlines() if "=" in line)

    def drain(self) -> list[dict[str, str]]:
        """Read every datagram from now on, in a thread, as systemd does (a queue left full
        makes the sender drop messages); returns the list they are appended to."""
        got: list[dict[str, str]] = []

        def run() -> None:
            while True:
                try:
                    got.append(self.receive())
                except TimeoutError:
                    continue
                except OSError:  # closed
                    return

        threading.Thread(target=run, name="notify-drain", daemon=True).start()
        return got

    def close(self) -> None:
        self._sock.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> NotifyReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
