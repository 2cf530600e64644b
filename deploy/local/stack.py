"""The whole local Lethe: infrastructure, schema, topics and the five services.

    python -m deploy.local.stack up|down|status|restart-services [--state-dir DIR]

`up` is idempotent: parts already running are reused. Services run from this virtualenv,
log to `<state_dir>/logs/<service>.log` and read their endpoints from the environment, the
same variables `<state_dir>/env` exports.

The services work on the local sample platform database and its data map unless the caller's
environment names others (`python -m deploy.local.stack up` passes its own environment):
`PLATFORM_DATABASE_URL` (or `LETHE_PLATFORM_DATABASE_URL`) and `LETHE_DATAMAP_PATH`. `up`
restarts running services whose database or map changed; `status` shows which are in use.
`<state_dir>/env` keeps describing the local infrastructure (its platform database is the
sample), so tests and the demo never write into the caller's database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from deploy.local import infra
from deploy.local.parts.common import free_port
from deploy.local.sample.seed import apply_schema
from shared.db import migrate
from shared.kafka import ensure_topics
from shared.startup import redact_dsn

SERVICES = ("auditor", "notifier", "eraser", "exporter", "intake")
REPO_ROOT = infra.REPO_ROOT
SAMPLE_DATAMAP = REPO_ROOT / "deploy/local/sample/datamap.yaml"


def dev_signing_key(state_dir: Path) -> Path:
    """The OpenDSR processor's RSA key for local use (production mounts a real one)."""
    from shared.opendsr import new_signing_key_pem

    path = state_dir / "opendsr-signing-key.pem"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_bytes(new_signing_key_pem())
    return path


def platform_target(
    ep: infra.Endpoints, environ: Mapping[str, str] | None = None
) -> tuple[str, Path]:
    """The platform database URL and data map the services use: the caller's (`environ`:
    the `LETHE_` name first, as the services read it), else the local sample database and
    map. Unset or empty means the sample."""
    env = environ or {}
    url = (
        env.get("LETHE_PLATFORM_DATABASE_URL")
        or env.get("PLATFORM_DATABASE_URL")
        or ep.platform_database_url
    )
    path = env.get("LETHE_DATAMAP_PATH") or str(SAMPLE_DATAMAP)
    return url, Path(path).expanduser().resolve()  # relative to the caller's directory


