"""Paths and tool lookup shared by the deployment tests."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def tool(name: str, install_hint: str) -> str:
    """The path of a command-line tool: beside this Python (the venv's bin) or on PATH.

    Skips the calling test, saying how to get the tool, when it is absent.
    """
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} not installed ({install_hint})")
    return found
