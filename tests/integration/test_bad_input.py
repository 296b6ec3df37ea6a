"""Hostile and broken CloudTrail input: counted, escaped, never fatal."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path

from tests.integration.pipeline_kit import (
    failed_login,
)
from veilleur.emulator.cloudtrail_events import Scope, build_event
from veilleur.model import format_time

ACCOUNT, REGION = "123456789012", "us-east-1"


def corrupt(record: dict, text: str, delay: float = 10.0):
    stored = build_event(record, scope=Scope(ACCOUNT, REGION), delay=delay)
    return dataclasses.replace(stored, cloudtrail_event=text)


def test_bad_records_are_counted_and_hostile_text_is_escaped(
    tmp_path: Path, clock, emulator, open_world, receive_until
) -> None:
    p, topic, _bus = open_world("t")
    t0 = clock.now()
    base = failed_login(t0, 99)
    emulator.add_stored(
        [
            corrupt(dict(base, eventID="bad-json"), "{not json"),
            corrupt(dict(base, eventID="bad-shape"), json.dumps([1, 2, 3])),
            corrupt(
                dict(base, eventID="no-time"),
                json.dumps({"eventID": "no-time", "eventName": "X", "eventSource": "x"}),
            ),
            corrupt(dict(base, eventID="other-id"), json.dumps(dict(base, eventID="mismatch"))),
            corrupt(  # a time datetime cannot hold in UTC: once crashed every poll
                dict(base, eventID="overflow"),
                json.dumps(dict(base, eventID="overflow", eventTime="9999-12-31T23:59:59-14:00")),
            ),
            corrupt(dict(base, eventID="deep"), "[" * 100_000 + "]" * 100_000),
        ]
    )
    # A 1 MB record and hostile text in the fields a human will read.
    hostile_user = "<img src=x onerror=alert(1)>\u202e\x07\r\nSubject: pwned"
    big = failed_login(t0 + timedelta(seconds=1), 0, ip="198.51.100.9", user=hostile_user)
    big["requestParameters"] = {"blob": "A" * 1_000_000}
    records = [big] + [
        failed_login(t0 + timedelta(seconds=1 + i), i, ip="198.51.100.9", user=hostile_user)
        for i in range(1, 5)
    ]
    emulator.add_events(records, delay=10)
    reports = p.run_for(2 * 60)
    assert all(r.ok for r in reports)
    invalid = p.metrics.value(
        "veilleur_events_total", account=ACCOUNT, region=REGION, outcome="invalid"
    )
    assert invalid == 6  # each bad record counted once, not at every overlapping poll

    msgs = receive_until(topic.queue_url, 5, deadline=5)
    docs = [json.loads(json.loads(m["Body"])["Message"]) for m in msgs]
    alert = next(d for d in docs if d["rule_id"] == "console-login-failures-per-ip")
    texts = alert["texts"]
    for text in (texts["email"], texts["sms"], texts["subject"]):
        assert "<img" not in text
        assert "\u202e" not in text and "\x07" not in text
        assert "\nSubject: pwned" not in text
    assert "\n" not in texts["subject"] and "\r" not in texts["subject"]
    assert len(texts["sms"].encode()) <= 140
    # The machine-readable document keeps the value exactly (automation needs it), as JSON.
    assert hostile_user in alert["distinct"].get("userName", [])
    assert len(json.dumps(alert).encode()) < 256 * 1024


def test_records_in_the_future_or_far_past_do_not_break_the_poll(
    tmp_path: Path, clock, emulator, open_world
) -> None:
    p, _topic, _bus = open_world("t")
    rec = failed_login(clock.now(), 1)
    rec["eventTime"] = format_time(clock.now() + timedelta(days=3))  # a skewed clock upstream
    emulator.add_events([rec], visible_at=clock.time())
    reports = p.run_for(60)
    assert all(r.ok for r in reports)