def service_env(
    ep: infra.Endpoints,
    intake_port: int,
    state_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    local = {}
    if state_dir is not None:
        local = {
            "LETHE_OPENDSR_SIGNING_KEY_FILE": str(dev_signing_key(state_dir)),
            # Local callbacks go to http://127.0.0.1 receivers: allowed here only.
            "LETHE_OPENDSR_ALLOW_INSECURE_CALLBACKS": "true",
            "LETHE_CALLBACK_ALLOWED_NETWORKS": '["127.0.0.0/8", "::1/128"]',
            "LETHE_OPENDSR_PROCESSOR_DOMAIN": "127.0.0.1",
            # A window that ends is purged within seconds (the demo ends one early).
            "LETHE_ERASE_PURGE_INTERVAL_SECONDS": (environ or {}).get(
                "LETHE_ERASE_PURGE_INTERVAL_SECONDS", "2"
            ),
        }
    platform_url, datamap = platform_target(ep, environ)
    return local | {
        # A development stack: the public development secrets are accepted.
        "LETHE_ENV": "dev",
        "KAFKA_BOOTSTRAP_SERVERS": ep.kafka_bootstrap_servers,
        "DATABASE_URL": ep.database_url,
        # Both names: the prefixed one wins in the services, so one left in the
        # environment could not shadow the choice made here.
        "PLATFORM_DATABASE_URL": platform_url,
        "LETHE_PLATFORM_DATABASE_URL": platform_url,
        "S3_ENDPOINT_URL": ep.s3_endpoint_url,
        "SMTP_HOST": ep.smtp_host,
        "SMTP_PORT": str(ep.smtp_port),
        "LETHE_HTTP_HOST": "127.0.0.1",
        "LETHE_HTTP_PORT": str(intake_port),
        "LETHE_PUBLIC_API_URL": f"http://127.0.0.1:{intake_port}",
        "LETHE_DATAMAP_PATH": str(datamap),
        "PYTHONUNBUFFERED": "1",
    }


# --------------------------------------------------------------------------- what is in use


def _target_file(state_dir: Path) -> Path:
    return state_dir / "platform.json"


def _target(ep: infra.Endpoints, env: Mapping[str, str]) -> dict[str, object]:
    """What the services are started with (the password only as a digest)."""
    url = env["PLATFORM_DATABASE_URL"]
    return {
        "platform_database": redact_dsn(url),
        "platform_database_sha256": hashlib.sha256(url.encode()).hexdigest(),
        "datamap": env["LETHE_DATAMAP_PATH"],
        "sample": url == ep.platform_database_url
        and env["LETHE_DATAMAP_PATH"] == str(SAMPLE_DATAMAP),
    }


def record_target(state_dir: Path, ep: infra.Endpoints, env: Mapping[str, str]) -> None:
    """Note what the services are started with, for `status` (and `up`'s next comparison)."""
    text = json.dumps(_target(ep, env), indent=2) + "\n"
    infra._write_atomic(_target_file(state_dir), text)


def recorded_target(state_dir: Path) -> dict[str, object] | None:
    """The platform database and data map the running services were started with."""
    try:
        data = json.loads(_target_file(state_dir).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


async def prepare(ep: infra.Endpoints) -> None:
    """Lethe's migrations, the sample platform schema, and the topics."""
    await migrate(ep.database_url)
    await apply_schema(ep.platform_database_url)
    await ensure_topics(ep.kafka_bootstrap_servers)


def _free_port() -> int:
    return free_port()


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


def start_services(
    ep: infra.Endpoints, state_dir: Path, environ: Mapping[str, str] | None = None
) -> str:
    """Start the services not already running; returns intake's base URL. Services running
    on another platform database or data map than `environ` asks for are restarted."""
    port = _intake_port(state_dir)
    env = service_env(ep, port, state_dir, environ)
    target = _target(ep, env)
    running = [n for n in SERVICES if infra.process_alive(n, state_dir)]
    if running and recorded_target(state_dir) != target:
        print(
            f"restarting the services: platform database {target['platform_database']}, "
            f"data map {target['datamap']}",
            file=sys.stderr,
        )
        stop_services(state_dir)
    record_target(state_dir, ep, env)
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
    _wait_started(f"{url}/healthz", state_dir)
    return url


def _wait_started(url: str, state_dir: Path, timeout: float = 60) -> None:
    """Until intake answers. Services that exit meanwhile (a data map that does not fit the
    database, a missing bucket) fail it at once, each with its reason."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(not infra.process_alive(n, state_dir) for n in SERVICES):
            time.sleep(3)  # the others that share the mistake stop too: name them all
            dead = [n for n in SERVICES if not infra.process_alive(n, state_dir)]
            raise infra.InfraError("\n".join(_exit_reason(n, state_dir) for n in dead))
        with contextlib.suppress(urllib.error.URLError, OSError):
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        time.sleep(0.3)
    wait_http(url, timeout=0, log=state_dir / "logs" / "intake.log")  # fails, with intake's log


def _exit_reason(name: str, state_dir: Path) -> str:
    """`<name> exited at start: <its refusal>`, else the end of its last run's log."""
    log = state_dir / "logs" / f"{name}.log"
    last_run = infra._tail(log, 200).rsplit("\n=== ", 1)[-1].splitlines()
    refusals = [ln.split("cannot start: ", 1)[1] for ln in last_run if "cannot start: " in ln]
    if refusals:
        return f"{name} exited at start: {refusals[-1]}"
    return f"{name} exited at start ({log}):\n" + "\n".join(last_run[-8:])


def up(state_dir: Path, environ: Mapping[str, str] | None = None) -> tuple[infra.Endpoints, str]:
    """Infrastructure, schema, topics and services (on `environ`'s platform database and
    data map, else the sample)."""
    state_dir = state_dir.resolve()
    ep = infra.up(state_dir, REPO_ROOT)
    asyncio.run(prepare(ep))
    url = start_services(ep, state_dir, environ)
    infra.write_env_file(ep, state_dir / "env", {"LETHE_API_URL": url})
    return ep, url


def stop_services(state_dir: Path) -> None:
    for name in reversed(SERVICES):
        infra.stop_process(name, state_dir)


def print_target(state_dir: Path) -> None:
    target = recorded_target(state_dir)
    if target is None:
        print("platform database and data map: none yet (the services were never started)")
        return
    what = " (the local sample)" if target.get("sample") else ""
    print(f"platform database: {target['platform_database']}{what}")
    print(f"data map:          {target['datamap']}{what}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m deploy.local.stack", description=__doc__)
    ap.add_argument("command", choices=["up", "down", "status", "restart-services"])
    ap.add_argument("--state-dir", type=Path, default=infra.DEFAULT_STATE_DIR)
    args = ap.parse_args(argv)
    state_dir: Path = args.state_dir.resolve()
    try:
        if args.command == "up":
            ep, url = up(state_dir, os.environ)
            print(
                f"Lethe is up: API {url}; Kafka {ep.kafka_bootstrap_servers}; "
                f"Postgres {ep.database_url}; S3 {ep.s3_endpoint_url}; "
                f"SMTP {ep.smtp_host}:{ep.smtp_port} (mail in {ep.mail_dir})"
            )
            print(f"Environment: source {state_dir / 'env'}; logs in {state_dir / 'logs'}")
            print_target(state_dir)
        elif args.command == "restart-services":
            stop_services(state_dir)
            up(state_dir, os.environ)
            print_target(state_dir)
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
            print_target(state_dir)
    except infra.InfraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
