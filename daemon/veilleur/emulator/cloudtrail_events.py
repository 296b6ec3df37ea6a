"""Stored events of the LookupEvents emulator: a CloudTrail record plus the fields
LookupEvents derives from it (Username, ReadOnly, Resources, ...). Pure, no I/O."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from veilleur.model import InvalidRecord, TrailEvent


@dataclass(frozen=True, slots=True)
class Scope:
    """One (account, region) pair: the unit of event history and of the rate limit."""

    account: str
    region: str


class AttributeKey(enum.Enum):
    """The eight ``LookupAttributes`` keys of management events."""

    ACCESS_KEY_ID = "AccessKeyId"
    EVENT_ID = "EventId"
    EVENT_NAME = "EventName"
    EVENT_SOURCE = "EventSource"
    READ_ONLY = "ReadOnly"
    RESOURCE_NAME = "ResourceName"
    RESOURCE_TYPE = "ResourceType"
    USERNAME = "Username"


@dataclass(frozen=True, slots=True)
class LookupAttribute:
    key: AttributeKey
    value: str


@dataclass(frozen=True, slots=True)
class Resource:
    """One entry of an item's ``Resources``; either part may be unknown (None)."""

    resource_type: str | None
    resource_name: str | None

    def to_api(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.resource_type is not None:
            out["ResourceType"] = self.resource_type
        if self.resource_name is not None:
            out["ResourceName"] = self.resource_name
        return out


# (eventSource, requestParameters key) -> resource type, for records that carry no
# ``resources`` array. A small sample of what CloudTrail derives; enough for the detections
# veilleur ships (IAM, S3, EC2 security groups and network, KMS, CloudTrail, Config).
_PARAM_RESOURCES: tuple[tuple[str, str, str], ...] = (
    ("iam.amazonaws.com", "userName", "AWS::IAM::User"),
    ("iam.amazonaws.com", "roleName", "AWS::IAM::Role"),
    ("iam.amazonaws.com", "groupName", "AWS::IAM::Group"),
    ("iam.amazonaws.com", "policyArn", "AWS::IAM::Policy"),
    ("iam.amazonaws.com", "policyName", "AWS::IAM::Policy"),
    ("s3.amazonaws.com", "bucketName", "AWS::S3::Bucket"),
    ("ec2.amazonaws.com", "groupId", "AWS::EC2::SecurityGroup"),
    ("ec2.amazonaws.com", "instanceId", "AWS::EC2::Instance"),
    ("ec2.amazonaws.com", "vpcId", "AWS::EC2::VPC"),
    ("ec2.amazonaws.com", "networkAclId", "AWS::EC2::NetworkAcl"),
    ("ec2.amazonaws.com", "routeTableId", "AWS::EC2::RouteTable"),
    ("ec2.amazonaws.com", "internetGatewayId", "AWS::EC2::InternetGateway"),
    ("kms.amazonaws.com", "keyId", "AWS::KMS::Key"),
    ("cloudtrail.amazonaws.com", "name", "AWS::CloudTrail::Trail"),
    ("config.amazonaws.com", "configurationRecorderName", "AWS::Config::ConfigurationRecorder"),
    ("config.amazonaws.com", "deliveryChannelName", "AWS::Config::DeliveryChannel"),
)


def derive_username(record: Mapping[str, Any]) -> str | None:
    """The requester's name as event history shows it: the IAM user name, ``root`` for
    the root user, the session or federated name from an STS ARN, else the issuer."""
    identity = record.get("userIdentity")
    if not isinstance(identity, dict):
        return None
    name = identity.get("userName")
    if isinstance(name, str) and name:
        return name
    if identity.get("type") == "Root":
        return "root"
    arn = identity.get("arn")
    if isinstance(arn, str) and "/" in arn:
        return arn.rsplit("/", 1)[1] or None
    context = identity.get("sessionContext")
    if isinstance(context, dict):
        issuer = context.get("sessionIssuer")
        if isinstance(issuer, dict):
            issuer_name = issuer.get("userName")
            if isinstance(issuer_name, str) and issuer_name:
                return issuer_name
    return None


def derive_resources(record: Mapping[str, Any]) -> tuple[Resource, ...]:
    """The record's ``resources`` array if it has one, else resources named in its
    request parameters (see ``_PARAM_RESOURCES``)."""
    listed = record.get("resources")
    if isinstance(listed, list) and listed:
        out = []
        for entry in listed:
            if isinstance(entry, dict):
                rtype, arn = entry.get("type"), entry.get("ARN")
                out.append(
                    Resource(
                        rtype if isinstance(rtype, str) else None,
                        arn if isinstance(arn, str) else None,
                    )
                )
        return tuple(out)
    params = record.get("requestParameters")
    source = record.get("eventSource")
    if not isinstance(params, dict):
        return ()
    found = []
    for event_source, key, rtype in _PARAM_RESOURCES:
        value = params.get(key)
        if source == event_source and isinstance(value, str) and value:
            found.append(Resource(rtype, value))
    return tuple(found)


def _read_only(record: Mapping[str, Any]) -> str | None:
    value = record.get("readOnly")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower()
    return None


def _access_key(record: Mapping[str, Any]) -> str | None:
    identity = record.get("userIdentity")
    if isinstance(identity, dict):
        key = identity.get("accessKeyId")
        if isinstance(key, str) and key:
            return key
    return None


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A record held by the emulator, visible from ``visible_at`` (epoch seconds)."""

    event_id: str
    event_time: float
    visible_at: float
    scope: Scope
    event_name: str
    event_source: str
    read_only: str | None
    access_key_id: str | None
    username: str | None
    resources: tuple[Resource, ...]
    cloudtrail_event: str

    @property
    def sort_key(self) -> tuple[float, str]:
        return (self.event_time, self.event_id)

    def matches(self, attribute: LookupAttribute | None) -> bool:
        if attribute is None:
            return True
        key, value = attribute.key, attribute.value
        if key is AttributeKey.READ_ONLY:
            return self.read_only == value.lower()
        if key is AttributeKey.RESOURCE_TYPE:
            return any(r.resource_type == value for r in self.resources)
        if key is AttributeKey.RESOURCE_NAME:
            return any(r.resource_name == value for r in self.resources)
        field_of = {
            AttributeKey.ACCESS_KEY_ID: self.access_key_id,
            AttributeKey.EVENT_ID: self.event_id,
            AttributeKey.EVENT_NAME: self.event_name,
            AttributeKey.EVENT_SOURCE: self.event_source,
            AttributeKey.USERNAME: self.username,
        }
        return field_of[key] == value

    def to_api(self) -> dict[str, Any]:
        """The ``Event`` item of a LookupEvents response (EventTime in epoch seconds)."""
        item: dict[str, Any] = {
            "EventId": self.event_id,
            "EventName": self.event_name,
            "EventTime": self.event_time,
            "EventSource": self.event_source,
            "Resources": [r.to_api() for r in self.resources],
            "CloudTrailEvent": self.cloudtrail_event,
        }
        if self.read_only is not None:
            item["ReadOnly"] = self.read_only
        if self.access_key_id is not None:
            item["AccessKeyId"] = self.access_key_id
        if self.username is not None:
            item["Username"] = self.username
        return item


def build_event(
    record: object,
    *,
    scope: Scope,
    visible_at: float | None = None,
    delay: float = 0.0,
    resources: Iterable[Resource] | None = None,
) -> StoredEvent:
    """Validate a CloudTrail record and derive its LookupEvents fields.

    Visible from ``visible_at`` if given, else from ``eventTime + delay``; never before
    the event happened. Raises ``InvalidRecord`` (from ``veilleur.model``)."""
    event = TrailEvent.from_record(record)
    if delay < 0:
        raise InvalidRecord(f"negative delivery delay {delay} for {event.event_id[:64]}")
    event_time = event.event_time.timestamp()
    visible = event_time + delay if visible_at is None else max(visible_at, event_time)
    rec = event.record
    return StoredEvent(
        event_id=event.event_id,
        event_time=event_time,
        visible_at=visible,
        scope=scope,
        event_name=event.event_name,
        event_source=event.event_source,
        read_only=_read_only(rec),
        access_key_id=_access_key(rec),
        username=derive_username(rec),
        resources=derive_resources(rec) if resources is None else tuple(resources),
        cloudtrail_event=json.dumps(rec, separators=(",", ":"), ensure_ascii=False),
    )


@dataclass(frozen=True, slots=True)
class EventSpec:
    """One record to add and how: see ``CloudTrailEmulator.add_events``."""

    record: Mapping[str, Any]
    delay: float | None = None
    visible_at: float | None = None
    region: str | None = None
    account: str | None = None
    resources: Iterable[Resource] | None = None


@dataclass(frozen=True, slots=True)
class AddResult:
    added: int
    duplicates: int
