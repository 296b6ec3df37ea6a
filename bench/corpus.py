"""Synthetic but realistic CloudTrail corpora for the benchmarks.

Mostly read-only Describe/List/Get calls by a few roles and users (as real trails are), with
the shared invictus dataset's records re-keyed and re-timed in between when it is present.
Deterministic (seeded).
"""

from __future__ import annotations

import gzip
import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "invictus-aws-dataset"
SERVICES = [
    "ec2",
    "s3",
    "iam",
    "sts",
    "kms",
    "lambda",
    "rds",
    "cloudwatch",
    "logs",
    "ssm",
    "dynamodb",
    "sqs",
    "sns",
    "ecs",
    "eks",
    "elasticloadbalancing",
    "autoscaling",
]
READ_VERBS = ["Describe", "List", "Get"]
WRITE_VERBS = ["Create", "Delete", "Put", "Update", "Modify", "Attach", "Detach", "Tag"]
NOUNS = [
    "Instances",
    "Buckets",
    "Roles",
    "Policies",
    "Keys",
    "Functions",
    "DBInstances",
    "Alarms",
    "LogGroups",
    "Parameters",
    "Tables",
    "Queues",
    "Topics",
    "Clusters",
    "LoadBalancers",
    "Volumes",
    "Snapshots",
    "SecurityGroups",
    "Subnets",
    "Vpcs",
]
START = datetime(2026, 1, 1, tzinfo=UTC)


def api_names() -> list[str]:
    return [v + n for v in READ_VERBS + WRITE_VERBS for n in NOUNS]


def shared_records() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if SHARED.is_dir():
        for path in sorted(SHARED.glob("*.json.gz")):
            with gzip.open(path) as fh:
                out.extend(json.load(fh)["Records"])
    return out


def synthetic(rng: random.Random, t: datetime) -> dict[str, Any]:
    write = rng.random() < 0.12
    verb = rng.choice(WRITE_VERBS if write else READ_VERBS)
    noun = rng.choice(NOUNS)
    service = rng.choice(SERVICES)
    who = rng.randrange(40)
    rec: dict[str, Any] = {
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": f"AROA{who:016d}:session-{who}",
            "arn": f"arn:aws:sts::123456789012:assumed-role/role-{who % 7}/session-{who}",
            "accountId": "123456789012",
            "accessKeyId": f"ASIA{who:016d}",
            "sessionContext": {
                "sessionIssuer": {"type": "Role", "userName": f"role-{who % 7}"},
                "attributes": {"creationDate": "2026-01-01T00:00:00Z", "mfaAuthenticated": "false"},
            },
        },
        "eventTime": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": f"{service}.amazonaws.com",
        "eventName": verb + noun,
        "awsRegion": "us-east-1",
        "sourceIPAddress": f"10.{who}.{rng.randrange(256)}.{rng.randrange(256)}",
        "userAgent": "aws-sdk-go-v2/1.30.3 os/linux lang/go#1.22.5 md/GOOS#linux",
        "requestParameters": {"maxResults": 100, "filterSet": {"items": [{"name": "tag:env"}]}},
        "responseElements": None,
        "requestID": str(uuid.UUID(int=rng.getrandbits(128))),
        "eventID": str(uuid.UUID(int=rng.getrandbits(128))),
        "readOnly": not write,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": "123456789012",
        "eventCategory": "Management",
    }
    if rng.random() < 0.01:
        rec["errorCode"] = "AccessDenied"
        rec["errorMessage"] = "User is not authorized"
    return rec


def corpus(n: int, seed: int = 7) -> Iterator[str]:
    """``n`` records as JSON strings (as LookupEvents' CloudTrailEvent), 10 per second."""
    rng = random.Random(seed)
    shared = shared_records()
    for i in range(n):
        t = START + timedelta(seconds=i / 10)
        if shared and rng.random() < 0.1:
            rec = dict(rng.choice(shared))
            rec["eventID"] = str(uuid.UUID(int=rng.getrandbits(128)))
            rec["eventTime"] = t.strftime("%Y-%m-%dT%H:%M:%SZ")
        else:
            rec = synthetic(rng, t)
        yield json.dumps(rec)
