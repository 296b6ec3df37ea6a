"""deploy/systemd: the unit verifies, is hardened to the target exposure, fits the daemon."""

from __future__ import annotations

import re
import stat
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from tests.deploy.tools import DEPLOY, tool
from veilleur.config import ConfigModel
from veilleur.observe.systemd import watchdog_interval

UNIT = DEPLOY / "systemd" / "veilleur.service"
ENV_EXAMPLE = DEPLOY / "systemd" / "veilleur.env.example"
EXPOSURE_TARGET = 2.0
APT_HINT = "apt-get install systemd; .ci/run installs it"


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> every value in order (systemd settings may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"setting outside a section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"not KEY=value: {line}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture(scope="module")
def unit() -> dict[str, dict[str, list[str]]]:
    return parse_unit(UNIT.read_text("utf-8"))


def resolvable_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at an executable that exists (systemd-analyze verify
    checks that the binary is there); everything else unchanged."""
    binary = tmp_path / "veilleur"
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    text = UNIT.read_text("utf-8")
    assert "ExecStart=/usr/local/bin/veilleur " in text
    copy = tmp_path / "veilleur.service"
    copy.write_text(text.replace("ExecStart=/usr/local/bin/veilleur ", f"ExecStart={binary} "))
    return copy


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze", APT_HINT)
    copy = resolvable_copy(tmp_path)
    proc = subprocess.run(
        [analyze, "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    about_us = [
        line for line in (proc.stdout + proc.stderr).splitlines() if "veilleur.service" in line
    ]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert about_us == []


def exposure(analyze: str, unit: Path) -> float:
    proc = subprocess.run(
        [analyze, "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    out = proc.stdout + proc.stderr
    found = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", out)
    assert found, f"no exposure figure in:\n{out}"
    return float(found.group(1))


def test_exposure_is_within_the_target(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze", APT_HINT)
    figure = exposure(analyze, resolvable_copy(tmp_path))
    print(f"systemd-analyze security exposure: {figure}")
    assert figure <= EXPOSURE_TARGET


def test_the_figure_measures_the_hardening(tmp_path: Path) -> None:
    """Without its hardening block the same unit scores far worse: the parse reads a real
    figure, and the hardening is what earns it."""
    analyze = tool("systemd-analyze", APT_HINT)
    hardened = resolvable_copy(tmp_path)
    text = hardened.read_text("utf-8")
    bare_text = text.split("# --- hardening", 1)[0].replace("UMask=0077\n", "")
    bare = tmp_path / "bare" / "veilleur.service"
    bare.parent.mkdir()
    bare.write_text(bare_text)
    assert exposure(analyze, bare) >= 8.0 > exposure(analyze, hardened)


def test_the_unit_speaks_the_daemons_protocol(unit: dict[str, dict[str, list[str]]]) -> None:
    svc = unit["Service"]

    def one(key: str) -> str:
        assert len(svc.get(key, [])) == 1, f"{key}: {svc.get(key)}"
        return svc[key][0]

    assert one("Type") == "notify"  # the daemon sends READY=1 (observe/systemd.py)
    assert one("NotifyAccess") == "main"
    assert one("Restart") == "on-failure"
    assert one("ExecReload") == "/bin/kill -HUP $MAINPID"  # SIGHUP reloads config and rules
    assert one("ExecStart").endswith(" run -c /etc/veilleur/veilleur.yaml")
    assert one("EnvironmentFile") == "-/etc/veilleur/env"
    assert one("RestartPreventExitStatus") == "2"  # cli.EXIT_CONFIG: a restart cannot fix it
    # The state directory is the config's default state_dir.
    assert "/var/lib/" + one("StateDirectory") == ConfigModel().state_dir
    assert one("DynamicUser") == "yes"
    # The daemon pets the watchdog well inside WatchdogSec.
    watchdog_sec = int(one("WatchdogSec"))
    assert watchdog_sec == 60
    beat = watchdog_interval({"WATCHDOG_USEC": str(watchdog_sec * 1_000_000)})
    assert beat is not None
    assert beat <= timedelta(seconds=watchdog_sec / 2)
    # It must reach AWS endpoints, whose addresses are not fixed: no IP allow list.
    assert "IPAddressDeny" not in svc
    assert one("RestrictAddressFamilies") == "AF_UNIX AF_INET AF_INET6"


def test_env_example_is_a_valid_environment_file() -> None:
    import botocore.session

    session = botocore.session.get_session()
    # AWS_ENDPOINT_URL_<SERVICE> is the service id, upper case, spaces as underscores.
    endpoint_vars = {
        "AWS_ENDPOINT_URL_" + session.get_service_model(name).service_id.replace(" ", "_").upper()
        for name in ("cloudtrail", "sns", "events", "cloudwatch", "sts")
    }
    active: dict[str, str] = {}
    for raw in ENV_EXAMPLE.read_text("utf-8").splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            for name in re.findall(r"\bAWS_ENDPOINT_URL_[A-Z0-9_]+", line):
                assert name in endpoint_vars, f"{name}: botocore reads no such variable"
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not KEY=value: {line}"
        assert re.fullmatch(r"[A-Z_][A-Z0-9_]*", key), key
        active[key] = value
    # Only a region by default: credentials come from the role, never from an example file.
    assert active == {"AWS_REGION": "us-east-1"}
