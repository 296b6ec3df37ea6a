"""boto3 sessions and clients: the only place that builds them.

Endpoints come from botocore's own settings (``AWS_ENDPOINT_URL``,
``AWS_ENDPOINT_URL_<SERVICE>``): tests and the demo point at local emulators without code here.
An account with ``role_arn`` gets STS AssumeRole credentials that botocore refreshes before
they expire (RefreshableCredentials).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.credentials import RefreshableCredentials
from botocore.session import get_session

from veilleur import __version__

# Our own pacing and retries come first; botocore's standard mode is the last line only.
CLIENT_CONFIG = BotoConfig(
    retries={"max_attempts": 2, "mode": "standard"},
    connect_timeout=5,
    read_timeout=20,
    user_agent_extra=f"veilleur/{__version__}",
)
# The CloudTrail poller paces and retries every LookupEvents request itself: a botocore retry
# would go out unpaced (past the 2/s limit) and uncounted in the calls per poll.
PACED_CLIENT_CONFIG = CLIENT_CONFIG.merge(
    BotoConfig(retries={"total_max_attempts": 1, "mode": "standard"})
)
PACED_SERVICES = frozenset({"cloudtrail"})
ROLE_SESSION_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class Target:
    """Where a source or sink works: an account (id may be unknown until asked) and a region."""

    account: str
    region: str

    @property
    def key(self) -> str:
        return f"{self.account}/{self.region}"


class SessionFactory:
    """One boto3 session per account (ambient or assumed role), clients cached per region."""

    def __init__(self, base: boto3.Session | None = None) -> None:
        self._base = base or boto3.Session()
        self._sessions: dict[str | None, boto3.Session] = {}
        self._clients: dict[tuple[str | None, str, str], Any] = {}
        self._lock = threading.Lock()

    def session(self, role_arn: str | None = None, external_id: str | None = None) -> boto3.Session:
        with self._lock:
            if role_arn not in self._sessions:
                self._sessions[role_arn] = (
                    self._base if role_arn is None else self._assumed(role_arn, external_id)
                )
            return self._sessions[role_arn]

    def client(
        self, service: str, region: str, role_arn: str | None = None, external_id: str | None = None
    ) -> Any:
        key = (role_arn, service, region)
        with self._lock:
            hit = self._clients.get(key)
        if hit is not None:
            return hit
        config = PACED_CLIENT_CONFIG if service in PACED_SERVICES else CLIENT_CONFIG
        client = self.session(role_arn, external_id).client(
            service, region_name=region, config=config
        )
        with self._lock:
            self._clients.setdefault(key, client)
            return self._clients[key]

    def account_id(self, role_arn: str | None = None, region: str = "us-east-1") -> str:
        """The account behind the credentials (STS GetCallerIdentity)."""
        ident = self.client("sts", region, role_arn).get_caller_identity()
        return str(ident["Account"])

    def _assumed(self, role_arn: str, external_id: str | None) -> boto3.Session:
        sts = self._base.client("sts", config=CLIENT_CONFIG)

        def refresh() -> dict[str, str]:
            kwargs: dict[str, Any] = {
                "RoleArn": role_arn,
                "RoleSessionName": "veilleur",
                "DurationSeconds": ROLE_SESSION_SECONDS,
            }
            if external_id:
                kwargs["ExternalId"] = external_id
            creds = sts.assume_role(**kwargs)["Credentials"]
            expiry = creds["Expiration"]
            if isinstance(expiry, datetime):
                expiry = expiry.astimezone(UTC).isoformat()
            return {
                "access_key": creds["AccessKeyId"],
                "secret_key": creds["SecretAccessKey"],
                "token": creds["SessionToken"],
                "expiry_time": str(expiry),
            }

        credentials = RefreshableCredentials.create_from_metadata(
            metadata=refresh(), refresh_using=refresh, method="sts-assume-role"
        )
        botocore_session = get_session()
        botocore_session._credentials = credentials
        region = self._base.region_name
        if region:
            botocore_session.set_config_variable("region", region)
        return boto3.Session(botocore_session=botocore_session)
