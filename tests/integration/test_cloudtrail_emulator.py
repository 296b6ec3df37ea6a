"""The LookupEvents emulator driven over HTTP by a real boto3 CloudTrail client."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from veilleur.emulator import CloudTrailEmulator, EmulatorConfig, Fault, FaultKind, Outcome

pytestmark = pytest.mark.integration

T0 = 1_700_000_000.0
ACCOUNT = "123456789012"
OTHER_ACCOUNT = "210987654321"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float, **_: Any) -> None:
        self.now += seconds


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def record(i: int, ts: float, **extra: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "eventVersion": "1.08",
        "eventID": f"ev-{i:04d}",
        "eventTime": iso(ts),
        "eventName": "ConsoleLogin" if i % 2 else "AuthorizeSecurityGroupIngress",
        "eventSource": "signin.amazonaws.com" if i % 2 else "ec2.amazonaws.com",
        "awsRegion": "us-east-1",
        "readOnly": False,
        "sourceIPAddress": "203.0.113.7",
        "userIdentity": {
            "type": "IAMUser",
            "userName": f"user{i % 3}",
            "accessKeyId": f"AKIA{i % 4}",
        },
        "requestParameters": {"groupId": f"sg-{i}"},
    }
    rec.update(extra)
    return rec


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock(T0 + 3600)


@pytest.fixture(scope="module")
def server(clock: Clock) -> Iterator[CloudTrailEmulator]:
    config = EmulatorConfig(accounts={"AKIAOTHERACCOUNT": OTHER_ACCOUNT})
    with CloudTrailEmulator(config, clock=clock) as emu:
        yield emu


@pytest.fixture
def emu(server: CloudTrailEmulator, clock: Clock) -> CloudTrailEmulator:
    server.reset()
    clock.now = T0 + 3600
    return server


@pytest.fixture(scope="module")
def session() -> boto3.session.Session:
    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )


ClientFactory = Callable[..., Any]


@pytest.fixture
def make_client(
    session: boto3.session.Session, emu: CloudTrailEmulator, clock: Clock
) -> ClientFactory:
    """A CloudTrail client on the emulator; by default each request moves the clock half a
    second on, so paging stays under 2 requests/s; ``tick=0`` keeps time still."""

    def make(*, tick: float = 0.5, attempts: int = 1, region: str = "us-east-1", **cfg: Any) -> Any:
        keys = {}
        if "key" in cfg:
            keys = {"aws_access_key_id": cfg.pop("key"), "aws_secret_access_key": "testing"}
        client = session.client(
            "cloudtrail",
            endpoint_url=emu.url,
            region_name=region,
            config=Config(retries={"total_max_attempts": attempts, "mode": "standard"}, **cfg),
            **keys,
        )
        if tick:
            client.meta.events.register(
                "before-send.cloudtrail.LookupEvents", lambda **kw: clock.advance(tick)
            )
        return client

    return make


def error_code(info: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> str:
    return str(info.value.response["Error"]["Code"])


def admin(emu: CloudTrailEmulator, method: str, name: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    url = f"{emu.url}/_emulator/{name}"
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - loopback
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        time.sleep(0.01)


# ---- reading --------------------------------------------------------------------------


def test_paginator_reads_more_than_50_events_newest_first(
    emu: CloudTrailEmulator, make_client: ClientFactory
) -> None:
    emu.add_events([record(i, T0 + i) for i in range(120)])
    pages = list(make_client().get_paginator("lookup_events").paginate())
    assert [len(p["Events"]) for p in pages] == [50, 50, 20]
    events = [e for p in pages for e in p["Events"]]
    assert [e["EventId"] for e in events] == [f"ev-{i:04d}" for i in range(119, -1, -1)]
    first = events[0]
    assert first["EventTime"] == datetime.fromtimestamp(T0 + 119, UTC)
    assert first["ReadOnly"] == "false"
    assert first["Username"] == "user2"
    assert first["AccessKeyId"] == "AKIA3"
    assert first["Resources"] == []
    assert json.loads(first["CloudTrailEvent"])["sourceIPAddress"] == "203.0.113.7"
    stats = emu.stats().for_scope(ACCOUNT, "us-east-1")
    assert (stats.pages, stats.total, stats.events_returned) == (3, 3, 120)


def test_time_range_is_inclusive(emu: CloudTrailEmulator, make_client: ClientFactory) -> None:
    emu.add_events([record(i, T0 + 60 * i) for i in range(10)])
    start, end = datetime.fromtimestamp(T0 + 120, UTC), datetime.fromtimestamp(T0 + 300, UTC)
    events = make_client().lookup_events(StartTime=start, EndTime=end)["Events"]
    assert [e["EventId"] for e in events] == ["ev-0005", "ev-0004", "ev-0003", "ev-0002"]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("EventId", "ev-0004", ["ev-0004"]),
        ("EventName", "ConsoleLogin", ["ev-0005", "ev-0003", "ev-0001"]),
        ("EventSource", "ec2.amazonaws.com", ["ev-0004", "ev-0002", "ev-0000"]),
        ("ReadOnly", "true", ["ev-0005"]),
        ("Username", "user1", ["ev-0004", "ev-0001"]),
        ("AccessKeyId", "AKIA1", ["ev-0005", "ev-0001"]),
        ("ResourceType", "AWS::EC2::SecurityGroup", ["ev-0004", "ev-0002", "ev-0000"]),
        ("ResourceName", "sg-2", ["ev-0002"]),
    ],
)
def test_each_lookup_attribute(
    emu: CloudTrailEmulator,
    make_client: ClientFactory,
    key: str,
    value: str,
    expected: list[str],
) -> None:
    emu.add_events([record(i, T0 + i) for i in range(5)])
    emu.add_events([record(5, T0 + 5, readOnly=True)])
    response = make_client().lookup_events(
        LookupAttributes=[{"AttributeKey": key, "AttributeValue": value}]
    )
    assert [e["EventId"] for e in response["Events"]] == expected


def test_scope_comes_from_the_credentials(
    emu: CloudTrailEmulator, make_client: ClientFactory
) -> None:
    emu.add_events([record(1, T0)])
    emu.add_events([record(2, T0)], region="eu-west-1")
    emu.add_events([record(3, T0)], account=OTHER_ACCOUNT)
    read = [
        make_client(**opts).lookup_events()["Events"]
        for opts in ({}, {"region": "eu-west-1"}, {"key": "AKIAOTHERACCOUNT"})
    ]
    assert [[e["EventId"] for e in events] for events in read] == [
        ["ev-0001"],
        ["ev-0002"],
        ["ev-0003"],
    ]
    assert emu.stats().for_scope(OTHER_ACCOUNT, "us-east-1").pages == 1


def test_insight_category_returns_nothing(
    emu: CloudTrailEmulator, make_client: ClientFactory
) -> None:
    emu.add_events([record(1, T0)])
    assert make_client().lookup_events(EventCategory="insight")["Events"] == []


# ---- errors ---------------------------------------------------------------------------


def test_token_reused_with_other_parameters_is_refused(
    emu: CloudTrailEmulator, make_client: ClientFactory
) -> None:
    emu.add_events([record(i, T0 + i) for i in range(10)])
    client = make_client()
    attrs = [{"AttributeKey": "EventName", "AttributeValue": "ConsoleLogin"}]
    token = client.lookup_events(LookupAttributes=attrs, MaxResults=2)["NextToken"]
    assert len(client.lookup_events(LookupAttributes=attrs, NextToken=token)["Events"]) == 3
    other = [{"AttributeKey": "EventName", "AttributeValue": "AuthorizeSecurityGroupIngress"}]
    for kwargs in ({"LookupAttributes": other}, {}, {"StartTime": T0}):
        with pytest.raises(botocore.exceptions.ClientError) as info:
            client.lookup_events(NextToken=token, **kwargs)
        assert error_code(info) == "InvalidNextTokenException"
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.lookup_events(NextToken="garbage")
    assert error_code(info) == "InvalidNextTokenException"


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        (
            {
                "LookupAttributes": [
                    {"AttributeKey": "EventName", "AttributeValue": "ConsoleLogin"},
                    {"AttributeKey": "Username", "AttributeValue": "user1"},
                ]
            },
            "InvalidLookupAttributesException",
        ),
        ({"MaxResults": 51}, "InvalidMaxResultsException"),
        ({"StartTime": T0 + 10, "EndTime": T0}, "InvalidTimeRangeException"),
    ],
)
def test_invalid_requests(
    emu: CloudTrailEmulator, make_client: ClientFactory, kwargs: dict[str, Any], code: str
) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as info:
        make_client().lookup_events(**kwargs)
    assert error_code(info) == code
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert emu.stats().total(Outcome.ERROR) == 1


def test_max_results_zero_reaches_the_server_without_client_validation(
    make_client: ClientFactory,
) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as info:
        make_client(parameter_validation=False).lookup_events(MaxResults=0)
    assert error_code(info) == "InvalidMaxResultsException"


def test_third_request_within_a_second_is_throttled(
    emu: CloudTrailEmulator, make_client: ClientFactory, clock: Clock
) -> None:
    client = make_client(tick=0)
    client.lookup_events()
    clock.advance(0.5)
    client.lookup_events()
    clock.advance(0.499)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.lookup_events()
    assert error_code(info) == "ThrottlingException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    clock.advance(0.001)  # the first request is now a full second old
    client.lookup_events()
    stats = emu.stats().for_scope(ACCOUNT, "us-east-1")
    assert (stats.count(Outcome.OK), stats.count(Outcome.THROTTLED)) == (3, 1)


def test_event_invisible_before_visible_at(
    emu: CloudTrailEmulator, make_client: ClientFactory, clock: Clock
) -> None:
    clock.now = T0
    emu.add_events([record(1, T0)], visible_at=T0 + 600)
    emu.add_events([record(2, T0)], delay=120.0)
    client = make_client(tick=0)

    def visible() -> list[str]:
        clock.advance(1.0)  # stay under the rate limit
        return [e["EventId"] for e in client.lookup_events()["Events"]]

    assert visible() == []
    clock.now = T0 + 119.5
    assert visible() == ["ev-0002"]
    clock.now = T0 + 598.5
    assert visible() == ["ev-0002"]
    clock.now = T0 + 599.0
    assert visible() == ["ev-0002", "ev-0001"]


# ---- faults ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status"), [(FaultKind.INTERNAL_ERROR, 500), (FaultKind.SERVICE_UNAVAILABLE, 503)]
)
def test_server_errors_raise_without_retries(
    emu: CloudTrailEmulator, make_client: ClientFactory, kind: FaultKind, status: int
) -> None:
    emu.inject_fault(Fault(kind))
    with pytest.raises(botocore.exceptions.ClientError) as info:
        make_client().lookup_events()
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    make_client().lookup_events()  # the fault was used up
    assert emu.stats().total(Outcome.FAULT) == 1


def test_botocore_retries_a_500_and_succeeds(
    emu: CloudTrailEmulator, make_client: ClientFactory
) -> None:
    emu.add_events([record(1, T0)])
    emu.inject_fault(Fault(FaultKind.INTERNAL_ERROR))
    response = make_client(attempts=3).lookup_events()
    assert [e["EventId"] for e in response["Events"]] == ["ev-0001"]
    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    stats = emu.stats()
    assert (stats.total(Outcome.FAULT), stats.total(Outcome.OK)) == (1, 1)


def test_injected_throttling_burst_ignores_the_rate(
    emu: CloudTrailEmulator, make_client: ClientFactory
) -> None:
    emu.inject_fault(Fault(FaultKind.THROTTLE, count=2))
    client = make_client(tick=5.0)
    for _ in range(2):
        with pytest.raises(botocore.exceptions.ClientError) as info:
            client.lookup_events()
        assert error_code(info) == "ThrottlingException"
    client.lookup_events()
    assert emu.stats().total(Outcome.THROTTLED) == 2


def test_connection_reset_is_a_connection_error(
    emu: CloudTrailEmulator, make_client: ClientFactory
) -> None:
    emu.inject_fault(Fault(FaultKind.RESET))
    client = make_client()
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        client.lookup_events()
    client.lookup_events()  # a fresh connection works
    assert emu.stats().faults_injected == {FaultKind.RESET: 1}


def test_slow_answer_times_out_the_client_then_completes(
    emu: CloudTrailEmulator, make_client: ClientFactory
) -> None:
    emu.inject_fault(Fault(FaultKind.SLOW, delay_s=2.0))
    with pytest.raises(botocore.exceptions.ReadTimeoutError):
        make_client(read_timeout=0.2).lookup_events()
    # The server thread answers once its sleep is over; wait so the next test starts clean.
    wait_for(lambda: emu.stats().total(Outcome.OK) == 1)


def test_fault_scoped_to_a_region(emu: CloudTrailEmulator, make_client: ClientFactory) -> None:
    emu.inject_fault(Fault(FaultKind.INTERNAL_ERROR, region="eu-west-1"))
    make_client().lookup_events()
    with pytest.raises(botocore.exceptions.ClientError):
        make_client(region="eu-west-1").lookup_events()


# ---- admin endpoint and lifecycle -----------------------------------------------------


def test_admin_endpoint_feeds_faults_counts_and_resets(
    emu: CloudTrailEmulator, make_client: ClientFactory, clock: Clock
) -> None:
    status, body = admin(
        emu,
        "POST",
        "events",
        {
            "events": [
                record(1, T0),
                {"record": record(2, T0), "visible_at": clock.now + 100},
                {"record": record(3, T0), "region": "eu-west-1"},
                record(1, T0),
            ],
        },
    )
    assert (status, body) == (200, {"added": 3, "duplicates": 1})
    client = make_client()
    assert [e["EventId"] for e in client.lookup_events()["Events"]] == ["ev-0001"]

    status, body = admin(emu, "POST", "faults", {"kind": "internal_error", "count": 1})
    assert status == 200
    assert body["pending"][0]["kind"] == "internal_error"
    with pytest.raises(botocore.exceptions.ClientError):
        client.lookup_events()

    status, stats = admin(emu, "GET", "stats")
    assert status == 200
    assert stats["totals"] == {
        "ok": 1,
        "throttled": 0,
        "fault": 1,
        "error": 0,
        "pages": 1,
        "requests": 2,
        "events_returned": 1,
    }
    assert stats["events_stored"] == 3
    assert stats["scopes"][0]["account"] == ACCOUNT

    assert admin(emu, "POST", "reset", {})[0] == 200
    assert client.lookup_events()["Events"] == []
    assert admin(emu, "GET", "stats")[1]["totals"]["requests"] == 1


@pytest.mark.parametrize(
    ("method", "name", "body", "status"),
    [
        ("POST", "events", {"events": [{"eventID": "x"}]}, 400),
        ("POST", "events", {"nothing": []}, 400),
        ("POST", "faults", {"kind": "meteor"}, 400),
        ("POST", "reset", {"events": "yes"}, 400),
        ("GET", "nowhere", None, 404),
    ],
)
def test_admin_endpoint_rejects_bad_requests(
    emu: CloudTrailEmulator, method: str, name: str, body: Any, status: int
) -> None:
    assert admin(emu, method, name, body)[0] == status
    assert emu.stats().events_stored == 0


def test_start_stop_and_url(clock: Clock) -> None:
    emu = CloudTrailEmulator(clock=clock)
    with pytest.raises(RuntimeError):
        _ = emu.url
    with emu:
        url = emu.url
        assert url.startswith("http://127.0.0.1:")
        assert admin(emu, "GET", "health")[1] == {"ok": True, "now": clock.now}
    with pytest.raises(RuntimeError):
        _ = emu.url
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{url}/_emulator/health", timeout=5)  # noqa: S310 - loopback


def test_runs_as_a_separate_process() -> None:
    command = [sys.executable, "-m", "veilleur.emulator", "--port", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().strip()
            health = f"{url}/_emulator/health"
            with urllib.request.urlopen(health, timeout=10) as response:  # noqa: S310 - loopback
                assert json.loads(response.read())["ok"] is True
        finally:
            proc.terminate()
        assert proc.wait(timeout=10) == 0
