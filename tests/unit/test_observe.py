"""The daemon's own pulse: metrics, health routing, sd_notify, watchdog and log redaction."""

from __future__ import annotations

import io
import json
import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import prometheus_client
import pytest

from veilleur.model import Severity
from veilleur.observe.health import HealthServer, Heartbeat, parse_listen
from veilleur.observe.logs import (
    REDACTED,
    configure_logging,
    get_logger,
    redact,
    redact_text,
    reset_logging,
)
from veilleur.observe.metrics import Metrics, PollOutcome, SuppressReason
from veilleur.observe.systemd import Notifier, NotifyReceiver, watchdog_interval

ACCT = "123456789012"
REGION = "eu-west-3"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # AWS's documented example secret key
SESSION = "IQoJb3JpZ2luX2VjEJr" + "A" * 60 + "b7/+" * 40 + "=="

METRIC_NAMES = [
    "veilleur_polls_total",
    "veilleur_poll_duration_seconds",
    "veilleur_last_success_timestamp_seconds",
    "veilleur_poll_lag_seconds",
    "veilleur_poll_behind_total",
    "veilleur_events_total",
    "veilleur_ingestion_delay_seconds",
    "veilleur_rule_matches_total",
    "veilleur_alerts_total",
    "veilleur_alerts_suppressed_total",
    "veilleur_notifications_total",
    "veilleur_outbox_depth",
    "veilleur_outbox_oldest_age_seconds",
    "veilleur_dead_letters_total",
    "veilleur_outbox_dead_letters",
    "veilleur_aws_api_calls_total",
    "veilleur_aws_throttles_total",
    "veilleur_metric_queries_total",
    "veilleur_metrics_requested_total",
    "veilleur_poll_interval_seconds",
    "veilleur_alarm_state",
    "veilleur_config_reloads_total",
    "veilleur_rules_loaded",
    "veilleur_ready",
    "veilleur_build_info",
]
ALLOWED_LABELS = {
    "source",
    "account",
    "region",
    "rule",
    "sink",
    "operation",
    "outcome",
    "severity",
    "state",
    "reason",
    "pack",
    "version",
    "python",
    "le",
}


# -- metrics -------------------------------------------------------------------------------


def test_every_metric_is_exposed_with_help_and_type() -> None:
    text = Metrics().render().decode()
    for name in METRIC_NAMES:
        family = name.removesuffix("_total")
        assert f"# HELP {name} " in text or f"# HELP {family} " in text, name
        assert f"# TYPE {family} " in text or f"# TYPE {name} " in text, name


def test_labels_stay_within_the_bounded_set() -> None:
    m = Metrics()
    for family in m.registry.collect():
        assert family.name.startswith("veilleur_")
    used = {
        name
        for collector in m.registry._collector_to_names  # every registered metric object
        for name in getattr(collector, "_labelnames", ())
    }
    assert used
    assert used <= ALLOWED_LABELS


def test_each_metrics_object_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.observe_match("root-login")
    assert a.value("veilleur_rule_matches_total", rule="root-login") == 1
    assert b.value("veilleur_rule_matches_total", rule="root-login") is None
    assert prometheus_client.REGISTRY.get_sample_value("veilleur_ready") is None


def test_poll_counts_stamps_success_and_sets_lag() -> None:
    m = Metrics()
    where = {"source": "cloudtrail", "account": ACCT, "region": REGION}
    m.observe_poll("cloudtrail", ACCT, REGION, PollOutcome.OK, 1.5, T0, T0 - timedelta(minutes=3))
    assert m.value("veilleur_polls_total", **where, outcome="ok") == 1
    assert m.value("veilleur_last_success_timestamp_seconds", **where) == T0.timestamp()
    assert m.value("veilleur_poll_lag_seconds", **where) == 180
    assert m.value("veilleur_poll_duration_seconds_count", source="cloudtrail") == 1
    assert m.value("veilleur_poll_duration_seconds_sum", source="cloudtrail") == 1.5

    later = T0 + timedelta(minutes=1)
    m.observe_poll("cloudtrail", ACCT, REGION, "throttled", 0.2, later, T0 - timedelta(minutes=3))
    assert m.value("veilleur_polls_total", **where, outcome="throttled") == 1
    # A failed poll does not move the success stamp; the lag keeps growing.
    assert m.value("veilleur_last_success_timestamp_seconds", **where) == T0.timestamp()
    assert m.value("veilleur_poll_lag_seconds", **where) == 240

    m.observe_behind("cloudtrail", ACCT, REGION)
    assert m.value("veilleur_poll_behind_total", **where) == 1


