"""Sliding windows by eventTime: counting, late events, realert, expiry, persistence."""

from __future__ import annotations

import json
from datetime import timedelta

from tests.unit.helpers import T0, event, rule
from veilleur.rules.engine import Engine

FIVE_MIN = timedelta(minutes=5)


def run(engine: Engine, events: list, now_s: float | None = None) -> list:
    events = sorted(events, key=lambda e: (e.event_time, e.event_id))
    now = T0 + timedelta(seconds=now_s if now_s is not None else 0)
    if now_s is None:
        now = max(e.event_time for e in events)
    return engine.process(events, now)


def test_fires_once_when_count_reached_within_window() -> None:
    engine = Engine([rule(count=5, group_by=("sourceIPAddress",))])
    alerts = run(engine, [event(i * 30) for i in range(6)])  # 6 in 2.5 minutes
    assert len(alerts) == 1
    a = alerts[0]
    assert a.count == 5
    assert a.first_seen == T0
    assert a.last_seen == T0 + timedelta(seconds=120)
    assert a.group == (("sourceIPAddress", "203.0.113.9"),)
    assert len(a.sample_event_ids) == 5
    assert a.distinct["sourceIPAddress"] == ("203.0.113.9",)


def test_four_is_not_five() -> None:
    engine = Engine([rule(count=5)])
    assert run(engine, [event(i) for i in range(4)]) == []


def test_spread_wider_than_window_does_not_fire() -> None:
    engine = Engine([rule(count=5)])
    # 5 events, 2 minutes apart: any 5-minute window holds at most 3.
    assert run(engine, [event(i * 120) for i in range(5)]) == []


def test_window_is_inclusive_at_its_length() -> None:
    engine = Engine([rule(count=2, within=timedelta(seconds=300))])
    assert len(run(engine, [event(0), event(300)])) == 1
    engine = Engine([rule(count=2, within=timedelta(seconds=300))])
    assert run(engine, [event(0), event(301)]) == []


def test_groups_are_counted_apart() -> None:
    engine = Engine([rule(count=3, group_by=("sourceIPAddress",))])
    evs = [event(i, ip=f"198.51.100.{i % 3}") for i in range(6)]  # 2 per IP
    assert run(engine, evs) == []
    alerts = run(engine, [event(10, ip="198.51.100.0")])
    assert [a.group for a in alerts] == [(("sourceIPAddress", "198.51.100.0"),)]


def test_late_event_completes_an_older_window() -> None:
    engine = Engine([rule(count=3)])
    # Tick 1 sees events at t=0 and t=60; tick 2 sees t=30 (late) and t=900 (new).
    assert run(engine, [event(0), event(60)], now_s=600) == []
    alerts = run(engine, [event(30), event(900)], now_s=1200)
    assert len(alerts) == 1
    assert alerts[0].first_seen == T0
    assert alerts[0].last_seen == T0 + timedelta(seconds=60)


def test_out_of_order_within_one_batch_gives_same_answer() -> None:
    evs = [event(s) for s in (0, 200, 100, 50, 250)]
    a1 = Engine([rule(count=5)]).process(sorted(evs, key=lambda e: e.event_time), T0)
    engine = Engine([rule(count=5)])
    a2 = []
    for e in evs:  # one at a time, in arrival (not time) order
        a2 += engine.process([e], T0)
    assert len(a1) == len(a2) == 1
    assert a1[0].count == a2[0].count == 5


def test_matches_are_consumed_after_firing() -> None:
    engine = Engine([rule(count=2)])
    alerts = run(engine, [event(i) for i in range(5)])
    assert [a.count for a in alerts] == [2, 2]


def test_realert_suppresses_repeats_per_group_by_event_time() -> None:
    engine = Engine([rule(count=2, group_by=("sourceIPAddress",), realert=timedelta(minutes=30))])
    first = run(engine, [event(0), event(10)])
    assert len(first) == 1
    # Still inside 30 minutes of eventTime: suppressed, even with a full window.
    assert run(engine, [event(600), event(610), event(620)]) == []
    assert engine.stats.suppressed["r"] >= 1
    # Another IP is another group: not suppressed.
    assert len(run(engine, [event(700, ip="192.0.2.1"), event(701, ip="192.0.2.1")])) == 1
    # After 30 minutes of eventTime the same group can alert again.
    again = run(engine, [event(1810), event(1811)])  # firing was at t=10
    assert len(again) == 1
    assert again[0].details.get("suppressed_before", 0) >= 1


def test_realert_without_threshold_suppresses_single_event_rule() -> None:
    engine = Engine([rule(group_by=("sourceIPAddress",), realert=timedelta(minutes=10))])
    alerts = run(engine, [event(0), event(60), event(120)])
    assert len(alerts) == 1
    assert len(run(engine, [event(601)])) == 1


def test_every_match_alerts_without_threshold_or_realert() -> None:
    engine = Engine([rule()])
    alerts = run(engine, [event(0), event(1), event(2, name="GetObject")])
    assert len(alerts) == 2
    assert all(a.count == 1 for a in alerts)
    assert engine.group_count() == 0  # no state kept for stateless rules


