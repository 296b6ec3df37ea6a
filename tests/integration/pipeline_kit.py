"""A veilleur pipeline on local servers with one fake clock shared by everything.

The emulator's visibility and rate limit, the poller's pacing and the Watch's ``now`` all read
the same ``FakeClock``; a paced request advances it. Tests are exact and never sleep.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from veilleur.aws import SessionFactory
from veilleur.build import Clocks, build_watch
from veilleur.config import load_config
from veilleur.emulator import CloudTrailEmulator
from veilleur.model import format_time
from veilleur.observe.metrics import Metrics
from veilleur.service import Watch
from veilleur.store.sqlite import SqliteStore

ACCOUNT = "123456789012"
REGION = "us-east-1"


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self._t = start.timestamp()
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self._t

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), tz=UTC)

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self._t += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        self.sleep(seconds)


def start_time() -> datetime:
    """A fixed, recent, minute-aligned start (inside the 90-day horizon of any clock)."""
    now = datetime.now(tz=UTC).replace(second=0, microsecond=0)
    return now - timedelta(hours=1)


def failed_login(t: datetime, n: int, ip: str = "203.0.113.66", user: str = "alice") -> dict:
    return {
        "eventVersion": "1.08",
        "eventID": f"login-fail-{ip}-{n}-{t.timestamp():.0f}",
        "eventTime": format_time(t),
        "eventSource": "signin.amazonaws.com",
        "eventName": "ConsoleLogin",
        "eventType": "AwsConsoleSignIn",
        "awsRegion": REGION,
        "recipientAccountId": ACCOUNT,
        "sourceIPAddress": ip,
        "userAgent": "Mozilla/5.0 <script>alert(1)</script>\x1b[31m",
        "userIdentity": {
            "type": "IAMUser",
            "userName": user,
            "accountId": ACCOUNT,
            "arn": f"arn:aws:iam::{ACCOUNT}:user/{user}",
        },
        "errorMessage": "Failed authentication",
        "responseElements": {"ConsoleLogin": "Failure"},
        "additionalEventData": {"MFAUsed": "No", "LoginTo": "https://console.aws.amazon.com/"},
        "readOnly": False,
        "managementEvent": True,
    }


def noise(t: datetime, n: int) -> dict:
    return {
        "eventVersion": "1.08",
        "eventID": f"noise-{n}-{t.timestamp():.0f}",
        "eventTime": format_time(t),
        "eventSource": "ec2.amazonaws.com",
        "eventName": "DescribeInstances",
        "awsRegion": REGION,
        "recipientAccountId": ACCOUNT,
        "sourceIPAddress": "198.51.100.7",
        "userIdentity": {
            "type": "AssumedRole",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/ops/bob",
        },
        "readOnly": True,
        "managementEvent": True,
    }


@dataclass
class Pipeline:
    watch: Watch
    store: SqliteStore
    clock: FakeClock
    metrics: Metrics
    config_path: Path

    def tick(self) -> list[Any]:
        return [self.watch.tick(s) for s in self.watch.sources]

    def run_for(self, seconds: float, every: float = 30.0) -> list[Any]:
        """Tick every ``every`` seconds of fake time for ``seconds``; drain after each."""
        reports = []
        end = self.clock.time() + seconds
        while self.clock.time() < end:
            reports += self.tick()
            self.watch.drain()
            self.clock.advance(every)
        return reports


def write_config(
    tmp: Path, topic_arn: str, bus: str, rules: list[str], extra: Mapping[str, Any] | None = None
) -> Path:
    data: dict[str, Any] = {
        "rules": rules,
        "state_dir": str(tmp / "state"),
        "regions": [REGION],
        "accounts": [{}],
        "cloudtrail": {"poll_interval": "30s", "lateness": "15m"},
        "sinks": {
            "sns": [{"name": "security-topic", "topic_arn": topic_arn}],
            "eventbridge": [{"name": "lockdown-bus", "bus": bus}],
        },
        "notify": {"retry_base": "1s", "retry_cap": "30s"},
    }
    for key, value in (extra or {}).items():
        data[key] = value
    (tmp / "state").mkdir(exist_ok=True)
    path = tmp / "veilleur.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@dataclass
class Env:
    emulator: CloudTrailEmulator
    clock: FakeClock


def open_pipeline(config_path: Path, clock: FakeClock) -> Pipeline:
    cfg = load_config(config_path)
    store = SqliteStore.open(Path(cfg.model.state_dir) / "veilleur.sqlite3")
    metrics = Metrics()
    clocks = Clocks(now=clock.now, monotonic=clock.time, sleep=clock.sleep)
    watch = build_watch(cfg, store, metrics, SessionFactory(), threading.Event(), clocks)
    return Pipeline(watch, store, clock, metrics, config_path)


def iter_bodies(messages: list[dict[str, Any]]) -> Iterator[Any]:
    import json

    for m in messages:
        yield json.loads(m["Body"])


class FlakyProxy:
    """A TCP proxy on loopback in front of a real server, which a test can take down
    (connections refused-and-closed) and bring back: an SNS or EventBridge outage."""

    def __init__(self, target_host: str, target_port: int) -> None:
        import socket

        self.target = (target_host, target_port)
        self.up = True
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        import socket

        while not self._stop:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: Any, dst: Any) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()

    def close(self) -> None:
        self._stop = True
        self._sock.close()