def test_events_and_ingestion_delay() -> None:
    m = Metrics()
    m.observe_events(ACCT, REGION, new=3, duplicate=2)
    assert m.value("veilleur_events_total", account=ACCT, region=REGION, outcome="new") == 3
    assert m.value("veilleur_events_total", account=ACCT, region=REGION, outcome="duplicate") == 2
    assert m.value("veilleur_events_total", account=ACCT, region=REGION, outcome="invalid") == 0

    m.observe_ingestion([T0 - timedelta(seconds=s) for s in (45, 400, 2000)], T0)
    assert m.value("veilleur_ingestion_delay_seconds_count") == 3
    assert m.value("veilleur_ingestion_delay_seconds_sum") == 2445
    assert m.value("veilleur_ingestion_delay_seconds_bucket", le="60.0") == 1
    assert m.value("veilleur_ingestion_delay_seconds_bucket", le="600.0") == 2


def test_alerts_use_readable_severity_and_reason_labels() -> None:
    m = Metrics()
    m.observe_alert("root-login", Severity.HIGH)
    m.observe_suppressed("root-login", SuppressReason.RATE_LIMIT)
    assert m.value("veilleur_alerts_total", rule="root-login", severity="high") == 1
    assert m.value("veilleur_alerts_suppressed_total", rule="root-login", reason="rate_limit") == 1


def test_alarm_state_is_one_hot_and_replaced_wholesale() -> None:
    m = Metrics()
    m.set_alarm_state("cpu-high", "ALARM")
    states = {
        s: m.value("veilleur_alarm_state", rule="cpu-high", state=s)
        for s in ("OK", "ALARM", "INSUFFICIENT_DATA")
    }
    assert states == {"OK": 0, "ALARM": 1, "INSUFFICIENT_DATA": 0}

    m.set_alarm_states({"errors": "OK"})  # a reload removed cpu-high
    assert m.value("veilleur_alarm_state", rule="cpu-high", state="ALARM") is None
    assert m.value("veilleur_alarm_state", rule="errors", state="OK") == 1


def test_rules_loaded_forgets_dropped_packs() -> None:
    m = Metrics()
    m.set_rules_loaded({"builtin:cis": 14, "builtin:essentials": 9})
    m.set_rules_loaded({"builtin:cis": 14})
    assert m.value("veilleur_rules_loaded", pack="builtin:cis") == 14
    assert m.value("veilleur_rules_loaded", pack="builtin:essentials") is None


def test_outbox_gauges_zero_for_configured_idle_sinks() -> None:
    m = Metrics()
    stats = SimpleNamespace(
        pending_by_sink={"ops-sns": 4},
        oldest_pending_age_by_sink={"ops-sns": timedelta(minutes=2)},
        dead_by_sink={"bus": 1},
    )
    m.observe_outbox(stats, sinks=["ops-sns", "bus", "pager"])
    assert m.value("veilleur_outbox_depth", sink="ops-sns") == 4
    assert m.value("veilleur_outbox_oldest_age_seconds", sink="ops-sns") == 120
    assert m.value("veilleur_outbox_depth", sink="pager") == 0
    assert m.value("veilleur_outbox_oldest_age_seconds", sink="bus") == 0
    assert m.value("veilleur_outbox_dead_letters", sink="bus") == 1
    m.observe_notification("ops-sns", "delivered")
    m.observe_dead_letter("bus")
    assert m.value("veilleur_notifications_total", sink="ops-sns", outcome="delivered") == 1
    assert m.value("veilleur_dead_letters_total", sink="bus") == 1


