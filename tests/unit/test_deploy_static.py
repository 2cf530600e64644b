"""compose.yaml, the Dockerfile, the Kubernetes manifests and the topic definitions, checked
without a Docker engine or a cluster: they parse, reference files that exist, pin their
images, and pass each service only variables its settings class knows."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from services.auditor.settings import AuditorSettings
from services.eraser.settings import EraserSettings
from services.exporter.settings import ExporterSettings
from services.intake.settings import IntakeSettings
from services.notifier.settings import NotifierSettings
from shared.events.topics import AUDIT, PROGRESS, TOPICS
from shared.metrics import Metrics
from shared.settings import LetheSettings, UnsafeSecrets, env_name

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
        assert refs == {"lethe-config", f"lethe-{service}-secrets"}, name  # its own Secret
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


# --------------------------------------------------------------------------- secrets per service

OVERLAY = K8S / "overlays" / "example"
# What a service uses besides the keys its settings class requires in production.
USES = {
    "intake": {"DATABASE_URL", "PLATFORM_DATABASE_URL", "LETHE_OPENDSR_SIGNING_KEY_FILE"},
    "eraser": {"DATABASE_URL", "PLATFORM_DATABASE_URL"},
    "exporter": {"DATABASE_URL", "PLATFORM_DATABASE_URL"},
    "notifier": {"DATABASE_URL", "LETHE_OPENDSR_SIGNING_KEY_FILE"},
    "auditor": {"DATABASE_URL", "LETHE_AUDIT_SIGNING_KEY"},
    "migrate": {"DATABASE_URL"},
}
SIGNING_KEYS = {"LETHE_AUDIT_SIGNING_KEY", "LETHE_AUDIT_SIGNING_KEY_FILE"}


def _required(service: str) -> set[str]:
    cls = SETTINGS.get(service, LetheSettings)
    return {env_name(cls, name) for name in cls.required_secrets}


def _env_file(path: Path) -> dict[str, str]:
    lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
    return dict(ln.split("=", 1) for ln in lines)


def k8s_secrets() -> dict[str, dict[str, str]]:
    """service -> its Secret's variables, from the example overlay's generators."""
    out = {}
    for gen in _kustomization(OVERLAY)["secretGenerator"]:
        service = gen["name"].removeprefix("lethe-").removesuffix("-secrets")
        values: dict[str, str] = {}
        for env_file in gen["envs"]:
            values |= _env_file(OVERLAY / env_file)
        out[service] = values
    return out


def test_k8s_each_service_gets_only_the_secrets_it_uses() -> None:
    secrets = k8s_secrets()
    assert set(secrets) == set(USES)
    for service, values in secrets.items():
        needed = _required(service) | USES[service]
        assert set(values) <= needed, f"{service} gets {sorted(set(values) - needed)}"
        missing = _required(service) - set(values)
        assert not missing, f"{service} lacks {sorted(missing)}"
    config = next(o for o in _base_objects() if o["kind"] == "ConfigMap")["data"]
    every_secret = set().union(*(set(v) for v in secrets.values()))
    assert not every_secret & set(config), "a secret in the ConfigMap reaches every service"
    assert "LETHE_ENV" not in config and all("LETHE_ENV" not in v for v in secrets.values())


def _user(url: str) -> str | None:
    return urlsplit(url).username


def test_k8s_intake_has_no_signing_key_and_no_platform_write_credentials() -> None:
    secrets = k8s_secrets()
    intake, eraser, exporter = secrets["intake"], secrets["eraser"], secrets["exporter"]
    assert not SIGNING_KEYS & set(intake), "intake verifies with LETHE_AUDIT_PUBLIC_KEYS"
    assert "LETHE_MASK_HMAC_KEY" not in intake
    # Its platform role and S3 keys are its own, not the eraser's (the only platform writer).
    assert _user(intake["PLATFORM_DATABASE_URL"]) not in {
        _user(eraser["PLATFORM_DATABASE_URL"]),
        _user(exporter["PLATFORM_DATABASE_URL"]),
    }
    assert intake["AWS_ACCESS_KEY_ID"] not in {
        eraser["AWS_ACCESS_KEY_ID"],
        exporter["AWS_ACCESS_KEY_ID"],
    }
    # The signing key and the mask key each reach one service.
    assert [s for s, v in secrets.items() if SIGNING_KEYS & set(v)] == ["auditor"]
    assert [s for s, v in secrets.items() if "LETHE_MASK_HMAC_KEY" in v] == ["eraser"]


def test_k8s_example_secrets_are_refused_as_they_are() -> None:
    """The example values are placeholders: copied unchanged, the service does not start."""
    for service, values in k8s_secrets().items():
        cls = SETTINGS.get(service, LetheSettings)
        kwargs = {k: v for k, v in values.items() if not k.endswith("_FILE")}
        with pytest.raises(UnsafeSecrets):
            cls(_env_file=None, env="production", **_by_field(cls, kwargs))


def _by_field(cls: type[LetheSettings], env: dict[str, str]) -> dict[str, Any]:
    names = {env_name(cls, f): f for f in cls.model_fields} | {
        f"LETHE_{f.upper()}": f for f in cls.model_fields
    }
    return {names[k]: v for k, v in env.items()}


def test_compose_gives_each_service_only_what_it_uses(compose: dict[str, Any]) -> None:
    services = compose["services"]
    env = {name: services[name]["environment"] for name in SETTINGS}
    for name, values in env.items():
        assert values["LETHE_ENV"] == "dev", name  # demo credentials: development only
        assert not SIGNING_KEYS & set(values) or name == "auditor", name
    for name in ("notifier", "auditor"):
        assert not {"PLATFORM_DATABASE_URL", "AWS_SECRET_ACCESS_KEY"} & set(env[name]), name
    intake_user = _user(env["intake"]["PLATFORM_DATABASE_URL"])
    assert intake_user != _user(env["eraser"]["PLATFORM_DATABASE_URL"])
    assert intake_user is not None
    assert f"CREATE ROLE {intake_user} " in (REPO / "deploy/compose/initdb.sql").read_text()


def test_local_stack_and_its_env_file_are_development(tmp_path: Path) -> None:
    from deploy.local.parts.endpoints import Endpoints, write_env_file
    from deploy.local.stack import service_env

    ep = Endpoints("127.0.0.1:1", "postgresql://a", "postgresql://b", "http://s3", "h", 1, tmp_path)
    assert service_env(ep, 8080)["LETHE_ENV"] == "dev"
    write_env_file(ep, tmp_path / "env")
    assert "export LETHE_ENV=dev" in (tmp_path / "env").read_text().splitlines()


# --------------------------------------------------------------------------- dashboard


def metric_samples() -> set[str]:
    """Every sample name shared/metrics.py exposes (counters as `_total`, histograms as
    `_bucket`/`_sum`/`_count`)."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count")}
    names = set()
    for family in Metrics("any").registry.collect():
        names.add(family.name)
        names |= {family.name + s for s in suffixes.get(family.type, ())}
    return names


