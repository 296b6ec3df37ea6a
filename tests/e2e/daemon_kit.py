"""Running ``veilleur run`` as a child process, and waiting on what it does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

VEILLEUR = [sys.executable, "-m", "veilleur.cli"]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(
    tmp: Path, *, topic_arn: str, bus: str, port: int, rules: list[str], **extra: Any
) -> Path:
    data: dict[str, Any] = {
        "rules": rules,
        "state_dir": str(tmp / "state"),
        "regions": ["us-east-1"],
        "accounts": [{}],
        "cloudtrail": {"poll_interval": "1s", "lateness": "15m", "max_requests_per_second": 2.0},
        "sinks": {
            "sns": [{"name": "security-topic", "topic_arn": topic_arn}],
            "eventbridge": [{"name": "lockdown-bus", "bus": bus}],
        },
        "notify": {"drain_interval": "1s", "retry_base": "1s", "retry_cap": "2s"},
        "metrics": {"listen": f"127.0.0.1:{port}"},
        "log": {"format": "json", "level": "info"},
    }
    data.update(extra)
    path = tmp / "veilleur.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


class Daemon:
    """A ``veilleur run`` child process; its stdout (JSON log lines) goes to a file."""

    def __init__(self, config: Path, env: dict[str, str], log: Path) -> None:
        self.config, self.env, self.log = config, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, extra_env: dict[str, str] | None = None) -> Daemon:
        fh = self.log.open("ab")
        self.proc = subprocess.Popen(
            [*VEILLEUR, "run", "-c", str(self.config)],
            env={**os.environ, **self.env, **(extra_env or {})},
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
        return self

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def wait(self, timeout: float = 30) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"event": "(not json)", "text": line})
        return out

    def events(self, name: str) -> list[dict[str, Any]]:
        return [x for x in self.lines() if x.get("event") == name]


def wait_for(
    what: str, check: Callable[[], Any], deadline: float = 30.0, every: float = 0.1
) -> Any:
    end = time.monotonic() + deadline
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline}s waiting for {what}")
        time.sleep(every)  # polling interval, not synchronisation: the loop waits on a condition


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - loopback only
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""