def test_aws_throttled_call_counts_twice() -> None:
    m = Metrics()
    op = {"operation": "LookupEvents", "account": ACCT, "region": REGION}
    m.observe_aws_call("LookupEvents", ACCT, REGION, "ok")
    m.observe_aws_call("LookupEvents", ACCT, REGION, "throttled")
    m.observe_metric_queries(ACCT, REGION, 37, 30)
    assert m.value("veilleur_aws_api_calls_total", **op, outcome="ok") == 1
    assert m.value("veilleur_aws_api_calls_total", **op, outcome="throttled") == 1
    assert m.value("veilleur_aws_throttles_total", **op) == 1
    assert m.value("veilleur_metric_queries_total", account=ACCT, region=REGION) == 37
    assert m.value("veilleur_metrics_requested_total", account=ACCT, region=REGION) == 30


def test_process_metrics_and_exposition_text() -> None:
    m = Metrics(version="9.9.9", python="3.11.0")
    m.set_ready(True)
    m.observe_reload(ok=False)
    text = m.render().decode()
    assert 'veilleur_build_info{python="3.11.0",version="9.9.9"} 1.0' in text
    assert "veilleur_ready 1.0" in text
    assert 'veilleur_config_reloads_total{outcome="error"} 1.0' in text


# -- health routing (the HTTP side is in tests/integration/test_health_server.py) ----------


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_heartbeat_goes_stale_and_recovers() -> None:
    clock = FakeClock()
    hb = Heartbeat(max_silence=60, clock=clock)
    assert hb.alive()
    clock.t += 60
    assert hb.alive()
    clock.t += 1
    assert not hb.alive()
    hb.beat()
    assert hb.alive()
    assert hb.silence() == 0


def test_heartbeat_needs_a_positive_bound() -> None:
    with pytest.raises(ValueError, match="positive"):
        Heartbeat(0)


def test_routes_without_http() -> None:
    clock = FakeClock()
    state = {"ready": False}

    def readiness() -> tuple[bool, list[str]]:
        if state["ready"]:
            return True, ["config loaded"]
        return False, ["store not open"]

    app = HealthServer(Metrics(), Heartbeat(30, clock), readiness)
    assert app.respond("/healthz")[:2] == (200, "text/plain; charset=utf-8")
    assert app.respond("/readyz") == (
        503,
        "text/plain; charset=utf-8",
        b"not ready\nstore not open\n",
    )
    state["ready"] = True
    assert app.respond("/readyz")[0] == 200
    clock.t += 31
    status, _, body = app.respond("/healthz")
    assert status == 503
    assert b"silent for 31s" in body
    assert app.respond("/nope")[0] == 404
    assert app.respond("/metrics")[0] == 200


def test_a_failing_readiness_check_is_not_ready() -> None:
    def broken() -> tuple[bool, list[str]]:
        raise RuntimeError("database is locked")

    status, _, body = HealthServer(Metrics(), Heartbeat(30), broken).respond("/readyz")
    assert status == 503
    assert b"readiness check failed: RuntimeError" in body


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:9108", ("127.0.0.1", 9108)),
        ("[::1]:0", ("::1", 0)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
    ],
)
def test_parse_listen(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["9108", ":9108", "host:", "host:port", "host:70000"])
def test_parse_listen_rejects(listen: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen(listen)


# -- systemd -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, timedelta(seconds=15)),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, timedelta(seconds=15)),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4243"}, None),
        ({"WATCHDOG_USEC": "1"}, timedelta(microseconds=0.5)),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": ""}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "30s"}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"}, None),
    ],
)
def test_watchdog_interval(environ: dict[str, str], expected: timedelta | None) -> None:
    assert watchdog_interval(environ, pid=4242) == expected


def test_watchdog_interval_defaults_to_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.getpid", lambda: 77)
    env = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "77"}
    assert watchdog_interval(env) == timedelta(seconds=1)


def test_notifier_speaks_sd_notify_over_a_real_socket(tmp_path: Path) -> None:
    with NotifyReceiver(tmp_path / "notify") as rx:
        n = Notifier(str(rx.path), monotonic_ns=lambda: 123_456_789_000)
        assert n.enabled
        assert n.ready(status="watching 2 regions")
        assert rx.receive() == {"READY": "1", "STATUS": "watching 2 regions"}
        assert n.watchdog()
        assert rx.receive() == {"WATCHDOG": "1"}
        assert n.reloading()
        assert rx.receive() == {"RELOADING": "1", "MONOTONIC_USEC": "123456789"}
        assert n.status("line one\nREADY=1")  # a newline must not smuggle in an assignment
        assert rx.receive() == {"STATUS": "line one READY=1"}
        assert n.stopping()
        assert rx.receive() == {"STOPPING": "1"}


