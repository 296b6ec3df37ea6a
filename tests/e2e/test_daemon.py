"""The real daemon process: systemd protocol, health, alerts, reload, stop, kill -9."""

from __future__ import annotations

import contextlib
import json
import random
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.daemon_kit import Daemon, free_port, http_get, wait_for, write_config
from tests.integration.pipeline_kit import failed_login, noise
from veilleur.emulator import CloudTrailEmulator
from veilleur.emulator.cloudtrail_control import Fault, FaultKind
from veilleur.model import TrailEvent
from veilleur.observe.systemd import NotifyReceiver
from veilleur.rules.engine import Engine
from veilleur.rules.loader import load_rules

RULE = "console-login-failures-per-ip"


@pytest.fixture
def emulator() -> Iterator[CloudTrailEmulator]:
    with CloudTrailEmulator() as emu:
        yield emu


@pytest.fixture
def world(
    tmp_path: Path,
    moto_url: str,
    emulator: CloudTrailEmulator,
    sns_topic_to_queue,
    bus_rule_to_queue,
):
    topic = sns_topic_to_queue("veilleur-alerts")
    bus = bus_rule_to_queue("veilleur")
    port = free_port()
    cfg = write_config(
        tmp_path,
        topic_arn=topic.topic_arn,
        bus=bus.bus_name,
        port=port,
        rules=["builtin:essentials"],
    )
    env = {
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ENDPOINT_URL_CLOUDTRAIL": emulator.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    daemon = Daemon(cfg, env, tmp_path / "daemon.log")
    yield {"topic": topic, "bus": bus, "port": port, "cfg": cfg, "daemon": daemon, "tmp": tmp_path}
    daemon.stop()


def sns_docs(msgs: list[dict]) -> list[dict]:
    return [json.loads(json.loads(m["Body"])["Message"]) for m in msgs]


def test_lifecycle_ready_alert_reload_stop(world, emulator, receive_until, tmp_path) -> None:
    notify = NotifyReceiver(tmp_path / "notify.sock")
    daemon: Daemon = world["daemon"]
    daemon.start({**notify.environ, "WATCHDOG_USEC": "2000000"})
    got = notify.receive()
    assert got.get("READY") == "1", got
    messages = notify.drain()  # from now on, read as systemd reads: all the time

    def notified(key: str) -> bool:
        return any(m.get(key) == "1" for m in list(messages))

    base = f"http://127.0.0.1:{world['port']}"
    assert wait_for("healthz", lambda: http_get(base + "/healthz")[0] == 200)
    assert wait_for("watchdog ping", lambda: notified("WATCHDOG"))
    status, body = http_get(base + "/metrics")
    assert status == 200 and "veilleur_build_info" in body

    now = datetime.now(tz=UTC) - timedelta(minutes=3)
    emulator.add_events([failed_login(now + timedelta(seconds=20 * i), i) for i in range(6)])
    msgs = receive_until(world["topic"].queue_url, 1, deadline=30)
    assert [d["rule_id"] for d in sns_docs(msgs)][:1] in (
        [RULE],
        ["console-login-failures-per-user"],
    )
    assert wait_for("ready", lambda: http_get(base + "/readyz")[0] == 200)

    # A bad reload keeps the running configuration and says why.
    good = world["cfg"].read_text()
    world["cfg"].write_text(good.replace("builtin:essentials", "builtin:nope"))
    daemon.signal(signal.SIGHUP)
    failed = wait_for("reload_failed log", lambda: daemon.events("reload_failed"))
    assert "builtin:nope" in json.dumps(failed[0])
    assert http_get(base + "/healthz")[0] == 200
    world["cfg"].write_text(good)
    daemon.signal(signal.SIGHUP)
    wait_for("reloaded log", lambda: daemon.events("reloaded"))
    _, body = http_get(base + "/metrics")
    assert 'veilleur_config_reloads_total{outcome="error"} 1.0' in body
    assert 'veilleur_config_reloads_total{outcome="ok"} 1.0' in body

    daemon.signal(signal.SIGTERM)
    assert daemon.wait(30) == 0
    assert wait_for("STOPPING", lambda: notified("STOPPING"), deadline=5)
    assert notified("RELOADING")  # each reload said so
    notify.close()
    text = (tmp_path / "daemon.log").read_text()
    assert 'testing"' not in text, "credentials must never be logged"


def test_a_reload_waits_for_the_tick_in_flight(world, emulator) -> None:
    """The new configuration restores its state from the store: the tick being polled
    commits first, or the new engine would read the same events again."""
    daemon: Daemon = world["daemon"]
    daemon.start()
    wait_for("a first poll", lambda: daemon.events("poll"))
    emulator.inject_fault(Fault(FaultKind.SLOW, delay_s=6.0))
    wait_for("the slow request taken", lambda: not emulator.stats().faults_pending)
    polls_before = len(daemon.events("poll"))
    daemon.signal(signal.SIGHUP)
    wait_for("reloaded log", lambda: daemon.events("reloaded"), deadline=30)
    names = [line.get("event") for line in daemon.lines()]
    polls_then = names[: names.index("reloaded")].count("poll")
    assert polls_then > polls_before, "reloaded while a tick was still polling"


def expected_ids(records: list[dict]) -> set[str]:
    events = sorted(
        (TrailEvent.from_record(r) for r in records), key=lambda e: (e.event_time, e.event_id)
    )
    engine = Engine(load_rules(["builtin:essentials"]))
    return {a.notification_id for a in engine.process(events, events[-1].event_time)}


def test_kill9_at_any_moment_loses_nothing_and_never_changes_ids(
    world, emulator, aws_client
) -> None:
    rng = random.Random(1234)
    start = datetime.now(tz=UTC) - timedelta(minutes=10)
    records = [noise(start + timedelta(seconds=2 * i), i) for i in range(240)]
    for burst in range(8):  # 8 bursts from 8 IPs: 8 per-IP alerts (+ per-user ones)
        t = start + timedelta(seconds=60 * burst)
        records += [
            failed_login(
                t + timedelta(seconds=5 * i), i, ip=f"203.0.113.{burst}", user=f"user{burst}"
            )
            for i in range(5)
        ]
    emulator.add_events(records)
    expected = expected_ids(records)
    assert len(expected) >= 8
    daemon: Daemon = world["daemon"]
    for _ in range(6):
        daemon.start()
        wait_for("process up", lambda: daemon.proc.poll() is None)
        # Kill somewhere between start-up and the middle of the (paced, ~3 s) first poll.
        delay = rng.uniform(0.3, 4.0)
        with contextlib.suppress(Exception):
            daemon.wait(timeout=delay)
        daemon.kill9()
    daemon.start()

    sqs = aws_client("sqs")
    received: dict[str, list[str]] = {"sns": [], "bus": []}
    queues = {"sns": world["topic"].queue_url, "bus": world["bus"].queue_url}

    def notification_id(where: str, body: str) -> str:
        doc = json.loads(body)
        return str(
            json.loads(doc["Message"])["notification_id"]
            if where == "sns"
            else doc["detail"]["notification_id"]
        )

    def all_in() -> bool:
        for where, url in queues.items():
            resp = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            for m in resp.get("Messages", []):
                received[where].append(notification_id(where, m["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return all(set(ids) >= expected for ids in received.values())

    wait_for("every expected alert at both subscribers", all_in, deadline=60)
    for where, ids in received.items():
        assert set(ids) == expected, (
            f"{where}: no alert lost, none invented, a duplicate keeps its id"
        )
    daemon.stop()


def _scraped_names(text: str) -> set[str]:
    """Every series name the exposition declares (even with no sample yet), with the
    suffixes Prometheus stores for counters and histograms."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            names.add(name)
            if kind == "counter":
                names |= {name.removesuffix("_total") + "_total", name + "_created"}
            if kind == "histogram":
                names |= {name + s for s in ("_bucket", "_sum", "_count", "_created")}
        elif line and not line.startswith("#"):
            names.add(line.split("{", 1)[0].split(" ", 1)[0])
    return names


def test_every_dashboard_and_alert_metric_is_served_by_the_running_daemon(world) -> None:
    import yaml

    from tests.deploy.test_observability import (
        ALERTS,
        DASHBOARD,
        PROMETHEUS_SERIES,
        dashboard_panels,
        metric_names,
    )

    daemon: Daemon = world["daemon"]
    daemon.start()
    base = f"http://127.0.0.1:{world['port']}"
    wait_for("a first poll", lambda: daemon.events("poll"))
    status, body = http_get(base + "/metrics")
    assert status == 200
    served = _scraped_names(body)
    wanted: set[str] = set()
    doc = json.loads(DASHBOARD.read_text())
    for panel in dashboard_panels(doc):
        for target in panel.get("targets", []):
            wanted |= metric_names(target["expr"])
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            wanted |= metric_names(rule["expr"])
    missing = sorted(wanted - served - PROMETHEUS_SERIES)
    assert not missing, f"queried but not served by the daemon: {missing}"


def test_once_ticks_drains_and_reports_failure_by_exit_code(world, emulator, receive_until) -> None:
    import subprocess
    import sys

    from veilleur.emulator.cloudtrail_control import Fault, FaultKind

    now = datetime.now(tz=UTC) - timedelta(minutes=2)
    emulator.add_events([failed_login(now + timedelta(seconds=10 * i), i) for i in range(5)])
    env = {**__import__("os").environ, **world["daemon"].env}
    cmd = [sys.executable, "-m", "veilleur.cli", "once", "-c", str(world["cfg"])]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-2000:]
    docs = sns_docs(receive_until(world["topic"].queue_url, 2, deadline=10))
    assert RULE in [d["rule_id"] for d in docs]
    # LookupEvents failing for longer than the poll retries: exit 1, and the log says why.
    emulator.inject_fault(Fault(FaultKind.INTERNAL_ERROR, count=100))
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 1
    assert "poll_behind" in done.stdout