def test_groups_expire_and_memory_returns() -> None:
    engine = Engine([rule(count=5, group_by=("sourceIPAddress",))], lateness=timedelta(minutes=15))
    evs = [event(i, ip=f"10.0.{i // 250}.{i % 250}") for i in range(1000)]
    run(engine, evs, now_s=1000)
    assert engine.group_count() == 1000
    # now beyond within (5m) + lateness (15m) after the newest event
    engine.expire(T0 + timedelta(seconds=1000 + 20 * 60 + 1))
    assert engine.group_count() == 0


def test_notification_id_is_deterministic_across_replays() -> None:
    evs = [event(i * 10) for i in range(5)]
    a = Engine([rule(count=5)]).process(evs, T0)
    b = Engine([rule(count=5)]).process(evs, T0)
    assert a[0].notification_id == b[0].notification_id
    assert a[0].fingerprint == b[0].fingerprint
    c = Engine([rule(count=5)]).process([event(i * 10 + 1) for i in range(5)], T0)
    assert c[0].notification_id != a[0].notification_id
    assert c[0].fingerprint == a[0].fingerprint  # same rule, same (empty) group


def test_state_round_trips_through_json_and_resumes() -> None:
    r = rule(count=4, group_by=("sourceIPAddress",), realert=timedelta(minutes=30))
    engine = Engine([r])
    run(engine, [event(0), event(10), event(20)], now_s=30)
    saved = json.loads(json.dumps(engine.state_json()))
    restored = Engine([r])
    restored.load_state(saved)
    alerts = restored.process([event(40)], T0 + timedelta(seconds=40))
    assert len(alerts) == 1
    assert alerts[0].count == 4
    # A state blob for a rule that no longer exists is ignored.
    other = Engine([rule("other", count=2)])
    other.load_state(saved)
    assert other.group_count() == 0


def test_group_value_of_missing_field_is_empty_string() -> None:
    engine = Engine([rule(count=2, group_by=("userIdentity.accountId",))])
    alerts = run(engine, [event(0), event(1)])
    assert alerts[0].group == (("userIdentity.accountId", ""),)


def test_distinct_values_come_only_from_the_window_that_fired() -> None:
    engine = Engine([rule(count=5, group_by=("userIdentity.userName",))])
    early = event(0, ip="198.51.100.1")  # an old match, outside the burst's window
    burst = [event(600 + i, ip="203.0.113.66") for i in range(5)]
    alerts = run(engine, [early, *burst])
    assert len(alerts) == 1
    assert alerts[0].distinct["sourceIPAddress"] == ("203.0.113.66",)
    # The leftover match keeps its own values: it can still take part in a later window.
    late = [event(30 + i, ip="192.0.2.7") for i in range(4)]
    [again] = engine.process(late, T0 + timedelta(seconds=700))
    assert again.distinct["sourceIPAddress"] == ("198.51.100.1", "192.0.2.7")


def test_distinct_values_survive_a_restart() -> None:
    r = rule(count=3, group_by=("eventName",))
    engine = Engine([r])
    run(engine, [event(0, ip="198.51.100.1", user="bob"), event(1, user="carol")], now_s=2)
    restored = Engine([r])
    restored.load_state(json.loads(json.dumps(engine.state_json())))
    [alert] = restored.process([event(2, user="carol")], T0 + timedelta(seconds=3))
    assert alert.distinct["userName"] == ("bob", "carol")
    assert alert.distinct["sourceIPAddress"] == ("198.51.100.1", "203.0.113.9")


def test_state_of_the_previous_format_still_loads() -> None:
    r = rule(count=2, group_by=("sourceIPAddress",))
    old = {"t": [T0.timestamp()], "i": ["ev-old"], "d": {"userName": ["x"]}, "s": None, "n": 0}
    engine = Engine([r])
    state = engine.state_json()
    state["rules"] = {"r": [[[["sourceIPAddress", "203.0.113.9"]], old]]}
    engine.load_state(state)
    [alert] = engine.process([event(1)], T0 + timedelta(seconds=1))
    assert alert.count == 2
    assert alert.distinct["sourceIPAddress"] == ("203.0.113.9",)


def test_attacker_sized_values_are_capped_in_the_window_state() -> None:
    engine = Engine([rule(count=2, group_by=("userIdentity.userName",))])
    huge = "x" * 100_000
    run(engine, [event(0, user=huge)], now_s=1)
    assert len(json.dumps(engine.state_json())) < 5_000


def test_a_group_that_never_empties_does_not_keep_every_value_it_saw() -> None:
    engine = Engine([rule(count=10_000, group_by=("eventName",))])  # never fires
    for minute in range(60):  # one match a second from a new IP every second, for an hour
        batch = [event(minute * 60 + s, ip=f"10.0.{minute}.{s}") for s in range(60)]
        engine.process(batch, T0 + timedelta(seconds=minute * 60 + 59))
        engine.expire(T0 + timedelta(seconds=minute * 60 + 59))
    [(_, window)] = engine._windows["r"].items()
    assert len(window._interned) <= 2 * len(window.values) + 16
