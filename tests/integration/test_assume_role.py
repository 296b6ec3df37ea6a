"""Accounts behind a role: STS AssumeRole over HTTP, credentials refreshed before expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3

from veilleur.aws import SessionFactory


def test_assumed_role_credentials_refresh_before_expiry(moto_url: str, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    calls: list[str] = []
    base = boto3.Session(region_name="us-east-1")
    base.events.register("before-call.sts.AssumeRole", lambda **kw: calls.append("assume"))
    factory = SessionFactory(base)
    role = "arn:aws:iam::210987654321:role/veilleur-reader"
    session = factory.session(role, external_id="ext-1")
    creds = session.get_credentials()
    first = creds.get_frozen_credentials()
    assert first.access_key != "testing"  # not the ambient keys
    assert calls == ["assume"]
    # Nothing happens while the credentials are fresh ...
    creds.get_frozen_credentials()
    assert calls == ["assume"]
    # ... and a new AssumeRole runs once they are within botocore's refresh window.
    creds._expiry_time = datetime.now(tz=UTC) + timedelta(minutes=5)
    creds.get_frozen_credentials()
    assert calls == ["assume", "assume"]
    # The client built from it works (moto answers as the assumed account).
    ident = factory.client("sts", "us-east-1", role).get_caller_identity()
    assert ident["Account"] == "210987654321"
    assert factory.account_id(role) == "210987654321"


def test_lookup_events_requests_are_never_retried_unpaced_by_botocore(moto_url: str) -> None:
    """The poller paces and counts every LookupEvents request; botocore retries others."""
    factory = SessionFactory(
        boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
    )
    assert factory.client("cloudtrail", "us-east-1").meta.config.retries["total_max_attempts"] == 1
    assert factory.client("sns", "us-east-1").meta.config.retries["total_max_attempts"] == 3
