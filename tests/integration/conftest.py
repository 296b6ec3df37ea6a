"""Shared fixtures for integration tests: real HTTP to a local moto server, never AWS.

- ``moto_server`` (session): one ``ThreadedMotoServer`` on 127.0.0.1, a free port.
- ``moto_url`` (function): the server's URL, after ``POST /moto-api/reset`` (clean state).
- ``aws_env`` (function, autouse): dummy credentials, us-east-1, no profile or config
  file, so nothing in a test can reach a real account.
- ``aws_session`` (session): one boto3 Session with dummy credentials.
- ``aws_client`` (function): ``aws_client("sns")`` -> a client on moto (cached per session).
- ``sns_topic_to_queue`` / ``bus_rule_to_queue`` (function): factories creating a topic with
  an SQS queue subscribed, and an event bus with a rule whose target is an SQS queue.
- ``receive_until`` (function): ``receive_until(queue_url, n, deadline=10.0)`` polls SQS
  until ``n`` messages arrived or ``deadline`` seconds passed; returns the SQS messages.
- ``sns_sent`` (function): ``sns_sent(topic_arn)`` -> what moto's SNS received for a topic
  (the whole json-structured message, which SQS subscribers see only one key of).

Every test in this folder is marked ``integration``.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.integration)


@dataclass(frozen=True)
class MotoServer:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def reset(self) -> None:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            connection.request("POST", "/moto-api/reset")
            response = connection.getresponse()
            response.read()
            assert response.status == 200, f"moto reset failed: HTTP {response.status}"
        finally:
            connection.close()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield MotoServer(host, port)
    finally:
        server.stop()


@pytest.fixture
def moto_url(moto_server: MotoServer) -> str:
    """The moto server's URL, its state reset for this test."""
    moto_server.reset()
    return moto_server.url


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials and region; no profile, no shared config, no metadata service."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="session")
def aws_session() -> boto3.Session:
    return boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )


# Fail fast: a test that expects an error must not wait through botocore's retries.
FAST = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=2, read_timeout=10)


@pytest.fixture(scope="session")
def _client_cache() -> dict[tuple[str, str], Any]:
    return {}


@pytest.fixture
def aws_client(
    aws_session: boto3.Session, moto_url: str, _client_cache: dict[tuple[str, str], Any]
) -> Callable[[str], Any]:
    """``aws_client("sqs")``: a client of the shared session pointed at moto."""

    def make(service: str) -> Any:
        key = (service, moto_url)
        if key not in _client_cache:
            _client_cache[key] = aws_session.client(service, endpoint_url=moto_url, config=FAST)
        return _client_cache[key]

    return make


@dataclass(frozen=True)
class TopicQueue:
    topic_arn: str
    queue_url: str
    queue_arn: str
    subscription_arn: str


@dataclass(frozen=True)
class BusQueue:
    bus_name: str
    bus_arn: str
    rule_name: str
    queue_url: str
    queue_arn: str


def _queue(sqs: Any, name: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


@pytest.fixture
def sns_topic_to_queue(aws_client: Callable[[str], Any]) -> Callable[..., TopicQueue]:
    """``sns_topic_to_queue("alerts", raw=False, filter_policy=None)``: a topic and an SQS
    queue subscribed to it (SNS envelope unless ``raw``; optional filter policy dict)."""
    sns, sqs = aws_client("sns"), aws_client("sqs")

    def make(
        name: str = "veilleur-alerts",
        *,
        raw: bool = False,
        filter_policy: dict[str, Any] | None = None,
    ) -> TopicQueue:
        topic_arn = sns.create_topic(Name=name)["TopicArn"]
        queue_url, queue_arn = _queue(sqs, f"{name}-q")
        attributes = {"RawMessageDelivery": "true"} if raw else {}
        if filter_policy is not None:
            attributes["FilterPolicy"] = json.dumps(filter_policy)
        sub = sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes=attributes,
            ReturnSubscriptionArn=True,
        )
        return TopicQueue(topic_arn, queue_url, queue_arn, sub["SubscriptionArn"])

    return make


