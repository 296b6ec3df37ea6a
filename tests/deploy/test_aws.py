"""deploy/aws: the IAM policy allows exactly what the daemon calls; the template lints clean
and routes what the EventBridge sink puts."""

from __future__ import annotations

import ast
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import botocore.session
import pytest
import yaml

from tests.deploy.tools import DEPLOY, ROOT, tool
from veilleur.alerts import Alert, AlertKind
from veilleur.config import ConfigModel
from veilleur.model import Severity
from veilleur.rules.event_pattern import compile_event_pattern
from veilleur.sinks.eventbridge import EventBridgeSink

AWS = DEPLOY / "aws"
PACKAGE = ROOT / "daemon" / "veilleur"
ENTRY = "veilleur.daemon"  # `veilleur run` and `veilleur once`
# boto3 client name -> IAM service prefix, where they differ from each other or not.
IAM_PREFIX = {
    "cloudtrail": "cloudtrail",
    "cloudwatch": "cloudwatch",  # signs as "monitoring", authorises as "cloudwatch"
    "events": "events",
    "sns": "sns",
    "sts": "sts",
}
# Operations authorised by another operation's action.
IAM_ACTION = {"sns:PublishBatch": "sns:Publish"}
# These support no resource-level permissions: "*" is the only possible resource.
UNSCOPED = {"cloudtrail:LookupEvents", "cloudwatch:GetMetricData", "sts:GetCallerIdentity"}


# -- what the code calls --------------------------------------------------------------------
def module_file(name: str) -> Path | None:
    parts = name.split(".")[1:]
    candidates = [PACKAGE.joinpath(*parts, "__init__.py")]
    if parts:
        candidates.insert(0, PACKAGE.joinpath(*parts[:-1], parts[-1] + ".py"))
    return next((c for c in candidates if c.is_file()), None)


def imported_modules(name: str, tree: ast.AST) -> set[str]:
    found: set[str] = set()
    path = module_file(name)
    package = name if path is not None and path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "veilleur"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != "veilleur":
                continue
            found.add(module)
            found |= {f"{module}.{a.name}" for a in node.names}
    return {m for m in found if module_file(m) is not None}


def reachable_modules(entry: str) -> dict[str, ast.AST]:
    """Every veilleur module the entry point can import (function-level imports included),
    with its package __init__ modules."""
    seen: dict[str, ast.AST] = {}
    todo = [entry]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = module_file(name)
        assert path is not None, name
        tree = ast.parse(path.read_text("utf-8"), str(path))
        seen[name] = tree
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        todo += sorted(imported_modules(name, tree))
    return seen


def services_created(trees: dict[str, ast.AST]) -> set[str]:
    """Service names in ``<anything>.client("name", ...)`` calls."""
    services = set()
    for tree in trees.values():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name != "client":
                continue
            args = [*node.args[:1], *(k.value for k in node.keywords if k.arg == "service_name")]
            for arg in args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    services.add(arg.value)
    return services


