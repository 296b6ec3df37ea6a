"""The LookupEvents emulator's pure parts: derivation, validation, filtering, paging, rate
limit, faults, counters, and request dispatch without a server."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from veilleur.emulator import (
    CloudTrailEmulator,
    DelayModel,
    EmulatorConfig,
    Fault,
    FaultKind,
    Outcome,
    RateLimit,
    RateLimitMode,
    Resource,
    Scope,
)
from veilleur.emulator.cloudtrail import LOOKUP_EVENTS, scope_from_authorization
from veilleur.emulator.cloudtrail_control import Counters, FaultQueue, RateLimiter
from veilleur.emulator.cloudtrail_events import (
    AttributeKey,
    LookupAttribute,
    build_event,
    derive_resources,
    derive_username,
)
from veilleur.emulator.cloudtrail_store import (
    EventStore,
    LookupApiError,
    LookupQuery,
    parse_query,
)
from veilleur.model import InvalidRecord

T0 = 1_700_000_000.0
SCOPE = Scope("123456789012", "us-east-1")
AUTH = (
    "AWS4-HMAC-SHA256 Credential=testing/20231114/us-east-1/cloudtrail/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=abc"
)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def record(i: int, ts: float, **extra: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "eventVersion": "1.08",
        "eventID": f"ev-{i:04d}",
        "eventTime": iso(ts),
        "eventName": "DescribeInstances" if i % 2 else "RunInstances",
        "eventSource": "ec2.amazonaws.com",
        "awsRegion": "us-east-1",
        "readOnly": bool(i % 2),
        "userIdentity": {"type": "IAMUser", "userName": f"user{i % 3}", "accessKeyId": "AKIA1"},
    }
    rec.update(extra)
    return rec


def store_with(n: int, *, step: float = 10.0, delay: float = 0.0) -> EventStore:
    store = EventStore()
    for i in range(n):
        store.add(build_event(record(i, T0 + i * step), scope=SCOPE, delay=delay))
    return store


def ids(page_events: Any) -> list[str]:
    return [e.event_id for e in page_events]


def read_all(store: EventStore, query: LookupQuery, now: float) -> list[str]:
    seen: list[str] = []
    while True:
        page = store.lookup(query, SCOPE, now)
        seen += ids(page.events)
        if page.next_token is None:
            return seen
        query = LookupQuery(
            query.attribute,
            query.start_time,
            query.end_time,
            query.event_category,
            query.max_results,
            page.next_token,
        )


# ---- derivation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("identity", "expected"),
    [
        ({"type": "IAMUser", "userName": "alice", "arn": "arn:aws:iam::1:user/alice"}, "alice"),
        (
            {"type": "IAMUser", "userName": "HIDDEN_DUE_TO_SECURITY_REASONS"},
            "HIDDEN_DUE_TO_SECURITY_REASONS",
        ),
        ({"type": "Root", "arn": "arn:aws:iam::123456789012:root"}, "root"),
        (
            {
                "type": "AssumedRole",
                "arn": "arn:aws:sts::1:assumed-role/Admin/bob-session",
                "sessionContext": {"sessionIssuer": {"userName": "Admin"}},
            },
            "bob-session",
        ),
        ({"type": "FederatedUser", "arn": "arn:aws:sts::1:federated-user/carol"}, "carol"),
        ({"type": "AssumedRole", "sessionContext": {"sessionIssuer": {"userName": "Ops"}}}, "Ops"),
        ({"type": "AWSService", "invokedBy": "ec2.amazonaws.com"}, None),
    ],
)
def test_username_is_derived_as_event_history_shows_it(
    identity: dict[str, Any], expected: str | None
) -> None:
    assert derive_username({"userIdentity": identity}) == expected


def test_resources_come_from_the_resources_array_first() -> None:
    rec = {
        "eventSource": "s3.amazonaws.com",
        "requestParameters": {"bucketName": "ignored"},
        "resources": [{"type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::logs"}],
    }
    assert derive_resources(rec) == (Resource("AWS::S3::Bucket", "arn:aws:s3:::logs"),)


def test_resources_fall_back_to_request_parameters_of_the_right_service() -> None:
    rec = {"eventSource": "ec2.amazonaws.com", "requestParameters": {"groupId": "sg-1"}}
    assert derive_resources(rec) == (Resource("AWS::EC2::SecurityGroup", "sg-1"),)
    rec = {"eventSource": "iam.amazonaws.com", "requestParameters": {"groupId": "sg-1"}}
    assert derive_resources(rec) == ()


def test_item_fields_and_cloudtrail_event_string() -> None:
    rec = record(1, T0, sourceIPAddress="203.0.113.9")
    item = build_event(rec, scope=SCOPE).to_api()
    assert item["EventId"] == "ev-0001"
    assert item["ReadOnly"] == "true"
    assert item["AccessKeyId"] == "AKIA1"
    assert item["Username"] == "user1"
    assert item["EventTime"] == T0
    assert item["Resources"] == []
    assert isinstance(item["CloudTrailEvent"], str)
    assert json.loads(item["CloudTrailEvent"]) == rec


def test_visibility_is_event_time_plus_delay_or_explicit_but_never_before_the_event() -> None:
    assert build_event(record(1, T0), scope=SCOPE, delay=90.0).visible_at == T0 + 90.0
    assert build_event(record(1, T0), scope=SCOPE, visible_at=T0 + 5).visible_at == T0 + 5
    assert build_event(record(1, T0), scope=SCOPE, visible_at=T0 - 50).visible_at == T0


@pytest.mark.parametrize(
    "bad", [{"eventTime": "2023-01-01T00:00:00Z"}, "not a record", record(1, T0, eventTime="x")]
)
def test_invalid_records_are_refused(bad: object) -> None:
    with pytest.raises(InvalidRecord):
        build_event(bad, scope=SCOPE)


def test_negative_delay_is_refused() -> None:
    with pytest.raises(InvalidRecord):
        build_event(record(1, T0), scope=SCOPE, delay=-1.0)


# ---- validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "error_type"),
    [
        ({"MaxResults": 0}, "InvalidMaxResultsException"),
        ({"MaxResults": 51}, "InvalidMaxResultsException"),
        ({"MaxResults": "10"}, "InvalidMaxResultsException"),
        (
            {
                "LookupAttributes": [
                    {"AttributeKey": "EventName", "AttributeValue": "A"},
                    {"AttributeKey": "Username", "AttributeValue": "B"},
                ]
            },
            "InvalidLookupAttributesException",
        ),
        (
            {"LookupAttributes": [{"AttributeKey": "SourceIp", "AttributeValue": "x"}]},
            "InvalidLookupAttributesException",
        ),
        (
            {"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": ""}]},
            "InvalidLookupAttributesException",
        ),
        ({"EventCategory": "data"}, "InvalidEventCategoryException"),
        ({"StartTime": T0 + 1, "EndTime": T0}, "InvalidTimeRangeException"),
        ({"StartTime": "yesterday"}, "SerializationException"),
        ([], "SerializationException"),
    ],
)
def test_invalid_requests_raise_the_api_error(body: object, error_type: str) -> None:
    with pytest.raises(LookupApiError) as info:
        parse_query(body)
    assert info.value.error_type == error_type
    assert info.value.status == 400


def test_defaults_and_a_valid_request() -> None:
    assert parse_query({}) == LookupQuery()
    query = parse_query(
        {
            "LookupAttributes": [{"AttributeKey": "ReadOnly", "AttributeValue": "false"}],
            "StartTime": T0,
            "EndTime": T0,
            "MaxResults": 1,
        }
    )
    assert query.attribute == LookupAttribute(AttributeKey.READ_ONLY, "false")
    assert (query.start_time, query.end_time, query.max_results) == (T0, T0, 1)


# ---- filtering and paging --------------------------------------------------------------


def test_newest_first_and_paging_serves_every_event_once() -> None:
    store = store_with(120)
    first = store.lookup(LookupQuery(), SCOPE, T0 + 10_000)
    assert len(first.events) == 50
    assert first.events[0].event_id == "ev-0119"
    assert first.next_token is not None
    times = [e.event_time for e in first.events]
    assert times == sorted(times, reverse=True)
    assert read_all(store, LookupQuery(max_results=7), T0 + 10_000) == [
        f"ev-{i:04d}" for i in range(119, -1, -1)
    ]


def test_no_token_when_the_last_page_is_exactly_full() -> None:
    page = store_with(50).lookup(LookupQuery(), SCOPE, T0 + 10_000)
    assert len(page.events) == 50
    assert page.next_token is None


def test_time_range_is_inclusive_at_both_ends() -> None:
    store = store_with(10)
    query = LookupQuery(start_time=T0 + 20, end_time=T0 + 50)
    assert ids(store.lookup(query, SCOPE, T0 + 1000).events) == [
        "ev-0005",
        "ev-0004",
        "ev-0003",
        "ev-0002",
    ]


def test_same_second_events_page_without_loss() -> None:
    store = EventStore()
    for i in range(9):
        store.add(build_event(record(i, T0), scope=SCOPE))
    assert sorted(read_all(store, LookupQuery(max_results=2), T0 + 1)) == [
        f"ev-{i:04d}" for i in range(9)
    ]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (AttributeKey.EVENT_ID, "ev-0003", {"ev-0003"}),
        (AttributeKey.EVENT_NAME, "RunInstances", {"ev-0000", "ev-0002", "ev-0004"}),
        (AttributeKey.EVENT_SOURCE, "ec2.amazonaws.com", {f"ev-{i:04d}" for i in range(6)}),
        (AttributeKey.READ_ONLY, "true", {"ev-0001", "ev-0003", "ev-0005"}),
        (AttributeKey.USERNAME, "user2", {"ev-0002", "ev-0005"}),
        (AttributeKey.ACCESS_KEY_ID, "AKIA1", {f"ev-{i:04d}" for i in range(6)}),
        (AttributeKey.RESOURCE_TYPE, "AWS::EC2::SecurityGroup", {"ev-0004"}),
        (AttributeKey.RESOURCE_NAME, "sg-4", {"ev-0004"}),
    ],
)
def test_each_lookup_attribute_filters(key: AttributeKey, value: str, expected: set[str]) -> None:
    store = EventStore()
    for i in range(6):
        rec = record(i, T0 + i, requestParameters={"groupId": f"sg-{i}"} if i == 4 else {})
        store.add(build_event(rec, scope=SCOPE))
    query = LookupQuery(attribute=LookupAttribute(key, value))
    assert set(ids(store.lookup(query, SCOPE, T0 + 100).events)) == expected


def test_a_token_is_tied_to_its_parameters() -> None:
    store = store_with(20)
    token = store.lookup(LookupQuery(max_results=5), SCOPE, T0 + 1000).next_token
    assert token is not None
    # Same parameters, another page size: accepted.
    assert len(store.lookup(LookupQuery(max_results=3, next_token=token), SCOPE, T0 + 1000).events)
    for other in (
        LookupQuery(start_time=T0, next_token=token),
        LookupQuery(attribute=LookupAttribute(AttributeKey.USERNAME, "user1"), next_token=token),
        LookupQuery(event_category="insight", next_token=token),
    ):
        with pytest.raises(LookupApiError) as info:
            store.lookup(other, SCOPE, T0 + 1000)
        assert info.value.error_type == "InvalidNextTokenException"
    with pytest.raises(LookupApiError, match="InvalidNextTokenException"):
        store.lookup(LookupQuery(next_token=token), Scope("123456789012", "eu-west-1"), T0)
    with pytest.raises(LookupApiError, match="InvalidNextTokenException"):
        store.lookup(LookupQuery(next_token=token), SCOPE, T0 + 1000, generation=1)
    with pytest.raises(LookupApiError, match="InvalidNextTokenException"):
        store.lookup(LookupQuery(next_token="not-a-token"), SCOPE, T0 + 1000)


def test_an_event_is_invisible_until_its_visible_from_time() -> None:
    store = EventStore()
    store.add(build_event(record(1, T0), scope=SCOPE, delay=300.0))
    assert store.lookup(LookupQuery(), SCOPE, T0 + 299.999).events == ()
    assert ids(store.lookup(LookupQuery(), SCOPE, T0 + 300.0).events) == ["ev-0001"]


def test_a_late_event_older_than_the_cursor_shows_up_in_a_later_page() -> None:
    store = store_with(6, delay=0.0)
    store.add(build_event(record(99, T0 + 5), scope=SCOPE, delay=1000.0))  # between ev-0 and 1
    page = store.lookup(LookupQuery(max_results=3), SCOPE, T0 + 100)
    assert ids(page.events) == ["ev-0005", "ev-0004", "ev-0003"]
    rest = store.lookup(LookupQuery(max_results=50, next_token=page.next_token), SCOPE, T0 + 2000)
    assert ids(rest.events) == ["ev-0002", "ev-0001", "ev-0099", "ev-0000"]


def test_ninety_day_horizon_insights_and_scopes() -> None:
    store = store_with(3)
    day = 86400.0
    assert len(store.lookup(LookupQuery(), SCOPE, T0 + 90 * day).events) == 3
    assert ids(store.lookup(LookupQuery(), SCOPE, T0 + 90 * day + 15).events) == ["ev-0002"]
    assert store.lookup(LookupQuery(event_category="insight"), SCOPE, T0 + 100).events == ()
    assert store.lookup(LookupQuery(), Scope("210987654321", "us-east-1"), T0 + 100).events == ()


def test_duplicate_event_ids_are_kept_once_per_scope() -> None:
    store = EventStore()
    assert store.add(build_event(record(1, T0), scope=SCOPE))
    assert not store.add(build_event(record(1, T0 + 5), scope=SCOPE))
    assert store.add(build_event(record(1, T0), scope=Scope("123456789012", "eu-west-1")))
    assert store.count() == 2


# ---- rate limit, delays, faults, counters ---------------------------------------------


def test_sliding_window_refuses_the_third_request_within_a_second() -> None:
    limiter = RateLimiter(RateLimit())
    other = Scope("123456789012", "eu-west-1")
    assert limiter.try_acquire(SCOPE, T0)
    assert limiter.try_acquire(SCOPE, T0 + 0.5)
    assert not limiter.try_acquire(SCOPE, T0 + 0.999)
    assert limiter.try_acquire(other, T0 + 0.999)  # per (account, region)
    assert limiter.try_acquire(SCOPE, T0 + 1.0)  # the first left the window
    assert not limiter.try_acquire(SCOPE, T0 + 1.4)  # refusals consumed nothing...
    assert limiter.try_acquire(SCOPE, T0 + 1.5)  # ...so the second's slot frees at +1.5


def test_token_bucket_refills_at_the_rate() -> None:
    limiter = RateLimiter(RateLimit(mode=RateLimitMode.TOKEN_BUCKET))
    assert limiter.try_acquire(SCOPE, T0)
    assert limiter.try_acquire(SCOPE, T0)
    assert not limiter.try_acquire(SCOPE, T0 + 0.25)  # half a token
    assert limiter.try_acquire(SCOPE, T0 + 0.5)  # one token
    assert not limiter.try_acquire(SCOPE, T0 + 0.5)


def test_delay_model_is_seeded_mostly_minutes_with_a_late_tail() -> None:
    model = DelayModel()
    first = [model.sample(random.Random(7)) for _ in range(3)]
    assert first == [model.sample(random.Random(7)) for _ in range(3)]
    rng = random.Random(7)
    delays = sorted(model.sample(rng) for _ in range(2000))
    assert 60 < delays[1000] < 600  # median: a few minutes
    late = [d for d in delays if d >= 900]
    assert 0 < len(late) < 300  # an occasional tail of 15+ minutes
    assert delays[0] >= model.min_s


def test_faults_are_consumed_in_order_and_by_scope() -> None:
    queue = FaultQueue()
    queue.add(Fault(FaultKind.RESET, region="eu-west-1"))
    queue.add(Fault(FaultKind.INTERNAL_ERROR, count=2))
    queue.add(Fault(FaultKind.THROTTLE))
    kinds = [getattr(queue.take(SCOPE), "kind", None) for _ in range(4)]
    assert kinds == [FaultKind.INTERNAL_ERROR, FaultKind.INTERNAL_ERROR, FaultKind.THROTTLE, None]
    taken = queue.take(Scope("123456789012", "eu-west-1"))
    assert taken is not None
    assert taken.kind is FaultKind.RESET
    assert queue.pending() == ()


@pytest.mark.parametrize(
    "bad", [{"kind": "explode"}, {"kind": "reset", "count": 0}, {"kind": "slow", "delay_s": -1}]
)
def test_fault_from_json_rejects_nonsense(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="fault"):
        Fault.from_json(bad)


def test_counters_snapshot() -> None:
    counters = Counters()
    counters.request(SCOPE, Outcome.OK, 50)
    counters.request(SCOPE, Outcome.OK, 3)
    counters.request(SCOPE, Outcome.THROTTLED)
    counters.fault(FaultKind.RESET)
    stats = counters.snapshot(10, 8, ())
    scope_stats = stats.for_scope(SCOPE.account, SCOPE.region)
    assert (scope_stats.pages, scope_stats.total, scope_stats.events_returned) == (2, 3, 53)
    assert stats.total(Outcome.THROTTLED) == 1
    assert stats.for_scope("1", "x").total == 0
    as_json = stats.to_json()
    assert as_json["totals"]["pages"] == 2
    assert as_json["faults_injected"]["reset"] == 1


# ---- dispatch without a server ---------------------------------------------------------


def test_scope_from_the_sigv4_credential_scope() -> None:
    accounts = {"AKIAOTHER": "210987654321"}
    assert scope_from_authorization(AUTH, accounts, "123456789012") == SCOPE
    other = AUTH.replace("testing/20231114/us-east-1", "AKIAOTHER/20231114/eu-west-3")
    assert scope_from_authorization(other, accounts, "1") == Scope("210987654321", "eu-west-3")
    with pytest.raises(LookupApiError, match="MissingAuthenticationToken"):
        scope_from_authorization(None, accounts, "1")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_handle_api_rate_limits_faults_and_counts() -> None:
    clock, slept = Clock(T0 + 1000), list[float]()
    emu = CloudTrailEmulator(EmulatorConfig(), clock=clock, sleep=slept.append)
    emu.add_events([record(i, T0 + i) for i in range(3)])
    body = json.dumps({"MaxResults": 2}).encode()
    first = emu.handle_api(LOOKUP_EVENTS, AUTH, body)
    assert first.status == 200
    assert [e["EventId"] for e in first.body["Events"]] == ["ev-0002", "ev-0001"]
    assert emu.handle_api(LOOKUP_EVENTS, AUTH, b"").status == 200
    throttled = emu.handle_api(LOOKUP_EVENTS, AUTH, b"")
    assert (throttled.status, throttled.body["__type"]) == (400, "ThrottlingException")
    clock.now += 1.0
    emu.inject_fault(Fault(FaultKind.SLOW, delay_s=2.5))
    emu.inject_fault(Fault(FaultKind.SERVICE_UNAVAILABLE))
    emu.inject_fault(Fault(FaultKind.RESET))
    assert emu.handle_api(LOOKUP_EVENTS, AUTH, b"").status == 200
    assert slept == [2.5]
    assert emu.handle_api(LOOKUP_EVENTS, AUTH, b"").status == 503
    assert emu.handle_api(LOOKUP_EVENTS, AUTH, b"").reset_connection
    assert emu.handle_api(LOOKUP_EVENTS, None, b"").status == 403
    unknown = emu.handle_api(TARGET_DESCRIBE, AUTH, b"{}")
    assert unknown.body["__type"] == "UnknownOperationException"
    stats = emu.stats()
    scope = stats.for_scope(SCOPE.account, SCOPE.region)
    assert {o: scope.count(o) for o in Outcome} == {
        Outcome.OK: 3,
        Outcome.THROTTLED: 1,
        Outcome.FAULT: 2,
        Outcome.ERROR: 1,
    }
    assert stats.for_scope("unknown", "unknown").count(Outcome.ERROR) == 1
    assert scope.events_returned == 2 + 3 + 3
    assert stats.faults_injected == {
        FaultKind.SLOW: 1,
        FaultKind.SERVICE_UNAVAILABLE: 1,
        FaultKind.RESET: 1,
    }


TARGET_DESCRIBE = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.DescribeTrails"


def test_add_events_scope_delay_model_and_reset() -> None:
    clock = Clock(T0)
    emu = CloudTrailEmulator(EmulatorConfig(delay_model=DelayModel(), seed=3), clock=clock)
    result = emu.add_events([record(1, T0), record(2, T0, awsRegion="eu-west-1"), record(1, T0)])
    assert (result.added, result.duplicates) == (2, 1)
    assert emu.add_events([record(3, T0)], region="ap-south-1", delay=0.0).added == 1
    stats = emu.stats()
    assert (stats.events_stored, stats.events_visible) == (3, 1)  # two wait for their delay
    clock.now += 3600
    assert emu.stats().events_visible == 3
    with pytest.raises(InvalidRecord):
        emu.add_events([record(4, T0), {"eventID": "broken"}])
    assert emu.stats().events_stored == 3  # all or nothing
    emu.reset()
    assert emu.stats().events_stored == 0
