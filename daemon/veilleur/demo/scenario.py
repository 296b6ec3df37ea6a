"""The demo's CloudTrail records and metric datapoints: the reference story and its noise.

Everything is generated (no file is read): several users and roles doing read-only calls,
and in between the attacks the watchman must catch. Records are shaped like real ones.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from veilleur.model import format_time

ACCOUNT = "123456789012"
REGION = "us-east-1"
ATTACKER_IP = "203.0.113.66"
UA_CONSOLE = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
UA_CLI = "aws-cli/2.15.0 Python/3.11.6 Linux/6.5.0 exe/x86_64.ubuntu.22"


@dataclass(frozen=True)
class Step:
    """One act of the story: when (seconds after start), what, and what must come of it."""

    at: float
    title: str
    records: tuple[dict[str, Any], ...]
    expect: tuple[str, ...]  # rule ids that must alert


def _id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128)))


def _base(
    rng: random.Random,
    t: datetime,
    source: str,
    name: str,
    ip: str,
    identity: dict[str, Any],
    *,
    read_only: bool,
    ua: str = UA_CLI,
) -> dict[str, Any]:
    return {
        "eventVersion": "1.09",
        "userIdentity": identity,
        "eventTime": format_time(t),
        "eventSource": source,
        "eventName": name,
        "awsRegion": REGION,
        "sourceIPAddress": ip,
        "userAgent": ua,
        "requestParameters": None,
        "responseElements": None,
        "requestID": _id(rng),
        "eventID": _id(rng),
        "readOnly": read_only,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
    }


def _user(name: str) -> dict[str, Any]:
    return {
        "type": "IAMUser",
        "principalId": f"AIDA{name.upper():0<16}"[:21],
        "arn": f"arn:aws:iam::{ACCOUNT}:user/{name}",
        "accountId": ACCOUNT,
        "accessKeyId": f"AKIA{name.upper():0<16}"[:20],
        "userName": name,
    }


def _role(role: str, session: str) -> dict[str, Any]:
    return {
        "type": "AssumedRole",
        "principalId": f"AROAEXAMPLE{role.upper()}:{session}",
        "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}",
        "accountId": ACCOUNT,
        "accessKeyId": "ASIAEXAMPLEEXAMPLE00",
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "userName": role,
                "arn": f"arn:aws:iam::{ACCOUNT}:role/{role}",
            },
            "attributes": {
                "creationDate": format_time(datetime(2026, 1, 1)),
                "mfaAuthenticated": "false",
            },
        },
    }


NOISE_CALLS = [
    ("ec2.amazonaws.com", "DescribeInstances"),
    ("ec2.amazonaws.com", "DescribeSecurityGroups"),
    ("s3.amazonaws.com", "ListBuckets"),
    ("s3.amazonaws.com", "GetBucketLocation"),
    ("iam.amazonaws.com", "ListRoles"),
    ("iam.amazonaws.com", "GetUser"),
    ("kms.amazonaws.com", "DescribeKey"),
    ("lambda.amazonaws.com", "ListFunctions20150331"),
    ("cloudwatch.amazonaws.com", "DescribeAlarms"),
    ("sts.amazonaws.com", "GetCallerIdentity"),
    ("logs.amazonaws.com", "DescribeLogGroups"),
    ("ssm.amazonaws.com", "GetParameters"),
]
ACTORS = [
    _user("alice"),
    _user("bob"),
    _role("ci-deploy", "github-actions-4711"),
    _role("grafana-reader", "grafana"),
    _role("ops-admin", "carol"),
]


def noise(rng: random.Random, t: datetime) -> dict[str, Any]:
    source, name = rng.choice(NOISE_CALLS)
    who = rng.choice(ACTORS)
    ip = f"10.20.{rng.randrange(4)}.{rng.randrange(2, 250)}"
    return _base(rng, t, source, name, ip, who, read_only=True)


def failed_logins(rng: random.Random, t: datetime, n: int = 6) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        rec = _base(
            rng,
            t + timedelta(seconds=15 * i),
            "signin.amazonaws.com",
            "ConsoleLogin",
            ATTACKER_IP,
            _user("alice") | {"accessKeyId": ""},
            read_only=False,
            ua=UA_CONSOLE,
        )
        rec.update(
            eventType="AwsConsoleSignIn",
            errorMessage="Failed authentication",
            responseElements={"ConsoleLogin": "Failure"},
            additionalEventData={
                "LoginTo": "https://console.aws.amazon.com/console/home",
                "MobileVersion": "No",
                "MFAUsed": "No",
            },
        )
        out.append(rec)
    return out


def root_login(rng: random.Random, t: datetime) -> dict[str, Any]:
    root = {
        "type": "Root",
        "principalId": ACCOUNT,
        "arn": f"arn:aws:iam::{ACCOUNT}:root",
        "accountId": ACCOUNT,
        "accessKeyId": "",
    }
    rec = _base(
        rng,
        t,
        "signin.amazonaws.com",
        "ConsoleLogin",
        ATTACKER_IP,
        root,
        read_only=False,
        ua=UA_CONSOLE,
    )
    rec.update(
        eventType="AwsConsoleSignIn",
        responseElements={"ConsoleLogin": "Success"},
        additionalEventData={
            "LoginTo": "https://console.aws.amazon.com/console/home",
            "MobileVersion": "No",
            "MFAUsed": "No",
        },
    )
    return rec


def stop_logging(rng: random.Random, t: datetime) -> dict[str, Any]:
    rec = _base(
        rng,
        t,
        "cloudtrail.amazonaws.com",
        "StopLogging",
        ATTACKER_IP,
        _role("ops-admin", "intruder"),
        read_only=False,
    )
    rec["requestParameters"] = {
        "name": f"arn:aws:cloudtrail:{REGION}:{ACCOUNT}:trail/management-events"
    }
    return rec


def open_security_group(rng: random.Random, t: datetime) -> dict[str, Any]:
    rec = _base(
        rng,
        t,
        "ec2.amazonaws.com",
        "AuthorizeSecurityGroupIngress",
        ATTACKER_IP,
        _role("ops-admin", "intruder"),
        read_only=False,
    )
    rec["requestParameters"] = {
        "groupId": "sg-0a1b2c3d4e5f60718",
        "ipPermissions": {
            "items": [
                {
                    "ipProtocol": "tcp",
                    "fromPort": 22,
                    "toPort": 22,
                    "groups": {},
                    "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]},
                    "ipv6Ranges": {},
                    "prefixListIds": {},
                }
            ]
        },
    }
    rec["responseElements"] = {"_return": True}
    return rec


def schedule_key_deletion(rng: random.Random, t: datetime) -> dict[str, Any]:
    key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    rec = _base(
        rng,
        t,
        "kms.amazonaws.com",
        "ScheduleKeyDeletion",
        ATTACKER_IP,
        _role("ops-admin", "intruder"),
        read_only=False,
    )
    rec["requestParameters"] = {"keyId": key, "pendingWindowInDays": 7}
    rec["responseElements"] = {"keyId": key, "keyState": "PendingDeletion"}
    rec["resources"] = [{"accountId": ACCOUNT, "type": "AWS::KMS::Key", "ARN": key}]
    return rec


def story(rng: random.Random, start: datetime) -> list[Step]:
    """The acts, each at a few seconds' distance (eventTime a little before it is played)."""

    def at(s: float) -> datetime:
        return start + timedelta(seconds=s)

    return [
        Step(
            2,
            "burst of failed console sign-ins from one IP",
            tuple(failed_logins(rng, at(2) - timedelta(seconds=90))),
            ("console-login-failures-per-ip", "console-login-failures-per-user"),
        ),
        Step(12, "the root user signs in", (root_login(rng, at(12)),), ("root-console-login",)),
        Step(
            20,
            "CloudTrail logging is stopped",
            (stop_logging(rng, at(20)),),
            ("cloudtrail-logging-disabled",),
        ),
        Step(
            28,
            "a security group is opened to 0.0.0.0/0 on port 22",
            (open_security_group(rng, at(28)),),
            ("security-group-open-to-internet",),
        ),
        Step(
            36,
            "a KMS key is scheduled for deletion",
            (schedule_key_deletion(rng, at(36)),),
            ("kms-key-scheduled-for-deletion",),
        ),
    ]


def noise_stream(rng: random.Random, start: datetime, per_second: float) -> Iterator[datetime]:
    t = start
    while True:
        t += timedelta(seconds=rng.expovariate(per_second))
        yield t


# -- the CPU metric: 3 of 5 periods breaching, then recovering ----------------------------------
CPU_NAMESPACE = "Veilleur/Demo"
CPU_DIMENSIONS = [{"Name": "AutoScalingGroupName", "Value": "web"}]


def cpu_history(minute: datetime) -> list[tuple[datetime, float]]:
    """The ten minutes before ``minute``: calm, then three breaching minutes, then two calm
    ones. With 3 of 5 at > 80 the alarm is due now; one more calm minute resolves it."""
    values = [31.0, 28.5, 35.2, 30.1, 29.7, 93.4, 97.8, 95.1, 41.0, 38.6]
    return [(minute - timedelta(minutes=10 - i), v) for i, v in enumerate(values)]
