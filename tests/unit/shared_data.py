"""Where the read-only shared data lives: ``../shared`` beside the project (also in CI)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
DATASET = SHARED / "data" / "invictus-aws-dataset"


def dataset_or_skip() -> Path:
    if not DATASET.is_dir():
        pytest.skip(f"shared data not found at {DATASET}")
    return DATASET


# The CIS match counts published in ../shared/data/README.md (an independent count).
README_CIS_COUNTS = {
    "cis-unauthorized-api-calls": 60,
    "cis-route-table-changes": 40,
    "cis-iam-policy-changes": 26,
    "cis-vpc-changes": 16,
    "cis-network-gateway-changes": 15,
    "cis-cloudtrail-changes": 13,
    "cis-security-group-changes": 8,
    "cis-s3-bucket-policy-changes": 6,
    "cis-organizations-changes": 1,
    "cis-console-login-no-mfa": 1,
}
