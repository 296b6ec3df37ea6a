"""`veilleur demo` as a user runs it: every expected alert reaches every subscriber, exit 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import veilleur


def test_demo_plays_the_whole_story(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.run(
        [sys.executable, "-m", "veilleur.cli", "demo"],
        capture_output=True,
        text=True,
        timeout=400,
        env=env,
        cwd=tmp_path,  # as a user who cloned the project runs it: no ../shared beside
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    assert "All expected alerts arrived everywhere." in out
    for rule in (
        "console-login-failures-per-ip",
        "root-console-login",
        "cloudtrail-logging-disabled",
        "security-group-open-to-internet",
        "kms-key-scheduled-for-deletion",
        "demo-web-cpu-high -> ALARM",
        "demo-web-cpu-high -> OK",
    ):
        assert f"✔ {rule}" in out
    assert "📱 SMS subscriber" in out and "⚙ EventBridge target" in out
    assert "◀" in out and "reached email" in out  # each arrival says what it answers
    assert "not in the story" not in out  # the background noise raised no alert
    assert "/metrics" in out


def test_the_demo_ships_everything_it_plays() -> None:
    """A clone has no ../shared: the demo and the emulator must not read it."""
    package = Path(veilleur.__file__).parent
    for folder in ("demo", "emulator"):
        for source in (package / folder).glob("*.py"):
            text = source.read_text("utf-8")
            assert "shared" not in text and "invictus" not in text, source