def operations_called(trees: dict[str, ast.AST], services: set[str]) -> set[str]:
    """IAM-style "service:Operation" for every method call whose name is an operation of a
    service the code makes clients for, and every ``get_paginator("op")``."""
    session = botocore.session.get_session()
    index: dict[str, set[str]] = {}
    for service in services:
        model = session.get_service_model(service)
        for op in model.operation_names:
            snake = botocore.xform_name(op)
            index.setdefault(snake, set()).add(f"{service}:{op}")
    # A method the project defines itself (Metrics.set_alarm_state) shares its name with an
    # AWS operation only by chance: count such calls only on a receiver named like a client.
    own = {
        n.name
        for tree in trees.values()
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    called: set[str] = set()
    for tree in trees.values():
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            attr = node.func.attr
            if attr in own and "client" not in ast.unparse(node.func.value):
                continue
            if attr in ("get_paginator", "can_paginate") and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    called |= index[arg.value]
            elif attr in index:
                called |= index[attr]
    return called


def iam_actions(ops: set[str]) -> set[str]:
    actions = set()
    for op in ops:
        service, name = op.split(":")
        assert service in IAM_PREFIX, f"{service}: add its IAM prefix to IAM_PREFIX"
        action = f"{IAM_PREFIX[service]}:{name}"
        actions.add(IAM_ACTION.get(action, action))
    return actions


@pytest.fixture(scope="module")
def code() -> tuple[set[str], set[str]]:
    trees = reachable_modules(ENTRY)
    services = services_created(trees)
    return services, iam_actions(operations_called(trees, services))


def test_the_scan_sees_the_known_calls(code: tuple[set[str], set[str]]) -> None:
    """Not vacuous: the sources, sinks and session factory are found through daemon.py."""
    services, actions = code
    assert {"cloudtrail", "sns", "events", "sts", "cloudwatch"} <= services
    assert {
        "cloudtrail:LookupEvents",
        "sns:Publish",  # publish_batch
        "events:PutEvents",
        "sts:GetCallerIdentity",
        "sts:AssumeRole",
        "cloudwatch:GetMetricData",
    } <= actions


# -- what the policy allows ------------------------------------------------------------------
def statements(doc: dict[str, Any]) -> list[dict[str, Any]]:
    assert doc["Version"] == "2012-10-17"
    stmts = doc["Statement"]
    return stmts if isinstance(stmts, list) else [stmts]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def allowed(doc: dict[str, Any]) -> dict[str, list[Any]]:
    """Action -> resources, for a policy of Allow statements without wildcard actions."""
    out: dict[str, list[Any]] = {}
    sids = [s.get("Sid") for s in statements(doc)]
    assert len(sids) == len(set(sids))
    for s in statements(doc):
        assert s["Effect"] == "Allow"
        assert "NotAction" not in s
        assert "NotResource" not in s
        for action in as_list(s["Action"]):
            assert "*" not in action, f"wildcard action {action}"
            out.setdefault(action, []).extend(as_list(s["Resource"]))
    return out


@pytest.fixture(scope="module")
def policy() -> dict[str, list[Any]]:
    return allowed(json.loads((AWS / "iam-policy.json").read_text("utf-8")))


def test_policy_allows_every_call_and_nothing_else(
    code: tuple[set[str], set[str]], policy: dict[str, list[Any]]
) -> None:
    services, actions = code
    missing = actions - set(policy)
    assert not missing, f"the daemon calls these but the policy denies them: {sorted(missing)}"
    extra = set(policy) - actions
    assert "cloudwatch" in services  # the CloudWatch source is reachable from daemon.py
    assert not extra, f"the policy allows what the daemon never calls: {sorted(extra)}"


def test_policy_resources_are_scoped(policy: dict[str, list[Any]]) -> None:
    for action, resources in policy.items():
        if action in UNSCOPED:
            assert resources == ["*"], action
            continue
        assert "*" not in resources, f"{action} on every resource"
    assert all(r.startswith("arn:aws:sns:") for r in policy["sns:Publish"])
    assert all(":event-bus/" in r for r in policy["events:PutEvents"])
    assert all(r.startswith("arn:aws:iam::") and ":role/" in r for r in policy["sts:AssumeRole"])


def test_policy_covers_the_shipped_configs_sinks(policy: dict[str, list[Any]]) -> None:
    """The example config and the ConfigMap publish where the policy lets them."""
    configmap = yaml.safe_load((DEPLOY / "kubernetes" / "configmap.yaml").read_text("utf-8"))
    configs = [
        yaml.safe_load((ROOT / "config" / "veilleur.example.yaml").read_text("utf-8")),
        yaml.safe_load(configmap["data"]["veilleur.yaml"]),
    ]
    statement = next(
        s
        for s in statements(json.loads((AWS / "iam-policy.json").read_text("utf-8")))
        if s["Action"] == "events:PutEvents"
    )
    for data in configs:
        model = ConfigModel.model_validate(data)
        for sns in model.sinks.sns:
            assert sns.topic_arn in policy["sns:Publish"]
        for bus in model.sinks.eventbridge:
            assert any(r.endswith(f":event-bus/{bus.bus}") for r in policy["events:PutEvents"])
            assert statement["Condition"]["StringEquals"]["events:source"] == bus.source


def test_reader_and_trust_policies() -> None:
    reader = allowed(json.loads((AWS / "reader-policy.json").read_text("utf-8")))
    # What a source needs in a watched account, read-only.
    assert set(reader) <= UNSCOPED
    assert "cloudtrail:LookupEvents" in reader
    trust = statements(json.loads((AWS / "trust-policy.json").read_text("utf-8")))
    assert len(trust) == 1
    (s,) = trust
    assert s["Effect"] == "Allow"
    assert s["Action"] == "sts:AssumeRole"
    assert ":role/" in s["Principal"]["AWS"]
    assert s["Condition"]["StringEquals"]["sts:ExternalId"]


# -- the CloudFormation template -------------------------------------------------------------
def test_cfn_lint_finds_no_error() -> None:
    cfn_lint = tool("cfn-lint", "pip install cfn-lint (the dev extra)")
    proc = subprocess.run(
        [cfn_lint, "--format", "parseable", str(AWS / "cloudformation.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    decode = pytest.importorskip("cfnlint.decode", reason="pip install cfn-lint").decode
    tpl, problems = decode(str(AWS / "cloudformation.yaml"))
    assert not problems, problems
    return dict(tpl)


def test_template_policy_grants_the_same_actions(
    template: dict[str, Any], policy: dict[str, list[Any]]
) -> None:
    doc = template["Resources"]["VeilleurPolicy"]["Properties"]["PolicyDocument"]
    actions = set()
    for s in statements(doc):
        if "Fn::If" in s:  # the optional AssumeRole statement
            s = s["Fn::If"][1]
        actions |= set(as_list(s["Action"]))
    assert actions == set(policy)


def alert(severity: Severity, kind: AlertKind) -> Alert:
    t = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    return Alert(
        rule_id="essentials-console-login-failures",
        title="Repeated failed console sign-ins",
        severity=severity,
        kind=kind,
        fingerprint="fp",
        notification_id="n-1",
        count=5,
        first_seen=t,
        last_seen=t,
    )


def test_template_rule_routes_critical_alerts_from_the_sink(template: dict[str, Any]) -> None:
    rule = template["Resources"]["CriticalAlertRule"]["Properties"]
    pattern = rule["EventPattern"]
    source_param = template["Parameters"]["EventSource"]["Default"]
    assert pattern["source"] == [{"Ref": "EventSource"}]
    pattern = {**pattern, "source": [source_param]}
    matcher = compile_event_pattern(pattern)
    sink = EventBridgeSink(client=None, bus_name="veilleur", source=source_param)

    def delivered(a: Alert) -> dict[str, Any]:
        """The event as EventBridge matches it: PutEvents fields in their event names."""
        entry = sink.entry(a)
        return {
            "source": entry["Source"],
            "detail-type": entry["DetailType"],
            "resources": entry["Resources"],
            "detail": json.loads(entry["Detail"]),
        }

    for kind in (AlertKind.THRESHOLD, AlertKind.ALARM, AlertKind.EVENT):
        assert matcher.matches(delivered(alert(Severity.CRITICAL, kind))), kind
        assert not matcher.matches(delivered(alert(Severity.HIGH, kind))), kind
    assert ConfigModel().sinks.eventbridge == []
    assert source_param == "veilleur"  # EventBridgeSinkConfig's default source