def test_notifier_from_env_uses_notify_socket(tmp_path: Path) -> None:
    with NotifyReceiver(tmp_path / "n") as rx:
        assert Notifier.from_env(rx.environ).ready()
        assert rx.receive() == {"READY": "1"}


def test_notifier_reaches_an_abstract_socket() -> None:
    name = f"veilleur-test-{id(object())}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as rx:
        rx.bind("\0" + name)
        rx.settimeout(5)
        assert Notifier.from_env({"NOTIFY_SOCKET": "@" + name}).watchdog()
        assert rx.recv(4096) == b"WATCHDOG=1"


@pytest.mark.parametrize("environ", [{}, {"NOTIFY_SOCKET": ""}, {"NOTIFY_SOCKET": "relative"}])
def test_notifier_is_a_no_op_outside_systemd(environ: dict[str, str]) -> None:
    n = Notifier.from_env(environ)
    assert not n.enabled
    assert not n.ready()
    assert not n.watchdog()


def test_notifier_survives_a_missing_socket(tmp_path: Path) -> None:
    n = Notifier(str(tmp_path / "gone"))
    assert n.enabled
    assert not n.ready()  # says it failed, does not raise


# -- redaction -----------------------------------------------------------------------------


def test_redacts_sensitive_keys_at_any_depth_in_any_case() -> None:
    doc: dict[str, Any] = {
        "AWS_SECRET_ACCESS_KEY": "x",
        "creds": {
            "AccessKeyId": "AKIAIOSFODNN7EXAMPLE",
            "SecretAccessKey": "y",
            "SessionToken": "z",
            "Expiration": "2026-01-01T13:00:00Z",
        },
        "headers": [{"Authorization": "AWS4-HMAC-SHA256 ...", "X-Amz-Security-Token": "t"}],
        "user": {"password": "hunter2", "name": "alice"},
        "signature": "abc",
        "session_token": "s",
        "account": ACCT,
    }
    out = redact(doc)
    assert out["AWS_SECRET_ACCESS_KEY"] == REDACTED
    assert out["creds"] == {
        "AccessKeyId": "AKIAIOSFODNN7EXAMPLE",
        "SecretAccessKey": REDACTED,
        "SessionToken": REDACTED,
        "Expiration": "2026-01-01T13:00:00Z",
    }
    assert out["headers"] == [{"Authorization": REDACTED, "X-Amz-Security-Token": REDACTED}]
    assert out["user"] == {"password": REDACTED, "name": "alice"}
    assert out["signature"] == out["session_token"] == REDACTED
    assert out["account"] == ACCT
    assert doc["user"]["password"] == "hunter2"  # the caller's data is not touched


def test_redacts_values_that_look_like_secrets() -> None:
    assert redact_text(f"key is {SECRET}.") == f"key is {REDACTED}."
    assert redact_text(SESSION) == REDACTED
    assert redact({"note": [("harmless", SECRET)]}) == {"note": [["harmless", REDACTED]]}
    header = "AWS4-HMAC-SHA256 Credential=AKIA/20260101/us-east-1/sts/aws4_request, Signature=" + (
        "ab" * 32
    )
    assert redact_text(header).endswith(f"Signature={REDACTED}")
    url = "https://x.s3.amazonaws.com/k?X-Amz-Security-Token=FQoG%2Fabc&X-Amz-Signature=deadbeef"
    assert "FQoG" not in redact_text(url)
    assert "deadbeef" not in redact_text(url)


@pytest.mark.parametrize(
    "text",
    [
        "a" * 40,  # a hex digest: one case only
        "0123456789abcdef0123456789abcdef01234567",
        "AKIAIOSFODNN7EXAMPLE",  # access key ids identify, they do not authenticate
        "arn:aws:iam::123456789012:role/veilleur-reader",
        "ConsoleLogin failed for root",
    ],
)
def test_leaves_ordinary_values_alone(text: str) -> None:
    assert redact_text(text) == text


