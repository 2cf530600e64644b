"""The whole local Lethe: infrastructure, schema, topics and the five services.

    python -m deploy.local.stack up|down|status [--state-dir DIR]

`up` is idempotent: parts already running are reused. Services run from this virtualenv,
log to `<state_dir>/logs/<service>.log` and read their endpoints from the environment, the
same variables `<state_dir>/env` exports.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from deploy.local import infra
from deploy.local.sample.seed import apply_schema
from shared.db import migrate
from shared.kafka import ensure_topics

SERVICES = ("auditor", "notifier", "eraser", "exporter", "intake")
REPO_ROOT = infra.REPO_ROOT


def dev_signing_key(state_dir: Path) -> Path:
    """The OpenDSR processor's RSA key for local use (production mounts a real one)."""
    from services.intake.opendsr import new_signing_key_pem

    path = state_dir / "opendsr-signing-key.pem"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_bytes(new_signing_key_pem())
    return path


def service_env(
    ep: infra.Endpoints, intake_port: int, state_dir: Path | None = None
) -> dict[str, str]:
    local = {}
    if state_dir is not None:
        local = {
            "LETHE_OPENDSR_SIGNING_KEY_FILE": str(dev_signing_key(state_dir)),
            # Local callbacks go to http://127.0.0.1 receivers: allowed here only.
            "LETHE_OPENDSR_ALLOW_INSECURE_CALLBACKS": "true",
            "LETHE_OPENDSR_PROCESSOR_DOMAIN": "127.0.0.1",
        }
    return local | {
        "KAFKA_BOOTSTRAP_SERVERS": ep.kafka_bootstrap_servers,
        "DATABASE_URL": ep.database_url,
        "PLATFORM_DATABASE_URL": ep.platform_database_url,
        "S3_ENDPOINT_URL": ep.s3_endpoint_url,
        "SMTP_HOST": ep.smtp_host,
        "SMTP_PORT": str(ep.smtp_port),
        "LETHE_HTTP_HOST": "127.0.0.1",
        "LETHE_HTTP_PORT": str(intake_port),
        "LETHE_PUBLIC_API_URL": f"http://127.0.0.1:{intake_port}",
        "LETHE_DATAMAP_PATH": str(REPO_ROOT / "deploy/local/sample/datamap.yaml"),
        "PYTHONUNBUFFERED": "1",
    }


async def prepare(ep: infra.Endpoints) -> None:
    """Lethe's migrations, the sample platform schema, and the topics."""
    await migrate(ep.database_url)
    await apply_schema(ep.platform_database_url)
    await ensure_topics(ep.kafka_bootstrap_servers)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _service_port(state_dir: Path, name: str, suffix: str) -> int:
    f = state_dir / f"{name}.{suffix}"
    if f.exists() and infra.process_alive(name, state_dir):
        return int(f.read_text())
    port = _free_port()
    f.write_text(f"{port}\n")
    return port


def _intake_port(state_dir: Path) -> int:
    return _service_port(state_dir, "intake", "port")


def _ops_port(state_dir: Path, name: str) -> int | None:
    """Where a service serves /healthz /readyz /metrics (intake: its HTTP port)."""
    f = state_dir / (f"{name}.port" if name == "intake" else f"{name}.ops-port")
    return int(f.read_text()) if f.exists() else None


def wait_http(url: str, timeout: float = 60, name: str = "intake", log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise infra.InfraError(f"{name} did not answer {url} within {timeout:.0f}s\n{tail}")


def start_services(ep: infra.Endpoints, state_dir: Path) -> str:
    """Start the services not already running; returns intake's base URL."""
    port = _intake_port(state_dir)
    env = service_env(ep, port, state_dir)
    for name in SERVICES:
        if not infra.process_alive(name, state_dir):
            ops = {}
            if name != "intake":  # intake serves /readyz and /metrics on its HTTP port
                ops = {"LETHE_OPS_PORT": str(_service_port(state_dir, name, "ops-port"))}
            infra.start_process(
                name,
                [sys.executable, "-m", f"services.{name}"],
                env | ops,
                state_dir,
                cwd=REPO_ROOT,
            )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz", log=state_dir / "logs" / "intake.log")
    return url


def up(state_dir: Path) -> tuple[infra.Endpoints, str]:
    state_dir = state_dir.resolve()
    ep = infra.up(state_dir, REPO_ROOT)
    asyncio.run(prepare(ep))
    url = start_services(ep, state_dir)
    infra.write_env_file(ep, state_dir / "env", {"LETHE_API_URL": url})
    return ep, url


def stop_services(state_dir: Path) -> None:
    for name in reversed(SERVICES):
        infra.stop_process(name, state_dir)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m deploy.local.stack", description=__doc__)
    ap.add_argument("command", choices=["up", "down", "status", "restart-services"])
    ap.add_argument("--state-dir", type=Path, default=infra.DEFAULT_STATE_DIR)
    args = ap.parse_args(argv)
    state_dir: Path = args.state_dir.resolve()
    try:
        if args.command == "up":
            ep, url = up(state_dir)
            print(
                f"Lethe is up: API {url}; Kafka {ep.kafka_bootstrap_servers}; "
                f"Postgres {ep.database_url}; S3 {ep.s3_endpoint_url}; "
                f"SMTP {ep.smtp_host}:{ep.smtp_port} (mail in {ep.mail_dir})"
            )
            print(f"Environment: source {state_dir / 'env'}; logs in {state_dir / 'logs'}")
        elif args.command == "restart-services":
            stop_services(state_dir)
            up(state_dir)
        elif args.command == "down":
            stop_services(state_dir)
            infra.down(state_dir)
            print("Lethe is down.")
        else:
            for name, st in infra.status(state_dir).items():
                ops = _ops_port(state_dir, name) if name in SERVICES else None
                where = f"http://127.0.0.1:{ops}/readyz" if ops else ""
                print(
                    f"{name:10} {'running' if st.get('running') else 'stopped':8} "
                    f"{st.get('url') or st.get('port') or where}"
                )
    except infra.InfraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
