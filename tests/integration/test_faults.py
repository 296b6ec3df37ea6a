"""Faults on every side: LookupEvents throttling, 5xx and resets; SNS and EventBridge down.
Nothing is lost, nothing is sent twice with another id, and the metrics show the backlog."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

from tests.integration.pipeline_kit import (
    FlakyProxy,
    failed_login,
    noise,
    open_pipeline,
    write_config,
)
from veilleur.emulator.cloudtrail_control import Fault, FaultKind

RULE = "console-login-failures-per-ip"


def sns_docs(msgs: list[dict]) -> list[dict]:
    return [json.loads(json.loads(m["Body"])["Message"]) for m in msgs]


def test_lookup_faults_are_retried_and_nothing_is_lost(
    tmp_path: Path, clock, emulator, open_world, receive_until
) -> None:
    p, topic, _bus = open_world("t")
    t0 = clock.now()
    emulator.add_events([noise(t0 + timedelta(seconds=i), i) for i in range(180)], delay=30)
    emulator.add_events(
        [failed_login(t0 + timedelta(seconds=20 * i), i) for i in range(5)], delay=60
    )
    emulator.inject_fault(Fault(FaultKind.THROTTLE, count=4))
    emulator.inject_fault(Fault(FaultKind.INTERNAL_ERROR, count=2))
    emulator.inject_fault(Fault(FaultKind.RESET, count=2))
    emulator.inject_fault(Fault(FaultKind.SERVICE_UNAVAILABLE, count=2))
    reports = p.run_for(6 * 60)
    docs = [
        d for d in sns_docs(receive_until(topic.queue_url, 5, deadline=5)) if d["rule_id"] == RULE
    ]
    assert len(docs) == 1 and docs[0]["count"] == 5
    assert any(r.complete for r in reports)
    throttles = p.metrics.value(
        "veilleur_aws_throttles_total",
        operation="LookupEvents",
        account="123456789012",
        region="us-east-1",
    )
    assert throttles and throttles >= 1
    assert emulator.stats().faults_pending == ()


def test_a_poll_that_gives_up_does_not_move_the_watermark(
    tmp_path: Path, clock, emulator, open_world, receive_until
) -> None:
    p, topic, _bus = open_world("t")
    t0 = clock.now()
    emulator.add_events([failed_login(t0 + timedelta(seconds=i), i) for i in range(5)], delay=10)
    clock.advance(60)
    emulator.inject_fault(Fault(FaultKind.INTERNAL_ERROR, count=50))  # more than one poll retries
    (report,) = p.tick()
    assert not report.complete and report.error
    source = p.watch.sources[0]
    assert source.state.watermark is None  # never advanced past an unread window
    assert (
        p.metrics.value(
            "veilleur_poll_behind_total",
            source="cloudtrail",
            account="123456789012",
            region="us-east-1",
        )
        == 1
    )
    emulator.reset(events=False, stats=False)  # the faults go away
    p.run_for(60)
    docs = [
        d for d in sns_docs(receive_until(topic.queue_url, 5, deadline=5)) if d["rule_id"] == RULE
    ]
    assert len(docs) == 1


def test_sinks_down_then_back_deliver_the_backlog_once(
    tmp_path: Path,
    clock,
    emulator,
    moto_url,
    monkeypatch,
    sns_topic_to_queue,
    bus_rule_to_queue,
    receive_until,
) -> None:
    topic = sns_topic_to_queue("t")
    bus = bus_rule_to_queue("b")
    u = urlparse(moto_url)
    proxy = FlakyProxy(u.hostname or "127.0.0.1", u.port or 80)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SNS", proxy.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_EVENTBRIDGE", proxy.url)
    proxy.up = False
    p = open_pipeline(
        write_config(tmp_path, topic.topic_arn, bus.bus_name, ["builtin:essentials"]), clock
    )
    t0 = clock.now()
    for burst in range(3):
        emulator.add_events(
            [
                failed_login(t0 + timedelta(seconds=10 * i + 100 * burst), i, ip=f"192.0.2.{burst}")
                for i in range(5)
            ],
            delay=30,
        )
    p.run_for(10 * 60)
    assert receive_until(topic.queue_url, 1, deadline=0.5) == []
    depth = p.metrics.value("veilleur_outbox_depth", sink="security-topic")
    age = p.metrics.value("veilleur_outbox_oldest_age_seconds", sink="security-topic")
    assert depth and depth >= 3
    assert age and age > 60
    assert p.metrics.value(
        "veilleur_notifications_total", sink="security-topic", outcome="retryable"
    )
    proxy.up = True
    p.run_for(3 * 60)
    docs = [
        d for d in sns_docs(receive_until(topic.queue_url, 20, deadline=5)) if d["rule_id"] == RULE
    ]
    assert sorted(d["group"]["sourceIPAddress"] for d in docs) == [
        "192.0.2.0",
        "192.0.2.1",
        "192.0.2.2",
    ]
    events = [json.loads(m["Body"]) for m in receive_until(bus.queue_url, 20, deadline=5)]
    assert sorted(
        e["detail"]["notification_id"] for e in events if e["detail"]["rule_id"] == RULE
    ) == sorted(d["notification_id"] for d in docs)
    assert p.metrics.value("veilleur_outbox_depth", sink="security-topic") == 0
    proxy.close()
    p.store.close()


def test_a_failed_commit_is_replayed_without_double_counting(
    tmp_path: Path, clock, emulator, open_world, receive_until
) -> None:
    from veilleur.store.types import StoreError

    p, topic, _bus = open_world("t")
    t0 = clock.now()
    # Three failures visible at once, two more a few minutes later.
    emulator.add_events([failed_login(t0 + timedelta(seconds=i), i) for i in range(3)], delay=5)
    emulator.add_events(
        [failed_login(t0 + timedelta(seconds=i), i) for i in range(3, 5)], delay=150
    )
    clock.advance(60)
    real_commit = p.store.commit_tick
    failures = []

    def flaky_commit(tick):  # the disk is full once: the whole tick must be replayed
        if not failures:
            failures.append(tick)
            raise StoreError("disk I/O error (injected)")
        return real_commit(tick)

    p.store.commit_tick = flaky_commit  # type: ignore[method-assign]
    (first,) = p.tick()
    assert not first.ok and "commit failed" in (first.error or "")
    assert failures and not failures[0].notifications  # 3 of 5: nothing to send yet
    assert p.watch.sources[0].state.watermark is None
    clock.advance(120)
    (second,) = p.tick()
    assert second.ok
    p.watch.drain()
    docs = [
        d for d in sns_docs(receive_until(topic.queue_url, 5, deadline=3)) if d["rule_id"] == RULE
    ]
    assert len(docs) == 1
    # The failed tick's three matches were forgotten, not counted twice: the window holds
    # five distinct events and closes on the fifth.
    assert docs[0]["count"] == 5
    assert len(set(docs[0]["sample_event_ids"])) == 5
    assert docs[0]["last_seen"].endswith(":04Z")


def test_a_poll_that_cannot_keep_up_says_so_and_catches_up_skipping_nothing(
    tmp_path: Path, clock, emulator, sns_topic_to_queue, bus_rule_to_queue, receive_until
) -> None:
    """Three hours of downtime, then a page budget of one slice per poll: each poll reads
    the oldest unread 30-minute slice, says it is behind, and the next one goes on."""
    topic = sns_topic_to_queue("t")
    bus = bus_rule_to_queue("b")
    ct = {"poll_interval": "30s", "lateness": "15m", "max_pages_per_poll": 1}
    cfg = write_config(
        tmp_path, topic.topic_arn, bus.bus_name, ["builtin:essentials"], {"cloudtrail": ct}
    )
    p = open_pipeline(cfg, clock)
    assert p.tick()[0].complete  # the watermark is set: the service was running
    t0 = clock.now()
    clock.advance(3 * 3600)  # down for three hours; meanwhile:
    records = [noise(t0 + timedelta(seconds=20 * i), i) for i in range(540)]
    for burst in range(6):
        at = t0 + timedelta(minutes=15 + 30 * burst)
        ip, user = f"203.0.113.{10 + burst}", f"user{burst}"
        records += [
            failed_login(at + timedelta(seconds=10 * i), i, ip=ip, user=user) for i in range(5)
        ]
    emulator.add_events(records, visible_at=clock.time() - 60)

    behind = 0
    for _ in range(20):
        (report,) = p.tick()
        p.watch.drain()
        clock.advance(30)
        if report.complete:
            break
        behind += 1
        assert "page budget" in (report.error or "")
    assert report.complete and behind >= 6  # one 30-minute slice per poll
    labels = {"account": "123456789012", "region": "us-east-1"}
    assert p.metrics.value("veilleur_poll_behind_total", source="cloudtrail", **labels) == behind
    assert p.metrics.value("veilleur_events_total", outcome="new", **labels) == len(records)
    ips = {
        d["group"]["sourceIPAddress"]
        for d in sns_docs(receive_until(topic.queue_url, 12, deadline=5))
        if d["rule_id"] == RULE
    }
    assert ips == {f"203.0.113.{10 + b}" for b in range(6)}
    p.store.close()
