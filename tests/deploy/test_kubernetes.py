"""deploy/kubernetes: schema-valid manifests that agree with each other, the image and the
daemon's configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.tools import DEPLOY
from veilleur.config import load_config, parse_config
from veilleur.observe.health import parse_listen
from veilleur.rules.loader import load_rules
from veilleur.rules.testing import run_tests

K8S = DEPLOY / "kubernetes"
KUBERNETES_VERSION = "1.30.0"  # the oldest EKS standard-support version we target
# Not in kubernetes-validate's schemas: ServiceMonitor is a Prometheus Operator CRD and
# Kustomization is kustomize's own file. Both are checked structurally below instead.
NOT_CORE = {"ServiceMonitor", "Kustomization"}


def documents() -> list[tuple[Path, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text("utf-8")):
            if doc:
                docs.append((path, doc))
    return docs


@pytest.fixture(scope="module")
def by_kind() -> dict[str, dict[str, Any]]:
    kinds: dict[str, dict[str, Any]] = {}
    for _path, doc in documents():
        assert doc["kind"] not in kinds, f"two {doc['kind']} documents"
        kinds[doc["kind"]] = doc
    return kinds


def test_core_manifests_validate_against_the_kubernetes_schema() -> None:
    kv = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    checked = []
    for path, doc in documents():
        if doc["kind"] in NOT_CORE:
            continue
        try:
            kv.validate(doc, KUBERNETES_VERSION, strict=True)
        except kv.ValidationError as exc:
            pytest.fail(f"{path.name}: {exc.message} at {list(exc.path)}")
        checked.append(doc["kind"])
    assert sorted(checked) == sorted(
        [
            "ConfigMap",
            "Deployment",
            "Namespace",
            "PersistentVolumeClaim",
            "Service",
            "ServiceAccount",
        ]
    )


def pod_spec(by_kind: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return by_kind["Deployment"]["spec"]["template"]["spec"]


def container(by_kind: dict[str, dict[str, Any]]) -> dict[str, Any]:
    containers = pod_spec(by_kind)["containers"]
    assert len(containers) == 1
    return containers[0]


def test_one_replica_recreated_not_rolled(by_kind: dict[str, dict[str, Any]]) -> None:
    spec = by_kind["Deployment"]["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}


def test_pod_meets_the_restricted_pod_security_standard(by_kind: dict[str, dict[str, Any]]) -> None:
    pod = pod_spec(by_kind)
    c = container(by_kind)
    psc, csc = pod["securityContext"], c["securityContext"]
    assert psc["runAsNonRoot"] is True
    assert psc["runAsUser"] == 10001  # the image's USER
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert csc["allowPrivilegeEscalation"] is False
    assert csc["readOnlyRootFilesystem"] is True
    assert csc["capabilities"] == {"drop": ["ALL"]}
    assert csc.get("privileged", False) is False
    for volume in pod["volumes"]:
        assert "hostPath" not in volume
    ns = by_kind["Namespace"]["metadata"]["labels"]
    assert ns["pod-security.kubernetes.io/enforce"] == "restricted"
    res = c["resources"]
    assert set(res) == {"requests", "limits"}
    assert {"cpu", "memory"} <= set(res["requests"])
    assert {"cpu", "memory"} <= set(res["limits"])


def test_probes_hit_the_health_endpoints_on_the_metrics_port(
    by_kind: dict[str, dict[str, Any]],
) -> None:
    c = container(by_kind)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"metrics": 9108}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    # The daemon's own liveness bound is 60 s of silence: the probe must not be stricter.
    live = c["livenessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] >= 60


def configmap_files(by_kind: dict[str, dict[str, Any]]) -> dict[str, str]:
    data = by_kind["ConfigMap"]["data"]
    assert set(data) == {"veilleur.yaml", "rules.yaml"}
    return data


def test_configmap_config_parses_and_matches_the_deployment(
    by_kind: dict[str, dict[str, Any]],
) -> None:
    files = configmap_files(by_kind)
    model = parse_config(yaml.safe_load(files["veilleur.yaml"]), "configmap veilleur.yaml")
    host, port = parse_listen(model.metrics.listen)
    assert host == "0.0.0.0"  # probes and Prometheus come from outside the pod
    assert port == 9108
    c = container(by_kind)
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert mounts["state"]["mountPath"] == model.state_dir == "/var/lib/veilleur"
    assert mounts["config"]["mountPath"] == "/etc/veilleur"
    assert mounts["config"]["readOnly"] is True
    assert mounts["tmp"]["mountPath"] == "/tmp"
    assert c["args"] == ["run", "-c", "/etc/veilleur/veilleur.yaml"]
    assert "us-east-1" in model.regions


def test_configmap_config_and_rules_load_offline_and_the_rules_pass_their_tests(
    by_kind: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    files = configmap_files(by_kind)
    for name, text in files.items():  # as the ConfigMap volume lays them out
        (tmp_path / name).write_text(text, "utf-8")
    cfg = load_config(tmp_path / "veilleur.yaml")
    origins = {r.origin for r in cfg.rules}
    assert {"builtin:cis", "builtin:essentials"} <= origins
    site = load_rules(["rules.yaml"], base_dir=tmp_path)
    assert site
    results = run_tests(site)
    assert results
    assert all(r.passed for r in results), [r for r in results if not r.passed]


def test_references_between_manifests_resolve(by_kind: dict[str, dict[str, Any]]) -> None:
    pod = pod_spec(by_kind)
    pod_labels = by_kind["Deployment"]["spec"]["template"]["metadata"]["labels"]
    match = by_kind["Deployment"]["spec"]["selector"]["matchLabels"]
    assert match.items() <= pod_labels.items()
    assert pod["serviceAccountName"] == by_kind["ServiceAccount"]["metadata"]["name"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert set(volumes) == {"state", "config", "tmp"}
    claim = volumes["state"]["persistentVolumeClaim"]["claimName"]
    assert claim == by_kind["PersistentVolumeClaim"]["metadata"]["name"]
    assert volumes["config"]["configMap"]["name"] == by_kind["ConfigMap"]["metadata"]["name"]
    assert "emptyDir" in volumes["tmp"]
    service = by_kind["Service"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    port_names = {p["name"] for p in container(by_kind)["ports"]}
    for p in service["spec"]["ports"]:
        assert p["targetPort"] in port_names
    annotations = by_kind["ServiceAccount"]["metadata"]["annotations"]
    assert annotations["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")


def test_servicemonitor_structure(by_kind: dict[str, dict[str, Any]]) -> None:
    """A CRD: no schema in kubernetes-validate, so its shape is checked here."""
    sm = by_kind["ServiceMonitor"]
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(sm) == {"apiVersion", "kind", "metadata", "spec"}
    assert sm["metadata"]["name"]
    spec = sm["spec"]
    assert set(spec) <= {"selector", "endpoints", "namespaceSelector", "jobLabel"}
    service = by_kind["Service"]
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    service_ports = {p["name"] for p in service["spec"]["ports"]}
    assert spec["endpoints"]
    allowed = {"port", "path", "interval", "scrapeTimeout", "scheme", "honorLabels"}
    for ep in spec["endpoints"]:
        assert set(ep) <= allowed
        assert ep["port"] in service_ports
        assert ep.get("path", "/metrics") == "/metrics"
    # The alerts select job="veilleur": the operator names the job after the Service.
    assert service["metadata"]["name"] == "veilleur"


def test_kustomization_lists_every_manifest(by_kind: dict[str, dict[str, Any]]) -> None:
    kust = by_kind["Kustomization"]
    assert kust["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    listed = kust["resources"]
    on_disk = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == on_disk
    assert kust["namespace"] == by_kind["Namespace"]["metadata"]["name"]
    image = container(by_kind)["image"].rsplit(":", 1)[0]
    assert [i["name"] for i in kust["images"]] == [image]