@pytest.fixture
def bus_rule_to_queue(aws_client: Callable[[str], Any]) -> Callable[..., BusQueue]:
    """``bus_rule_to_queue("veilleur", pattern={"source": ["veilleur"]})``: a custom event
    bus, a rule on it with that pattern, and an SQS queue as the rule's target."""
    events, sqs = aws_client("events"), aws_client("sqs")

    def make(name: str = "veilleur", *, pattern: dict[str, Any] | None = None) -> BusQueue:
        bus_arn = events.create_event_bus(Name=name)["EventBusArn"]
        queue_url, queue_arn = _queue(sqs, f"{name}-events-q")
        rule = f"{name}-to-sqs"
        events.put_rule(
            Name=rule,
            EventBusName=name,
            EventPattern=json.dumps(pattern or {"source": ["veilleur"]}),
            State="ENABLED",
        )
        events.put_targets(Rule=rule, EventBusName=name, Targets=[{"Id": "sqs", "Arn": queue_arn}])
        return BusQueue(name, bus_arn, rule, queue_url, queue_arn)

    return make


def receive_messages(
    sqs: Any, queue_url: str, n: int, deadline: float = 10.0
) -> list[dict[str, Any]]:
    """Poll ``queue_url`` until ``n`` messages arrived or ``deadline`` seconds passed.
    Returns the raw SQS messages (``Body``, ``MessageAttributes``), deleted from the queue."""
    end = time.monotonic() + deadline
    got: list[dict[str, Any]] = []
    while len(got) < n and time.monotonic() < end:
        response = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(10, max(n - len(got), 1)),
            WaitTimeSeconds=1,
            MessageAttributeNames=["All"],
        )
        for message in response.get("Messages", []):
            got.append(message)
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return got


@pytest.fixture
def receive_until(aws_client: Callable[[str], Any]) -> Callable[..., list[dict[str, Any]]]:
    """``receive_until(queue_url, n, deadline=10.0)`` -> SQS messages (see receive_messages)."""
    sqs = aws_client("sqs")

    def receive(queue_url: str, n: int, deadline: float = 10.0) -> list[dict[str, Any]]:
        return receive_messages(sqs, queue_url, n, deadline)

    return receive


@dataclass(frozen=True)
class SentNotification:
    message_id: str
    message: str  # as published: the whole per-protocol JSON document in json mode
    subject: str | None
    attributes: dict[str, Any]


@pytest.fixture
def sns_sent(moto_url: str) -> Callable[[str], list[SentNotification]]:
    """``sns_sent(topic_arn)``: what moto's SNS received for a topic, in order. SQS
    subscribers only see the ``sqs`` text of a json-structured message; this shows the
    whole of it (e-mail and SMS texts included). Works because the server runs in-process."""
    from moto.sns.models import sns_backends

    def sent(topic_arn: str) -> list[SentNotification]:
        region = topic_arn.split(":")[3]
        account = topic_arn.split(":")[4]
        topic = sns_backends[account][region].topics[topic_arn]
        return [
            SentNotification(mid, message, subject, dict(attributes or {}))
            for mid, message, subject, attributes, _group in topic.sent_notifications
        ]

    return sent


# -- the pipeline on one fake clock (see pipeline_kit.py) -----------------------------------


@pytest.fixture
def clock() -> Any:
    """A fake clock shared by the emulator, the poller's pacing and the Watch."""
    from tests.integration.pipeline_kit import FakeClock, start_time

    return FakeClock(start_time())


@pytest.fixture
def emulator(clock: Any, monkeypatch: pytest.MonkeyPatch, moto_url: str) -> Iterator[Any]:
    """The LookupEvents emulator on ``clock``; botocore pointed at it and at moto."""
    from veilleur.emulator import CloudTrailEmulator

    with CloudTrailEmulator(clock=clock.time) as emu:
        monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDTRAIL", emu.url)
        yield emu


@pytest.fixture
def open_world(
    tmp_path: Any, clock: Any, emulator: Any, sns_topic_to_queue: Any, bus_rule_to_queue: Any
) -> Iterator[Callable[..., tuple[Any, TopicQueue, BusQueue]]]:
    """``open_world(name, rules=["builtin:essentials"], extra=None)`` -> (pipeline, topic,
    bus): a topic and a bus each with their subscriber queue, a config naming them, and the
    pipeline on ``clock`` against the emulator. Stores are closed at the end."""
    from tests.integration.pipeline_kit import open_pipeline, write_config

    opened: list[Any] = []

    def make(
        name: str, rules: list[str] | None = None, extra: dict[str, Any] | None = None
    ) -> tuple[Any, TopicQueue, BusQueue]:
        topic = sns_topic_to_queue(name)
        bus = bus_rule_to_queue(f"{name}-bus")
        cfg = write_config(
            tmp_path, topic.topic_arn, bus.bus_name, rules or ["builtin:essentials"], extra
        )
        p = open_pipeline(cfg, clock)
        opened.append(p)
        return p, topic, bus

    yield make
    for p in opened:
        p.store.close()
