"""compose.yaml, the Dockerfile, the Kubernetes manifests and the topic definitions, checked
without a Docker engine or a cluster: they parse, reference files that exist, pin their
images, and pass each service only variables its settings class knows."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.auditor.settings import AuditorSettings
from services.eraser.settings import EraserSettings
from services.exporter.settings import ExporterSettings
from services.intake.settings import IntakeSettings
from services.notifier.settings import NotifierSettings
from shared.events.topics import AUDIT, PROGRESS, TOPICS
from shared.settings import LetheSettings

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
SETTINGS: dict[str, type[LetheSettings]] = {
    "intake": IntakeSettings,
    "eraser": EraserSettings,
    "exporter": ExporterSettings,
    "notifier": NotifierSettings,
    "auditor": AuditorSettings,
}
# Read by the OpenTelemetry SDK (LETHE_OTEL_EXPORTER=otlp), not by a settings class.
OTHER_KNOWN = {"OTEL_EXPORTER_OTLP_ENDPOINT", "PYTHONUNBUFFERED"}


def env_names(cls: type[LetheSettings]) -> set[str]:
    names: set[str] = set()
    for name, field in cls.model_fields.items():
        alias = field.validation_alias
        if alias is not None and hasattr(alias, "choices"):
            names |= {str(c) for c in alias.choices}
        else:
            names.add(f"LETHE_{name.upper()}")
    return names


def all_env_names() -> set[str]:
    return set().union(*(env_names(c) for c in SETTINGS.values())) | OTHER_KNOWN


def pinned(image: str) -> bool:
    name, _, tag = image.rpartition(":")
    return bool(name) and tag not in ("", "latest") and "/" not in tag


# --------------------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((REPO / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def _service_of(spec: dict[str, Any]) -> str | None:
    command = " ".join(spec.get("command") or [])
    m = re.search(r"-m services\.(\w+)", command)
    return m.group(1) if m else ("cli" if "lethe " in command else None)


def test_compose_has_every_part(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    for part in ("postgres", "minio", "mailpit", "otel-collector", "jaeger", "migrate"):
        assert part in services, part
    running = {_service_of(s) for s in services.values()}
    assert set(SETTINGS) <= running
    assert services["eraser"]["deploy"]["replicas"] == 2
    assert "lethe db migrate" in " ".join(services["migrate"]["command"])
    assert "lethe topics apply" in " ".join(services["migrate"]["command"])


def test_compose_images_are_pinned_and_paths_exist(compose: dict[str, Any]) -> None:
    for name, spec in compose["services"].items():
        if "build" in spec:
            context = REPO / spec["build"]["context"]
            assert context.is_dir(), name
            assert (context / spec["build"]["dockerfile"]).is_file(), name
        else:
            assert pinned(spec["image"]), f"{name}: image {spec['image']} is not pinned"
        for volume in spec.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name}: {source} does not exist"


def test_compose_passes_only_known_variables(compose: dict[str, Any]) -> None:
    for name, spec in compose["services"].items():
        service = _service_of(spec)
        if service is None or "demo" in spec.get("profiles", []):
            continue
        cls = SETTINGS.get(service, LetheSettings)  # the CLI reads the base settings
        known = env_names(cls) | OTHER_KNOWN
        unknown = set(spec.get("environment", {})) - known
        assert not unknown, f"{name}: {sorted(unknown)} are unknown to {cls.__name__}"


def test_dockerfile_is_slim_pinned_and_unprivileged() -> None:
    text = (REPO / "deploy" / "Dockerfile").read_text()
    base = re.search(r"^FROM\s+(\S+)", text, re.M)
    assert base is not None and pinned(base.group(1)) and "slim" in base.group(1)
    user = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert user and user[-1] not in ("root", "0")
    for src in re.findall(r"^COPY\s+(\S+)", text, re.M):
        assert (REPO / src).exists(), src
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".local" in ignored and ".venv" in ignored


# --------------------------------------------------------------------------- kubernetes


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _kustomization(directory: Path) -> dict[str, Any]:
    data = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert isinstance(data, dict)
    return data


def _base_objects() -> list[dict[str, Any]]:
    base = K8S / "base"
    objs: list[dict[str, Any]] = []
    for res in _kustomization(base)["resources"]:
        assert (base / res).is_file(), res
        objs += _docs(base / res)
    return objs


def test_k8s_deployments_have_replicas_requests_and_probes() -> None:
    objs = _base_objects()
    config = next(o for o in objs if o["kind"] == "ConfigMap")["data"]
    grace = float(config["LETHE_SHUTDOWN_GRACE_SECONDS"])
    deployments = {o["metadata"]["name"]: o for o in objs if o["kind"] == "Deployment"}
    assert set(deployments) == {f"lethe-{s}" for s in SETTINGS}
    for name, dep in deployments.items():
        service = name.removeprefix("lethe-")
        spec = dep["spec"]
        assert spec["replicas"] >= 2, name
        pod = spec["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] > grace, name
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        assert container["command"] == ["python", "-m", f"services.{service}"]
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        probes = {k: container[k]["httpGet"] for k in ("livenessProbe", "readinessProbe")}
        assert probes["livenessProbe"]["path"] == "/healthz"
        assert probes["readinessProbe"]["path"] == "/readyz"
        for probe in probes.values():
            assert probe["port"] in ports, name
        port = ports[probes["readinessProbe"]["port"]]
        if service == "intake":
            env = {e["name"]: e["value"] for e in container["env"]}
            assert port == int(env["LETHE_HTTP_PORT"])
            assert set(env) <= env_names(IntakeSettings)
        else:
            assert port == int(config["LETHE_OPS_PORT"]), name
        refs = {next(iter(r.values()))["name"] for r in container["envFrom"]}
        assert refs == {"lethe-config", "lethe-secrets"}
    assert set(config) <= all_env_names(), set(config) - all_env_names()


def test_k8s_migration_job_migrates_and_applies_topics() -> None:
    (job,) = [o for o in _base_objects() if o["kind"] == "Job"]
    command = " ".join(job["spec"]["template"]["spec"]["containers"][0]["command"])
    assert "lethe db migrate" in command and "lethe topics apply" in command


def test_k8s_overlay_references_what_exists() -> None:
    overlay = K8S / "overlays" / "example"
    kust = _kustomization(overlay)
    for res in kust["resources"]:
        assert (overlay / res).exists(), res
    names = {o["metadata"]["name"] for o in _base_objects()}
    for patch in kust.get("patches", []):
        assert patch["target"]["name"] in names
    for gen in kust.get("configMapGenerator", []):
        assert gen["name"] in names and gen["behavior"] == "merge"
        keys = {lit.split("=", 1)[0] for lit in gen.get("literals", [])}
        assert keys <= all_env_names(), keys - all_env_names()
    for gen in kust.get("secretGenerator", []):
        for env_file in gen["envs"]:
            lines = (overlay / env_file).read_text().splitlines()
            keys = {ln.split("=", 1)[0] for ln in lines if ln and not ln.startswith("#")}
            assert keys <= all_env_names(), keys - all_env_names()


# --------------------------------------------------------------------------- topics and ACLs


def test_every_topic_says_how_it_is_cleaned_up() -> None:
    specs = {t.name: t for t in TOPICS}
    for spec in TOPICS:
        policy = spec.config["cleanup.policy"]
        assert policy in ("delete", "compact"), spec.name
        if policy == "delete":
            assert int(spec.config["retention.ms"]) >= 7 * 24 * 3600 * 1000, spec.name
    assert specs[PROGRESS].config["cleanup.policy"] == "compact"
    assert specs[AUDIT].config["cleanup.policy"] == "delete" and specs[AUDIT].partitions == 1


def test_acl_document_names_every_topic_and_group() -> None:
    doc = (REPO / "docs" / "kafka-acls.md").read_text()
    groups = set()
    for path in (REPO / "services").rglob("*.py"):
        groups |= set(
            a or b
            for a, b in re.findall(
                r'(?:GROUP|group_id)(?::\s*str)?\s*=\s*"([^"]+)"|\.group\("([^"]+)"\)',
                path.read_text(),
            )
        )
    assert {"lethe-eraser", "lethe-auditor", "lethe-intake", "lethe-exporter"} <= groups
    for name in sorted(groups | {t.name for t in TOPICS}):
        assert f"`{name}`" in doc, f"docs/kafka-acls.md does not mention {name}"