def test_dashboard_queries_use_only_metrics_that_exist() -> None:
    dashboard = json.loads((REPO / "deploy/grafana/dashboards/lethe.json").read_text())
    known = metric_samples()
    titles = {p["title"] for p in dashboard["panels"]}
    for wanted in ("Jobs by state", "Rows erased", "Consumer lag", "Dead letters", "Deadlines"):
        assert any(t.startswith(wanted) for t in titles), wanted
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used = set(re.findall(r"\blethe_\w+", re.sub(r'"[^"]*"', "", target["expr"])))
            assert used, panel["title"]
            assert used <= known, f"{panel['title']}: {sorted(used - known)} do not exist"


def test_compose_provisions_prometheus_and_the_dashboard(compose: dict[str, Any]) -> None:
    services = compose["services"]
    mounts = " ".join(services["grafana"]["volumes"])
    assert "deploy/grafana/dashboards" in mounts and "deploy/grafana/provisioning" in mounts
    prom = yaml.safe_load((REPO / "deploy/compose/prometheus.yml").read_text())
    scraped = json.dumps(prom["scrape_configs"])
    for service in SETTINGS:
        assert service in scraped, f"Prometheus does not scrape {service}"
    datasource = (REPO / "deploy/grafana/provisioning/datasources/prometheus.yaml").read_text()
    assert "http://prometheus:9090" in datasource
