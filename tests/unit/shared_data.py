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
