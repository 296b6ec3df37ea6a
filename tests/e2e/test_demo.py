"""`veilleur demo` as a user runs it: every expected alert reaches every subscriber, exit 0."""

from __future__ import annotations

import os
import subprocess
import sys


def test_demo_plays_the_whole_story() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.run(
        [sys.executable, "-m", "veilleur.cli", "demo"],
        capture_output=True,
        text=True,
        timeout=400,
        env=env,
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
    assert "/metrics" in out