def test_redaction_stops_at_cycles() -> None:
    loop: dict[str, object] = {"a": 1}
    loop["self"] = loop
    assert "a" in redact(loop)


# -- logging -------------------------------------------------------------------------------


@pytest.fixture
def logs() -> Iterator[None]:
    yield
    reset_logging()


class TtyStream(io.StringIO):
    def isatty(self) -> bool:
        return True


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.usefixtures("logs")
def test_json_lines_with_utc_time_level_event_and_context() -> None:
    out = io.StringIO()
    configure_logging("info", "json", out)
    log = get_logger(account=ACCT)
    log.info("poll done", region=REGION, creds={"SecretAccessKey": SECRET}, note=SECRET)
    log.debug("not at info")
    [rec] = lines(out)
    assert rec["event"] == "poll done"
    assert rec["level"] == "info"
    assert rec["account"] == ACCT
    assert rec["region"] == REGION
    assert rec["creds"] == {"SecretAccessKey": REDACTED}
    assert rec["note"] == REDACTED
    assert str(rec["timestamp"]).endswith("Z")
    assert datetime.fromisoformat(str(rec["timestamp"])).utcoffset() == timedelta(0)
    assert SECRET not in out.getvalue()


@pytest.mark.usefixtures("logs")
def test_exception_is_one_redacted_field_on_one_line() -> None:
    out = io.StringIO()
    configure_logging("info", "auto", out)  # auto, not a TTY: JSON
    try:
        raise ValueError(f"cannot parse aws_secret_access_key={SECRET}")
    except ValueError:
        get_logger().exception("reload failed")
    assert len(out.getvalue().splitlines()) == 1
    [rec] = lines(out)
    assert rec["level"] == "error"
    assert "Traceback" in str(rec["exception"])
    assert "ValueError: cannot parse" in str(rec["exception"])
    assert SECRET not in out.getvalue()


@pytest.mark.usefixtures("logs")
def test_stdlib_loggers_go_through_the_same_pipeline_at_warning() -> None:
    out = io.StringIO()
    configure_logging("debug", "json", out)
    logging.getLogger("botocore.credentials").debug("Found credentials %s", SECRET)
    logging.getLogger("botocore.endpoint").info("Sending request")
    logging.getLogger("apscheduler.executors.default").warning("Run time of job was missed")
    logging.getLogger("botocore.retryhandler").error("header Signature=%s", "ab" * 32)
    recs = lines(out)
    assert [r["logger"] for r in recs] == ["apscheduler.executors.default", "botocore.retryhandler"]
    assert recs[0]["level"] == "warning"
    assert recs[0]["event"] == "Run time of job was missed"
    assert recs[1]["event"] == f"header Signature={REDACTED}"
    assert "timestamp" in recs[0]


@pytest.mark.usefixtures("logs")
def test_console_rendering_on_a_tty() -> None:
    out = TtyStream()
    configure_logging("info", "auto", out)
    get_logger().info("watching", token="abc")
    text = out.getvalue()
    assert "watching" in text
    assert "token" in text
    assert REDACTED in text
    assert "abc" not in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


@pytest.mark.usefixtures("logs")
def test_configure_twice_replaces_and_reset_removes_the_handler() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    first, second = io.StringIO(), io.StringIO()
    configure_logging("info", "json", first)
    configure_logging("warning", "json", second)
    assert len(root.handlers) == len(before) + 1
    get_logger().warning("once")
    get_logger().info("filtered")
    assert first.getvalue() == ""
    assert [r["event"] for r in lines(second)] == ["once"]
    reset_logging()
    assert root.handlers == before


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("loud", "json", io.StringIO())
    reset_logging()


@pytest.mark.timeout(60)  # without the fix this blocks: the failure is the timeout
def test_notifier_never_blocks_on_a_reader_that_does_not_keep_up(tmp_path: Path) -> None:
    with NotifyReceiver(tmp_path / "slow") as rx:  # bound, and never read
        n = Notifier(str(rx.path))
        sent = [n.watchdog() for _ in range(200)]  # far past the datagram queue's length
        assert sent[0] is True
        assert sent[-1] is False  # dropped, as sd_notify does, instead of hanging the loop
        assert rx.receive() == {"WATCHDOG": "1"}  # what was queued is intact
