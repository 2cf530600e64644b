"""deploy/k8s as a cluster would receive it: `kustomize build` of the base and the example
overlay, and what the rendered objects promise: the network policies (intake the only
ingress; each service reaches only what it uses), disruption budgets for eraser and auditor,
the KEDA ScaledObject scaling erasers on consumer lag, each Deployment on its own Secret.

kustomize comes from `make kustomize` (.local/bin) or the PATH; `make test` installs it and
sets LETHE_REQUIRE_KUSTOMIZE=1, so there a missing binary fails instead of skipping."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.events.topics import ERASE_TASKS, TOPICS

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
SERVICES = ("intake", "eraser", "exporter", "notifier", "auditor")
ERASE_TASK_GROUP = "lethe-eraser-tasks"

# Where each egress rule of deploy/k8s/base/network-policies.yaml leads: (namespace or CIDR,
# port) -> what is there. A rule to anywhere else fails the test.
DESTINATIONS = {
    ("kube-system", 53): "dns",
    ("kafka", 9092): "kafka",
    ("10.20.0.0/24", 5432): "lethe-postgres",
    ("observability", 4318): "otel",
    ("10.30.0.0/24", 5432): "platform-postgres",
    ("10.40.0.0/16", 443): "s3",
    ("10.50.0.0/24", 25): "smtp",
    ("10.50.0.0/24", 587): "smtp",
    ("0.0.0.0/0", 443): "internet-https",
}
COMMON = {"dns", "kafka", "lethe-postgres", "otel"}
PLATFORM = {"platform-postgres", "s3"}
EGRESS = {
    "intake": COMMON | PLATFORM,  # data map check (read only), export downloads
    "eraser": COMMON | PLATFORM,
    "exporter": COMMON | PLATFORM,
    "notifier": COMMON | {"smtp", "internet-https"},  # mail, webhooks, OpenDSR callbacks
    "auditor": COMMON,
    "migrate": COMMON,
}
PRIVATE = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16"}


def kustomize() -> str:
    local = REPO / ".local" / "bin" / "kustomize"
    found = str(local) if local.exists() else shutil.which("kustomize")
    if found is None:
        if os.environ.get("LETHE_REQUIRE_KUSTOMIZE"):
            pytest.fail("kustomize not found: run `make kustomize`")
        pytest.skip("kustomize not installed (`make kustomize`; `make test` installs it)")
    return found


def build(directory: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [kustomize(), "build", str(directory)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"kustomize build {directory}: {done.stderr}"
    return [d for d in yaml.safe_load_all(done.stdout) if d]


@pytest.fixture(scope="module")
def overlay() -> list[dict[str, Any]]:
    return build(K8S / "overlays" / "example")


def of_kind(objs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def pod_labels(objs: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """workload (intake, ..., migrate) -> the labels of its pods."""
    out = {}
    for kind in ("Deployment", "Job"):
        for name, obj in of_kind(objs, kind).items():
            out[name.removeprefix("lethe-")] = obj["spec"]["template"]["metadata"]["labels"]
    return out


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        assert expr["operator"] == "In", expr
        if labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


def policies_for(objs: list[dict[str, Any]], labels: dict[str, str], kind: str) -> list[Any]:
    return [
        p["spec"]
        for p in of_kind(objs, "NetworkPolicy").values()
        if kind in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], labels)
    ]


def destination(peer: dict[str, Any], port: int) -> str:
    if "ipBlock" in peer:
        where = peer["ipBlock"]["cidr"]
    else:
        where = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
    assert (where, port) in DESTINATIONS, f"egress to an unknown destination {where}:{port}"
    return DESTINATIONS[(where, port)]


def test_base_and_overlay_render() -> None:
    base = build(K8S / "base")
    assert set(of_kind(base, "Deployment")) == {f"lethe-{s}" for s in SERVICES}


def test_each_workload_reads_its_own_rendered_secret(overlay: list[dict[str, Any]]) -> None:
    secrets = set(of_kind(overlay, "Secret"))
    for kind in ("Deployment", "Job"):
        for name, obj in of_kind(overlay, kind).items():
            (container,) = obj["spec"]["template"]["spec"]["containers"]
            refs = [r["secretRef"]["name"] for r in container["envFrom"] if "secretRef" in r]
            assert len(refs) == 1 and refs[0] in secrets, name
            assert refs[0].startswith(f"{name}-secrets-"), f"{name} reads {refs[0]}"


def test_everything_is_denied_unless_a_policy_allows_it(overlay: list[dict[str, Any]]) -> None:
    deny = of_kind(overlay, "NetworkPolicy")["lethe-default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny


def test_intake_is_the_only_ingress(overlay: list[dict[str, Any]]) -> None:
    for workload, labels in pod_labels(overlay).items():
        rules = [r for p in policies_for(overlay, labels, "Ingress") for r in p.get("ingress", [])]
        ports = {port["port"] for r in rules for port in r.get("ports", [])}
        if workload == "intake":
            assert rules and ports == {8080}  # its HTTP port, from anywhere
            continue
        for rule in rules:  # the others: Prometheus on the ops port, nothing else
            assert rule.get("from"), f"{workload} open to anyone"
            for peer in rule["from"]:
                ns = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                assert ns == "monitoring" and "ipBlock" not in peer, workload
            assert {p["port"] for p in rule["ports"]} == {9464}, workload
        assert workload != "migrate" or not rules


def test_each_service_reaches_only_what_it_uses(overlay: list[dict[str, Any]]) -> None:
    for workload, labels in pod_labels(overlay).items():
        reached = set()
        for spec in policies_for(overlay, labels, "Egress"):
            for rule in spec.get("egress", []):
                assert rule.get("to") and rule.get("ports"), f"{workload}: egress to anywhere"
                for peer in rule["to"]:
                    reached |= {destination(peer, p["port"]) for p in rule["ports"]}
                    block = peer.get("ipBlock", {})
                    if block.get("cidr") == "0.0.0.0/0":  # webhooks: never inside
                        assert PRIVATE | {"100.64.0.0/10"} <= set(block["except"])
        assert reached == EGRESS[workload], f"{workload}: {sorted(reached)}"


def test_eraser_and_auditor_have_disruption_budgets(overlay: list[dict[str, Any]]) -> None:
    budgets = of_kind(overlay, "PodDisruptionBudget")
    labels = pod_labels(overlay)
    for service in ("eraser", "auditor"):
        pdb = budgets[f"lethe-{service}"]["spec"]
        assert selects(pdb["selector"], labels[service])
        assert not any(selects(pdb["selector"], labels[s]) for s in labels if s != service)
        assert pdb.get("maxUnavailable") == 1 or pdb.get("minAvailable", 0) >= 1
    deployments = of_kind(overlay, "Deployment")
    assert deployments["lethe-auditor"]["spec"]["replicas"] >= 2  # one can always go


def test_keda_scales_erasers_on_the_erase_chunk_lag(overlay: list[dict[str, Any]]) -> None:
    (scaled,) = of_kind(overlay, "ScaledObject").values()
    spec = scaled["spec"]
    assert scaled["apiVersion"].startswith("keda.sh/")
    assert spec["scaleTargetRef"]["name"] == "lethe-eraser"
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert meta["topic"] == ERASE_TASKS and meta["consumerGroup"] == ERASE_TASK_GROUP
    assert int(meta["lagThreshold"]) > 0
    eraser_code = "\n".join(p.read_text() for p in (REPO / "services/eraser").rglob("*.py"))
    assert f'"{ERASE_TASK_GROUP}"' in eraser_code, "the erasers' chunk group was renamed"
    partitions = next(t.partitions for t in TOPICS if t.name == ERASE_TASKS)
    assert 2 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= partitions
    # KEDA owns the count: a replicas field in the Deployment would fight it on every apply.
    assert "replicas" not in of_kind(overlay, "Deployment")["lethe-eraser"]["spec"]
