"""The reference scenario and late events, over HTTP: emulator -> veilleur -> moto -> SQS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.integration.pipeline_kit import (
    FakeClock,
    Pipeline,
    failed_login,
    noise,
    open_pipeline,
    write_config,
)
from veilleur.emulator import CloudTrailEmulator

RULE = "console-login-failures-per-ip"


@pytest.fixture
def pipeline(
    tmp_path: Path,
    clock: FakeClock,
    emulator: CloudTrailEmulator,
    sns_topic_to_queue,
    bus_rule_to_queue,
) -> Iterator[tuple[Pipeline, object, object]]:
    topic = sns_topic_to_queue("veilleur-alerts")
    bus = bus_rule_to_queue("veilleur", pattern={"source": ["veilleur"]})
    cfg = write_config(tmp_path, topic.topic_arn, bus.bus_name, ["builtin:essentials"])
    p = open_pipeline(cfg, clock)
    yield p, topic, bus
    p.store.close()


def sns_docs(messages: list[dict]) -> list[dict]:
    return [json.loads(json.loads(m["Body"])["Message"]) for m in messages]


def test_reference_scenario_one_alert_to_topic_and_bus(
    pipeline, emulator, clock, receive_until
) -> None:
    p, topic, bus = pipeline
    t0 = clock.now()
    # Background noise and 6 failed sign-ins from one IP within 3 minutes, visible 5 min later.
    emulator.add_events([noise(t0 + timedelta(seconds=7 * i), i) for i in range(120)], delay=240)
    emulator.add_events(
        [failed_login(t0 + timedelta(seconds=36 * i), i) for i in range(6)], delay=300
    )
    p.run_for(12 * 60)

    msgs = receive_until(topic.queue_url, 10, deadline=5.0)
    docs = [d for d in sns_docs(msgs) if d["rule_id"] == RULE]
    assert len(docs) == 1, docs
    doc = docs[0]
    assert doc["count"] == 5
    assert doc["group"] == {"sourceIPAddress": "203.0.113.66"}
    nid = doc["notification_id"]
    # The email and SMS texts the topic's other subscribers receive.
    texts = doc["texts"]
    assert nid in texts["email"]
    assert "203.0.113.66" in texts["email"]
    assert len(texts["sms"].encode()) <= 140
    assert "<script>" not in texts["email"]
    assert len(texts["subject"]) < 100

    events = [json.loads(m["Body"]) for m in receive_until(bus.queue_url, 10, deadline=5.0)]
    mine = [e for e in events if e["detail"]["rule_id"] == RULE]
    assert len(mine) == 1
    assert mine[0]["source"] == "veilleur"
    assert mine[0]["detail-type"] == "Veilleur Alert"
    assert mine[0]["detail"]["notification_id"] == nid


def test_late_events_are_caught_in_their_window(pipeline, emulator, clock, receive_until) -> None:
    p, topic, _bus = pipeline
    t0 = clock.now()
    # 5 failures in 2 minutes, each visible only 12 minutes after its eventTime.
    emulator.add_events(
        [failed_login(t0 + timedelta(seconds=30 * i), i) for i in range(5)], delay=720
    )
    p.run_for(11 * 60)
    assert receive_until(topic.queue_url, 1, deadline=0.5) == []
    p.run_for(5 * 60)
    docs = [
        d for d in sns_docs(receive_until(topic.queue_url, 5, deadline=5.0)) if d["rule_id"] == RULE
    ]
    assert len(docs) == 1
    assert docs[0]["count"] == 5
    assert docs[0]["first_seen"].startswith(t0.strftime("%Y-%m-%dT%H:%M"))


def test_overlapping_polls_never_alert_twice(pipeline, emulator, clock, receive_until) -> None:
    p, topic, _bus = pipeline
    t0 = clock.now()
    emulator.add_events(
        [failed_login(t0 + timedelta(seconds=10 * i), i) for i in range(5)], delay=60
    )
    p.run_for(30 * 60)  # every event is re-read by ~30 overlapping polls
    docs = [
        d for d in sns_docs(receive_until(topic.queue_url, 5, deadline=3.0)) if d["rule_id"] == RULE
    ]
    assert len(docs) == 1
    assert (
        p.metrics.value(
            "veilleur_events_total", account="123456789012", region="us-east-1", outcome="duplicate"
        )
        > 5
    )


def test_events_later_than_lateness_are_caught_by_the_late_sweep(
    tmp_path: Path, emulator, clock, open_world, receive_until
) -> None:
    p, topic, _bus = open_world("late")
    t0 = clock.now()
    # Four failures on time, the fifth shown 25 minutes late: past the 15-minute lateness.
    emulator.add_events(
        [failed_login(t0 + timedelta(seconds=20 * i), i) for i in range(4)], delay=60
    )
    emulator.add_events([failed_login(t0 + timedelta(seconds=80), 4)], delay=25 * 60)
    p.run_for(24 * 60)
    assert receive_until(topic.queue_url, 1, deadline=0.5) == []
    p.run_for(8 * 60)  # visible at +25m; the sweep (every 5m) reads it
    docs = [
        d for d in sns_docs(receive_until(topic.queue_url, 5, deadline=5)) if d["rule_id"] == RULE
    ]
    assert len(docs) == 1
    assert docs[0]["count"] == 5
    p.run_for(10 * 60)  # later sweeps see it again and drop it as seen
    assert receive_until(topic.queue_url, 1, deadline=0.5) == []


def test_without_the_sweep_such_a_late_event_is_out_of_reach(
    tmp_path: Path, emulator, clock, sns_topic_to_queue, bus_rule_to_queue, receive_until
) -> None:
    topic = sns_topic_to_queue("nosweep")
    bus = bus_rule_to_queue("nosweep")
    cfg = write_config(
        tmp_path,
        topic.topic_arn,
        bus.bus_name,
        ["builtin:essentials"],
        extra={"cloudtrail": {"lateness": "15m", "sweep_lateness": "0s"}},
    )
    p = open_pipeline(cfg, clock)
    t0 = clock.now()
    emulator.add_events(
        [failed_login(t0 + timedelta(seconds=20 * i), i) for i in range(4)], delay=60
    )
    emulator.add_events([failed_login(t0 + timedelta(seconds=80), 4)], delay=25 * 60)
    p.run_for(32 * 60)
    assert receive_until(topic.queue_url, 1, deadline=0.5) == []
    p.store.close()


def test_the_late_sweep_is_spread_over_polls_on_a_busy_account(
    tmp_path: Path, emulator, clock, sns_topic_to_queue, bus_rule_to_queue, receive_until
) -> None:
    """A sweep reads a few pages per poll and resumes: the main window is never held up by
    the whole look-back at once, and the late event is still caught."""
    topic = sns_topic_to_queue("spread")
    bus = bus_rule_to_queue("spread")
    ct = {"lateness": "5m", "sweep_lateness": "30m", "sweep_max_pages_per_poll": 10}
    cfg = write_config(
        tmp_path, topic.topic_arn, bus.bus_name, ["builtin:essentials"], {"cloudtrail": ct}
    )
    p = open_pipeline(cfg, clock)
    t0 = clock.now()
    emulator.add_events([noise(t0 + timedelta(seconds=i / 2), i) for i in range(2 * 40 * 60)])
    emulator.add_events(
        [failed_login(t0 + timedelta(seconds=20 * i), i) for i in range(4)], delay=60
    )
    emulator.add_events([failed_login(t0 + timedelta(seconds=80), 4)], delay=12 * 60)
    source = p.watch.sources[0]
    pages, resumed = [], 0
    while clock.time() < t0.timestamp() + 30 * 60:
        p.tick()
        p.watch.drain()
        assert source.last_result is not None
        pages.append(source.last_result.pages)
        resumed += source.state.sweep_cursor is not None
        clock.advance(30)
    docs = [
        d for d in sns_docs(receive_until(topic.queue_url, 5, deadline=5)) if d["rule_id"] == RULE
    ]
    assert len(docs) == 1 and docs[0]["count"] == 5
    # 25 minutes of look-back at 2 events/s is 60 pages; no poll read them all at once.
    assert resumed >= 3
    assert max(pages) < 13 + 60
    p.store.close()
