"""Local development infrastructure without Docker: Kafka, Postgres, S3 (moto), SMTP sink.

    python -m deploy.local.infra up|down|status [--state-dir DIR] [--env-file PATH]

Everything listens on 127.0.0.1 on free ports and lives under one state directory
(default ``<repo>/.local``): ``logs/<name>.log``, ``run/<name>.pid``, ``ports.json``,
``env`` (sourceable), ``kafka/``, ``pg/``, ``mail/``. Tests use their own state directory,
so a test run never disturbs the demo. Kafka jars are shared by all state directories
under ``<repo>/.local/kafka/libs``.

Standard library only: this runs before (and without) the project's virtualenv, except
where it launches programs from that virtualenv (moto_server, the SMTP sink).

This module is the public face (up, down, status, Endpoints, the CLI); each part lives in
``deploy/local/parts/``: ``processes`` (pid files, logs, start/stop/wait), ``kafka``,
``postgres``, ``s3_smtp`` and ``endpoints`` (ports.json, the env file), on ``common``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from deploy.local.parts.common import (
    HOST,
    InfraError,
    locked,
    port_open,
    tail,
    venv_bin,
    write_atomic,
)
from deploy.local.parts.endpoints import (
    Endpoints,
    assign_ports,
    endpoints_for,
    load_ports,
    save_ports,
    write_env_file,
)
from deploy.local.parts.kafka import (
    INSTALL_HINT,
    KAFKA_START_TIMEOUT,
    api_versions_ok,
    ensure_kafka_libs,
    kafka_version,
    start_kafka,
)
from deploy.local.parts.postgres import (
    DATABASES,
    ensure_databases,
    find_pg_bindir,
    start_postgres,
    stop_postgres,
)
from deploy.local.parts.processes import (
    CHILDREN,
    pid_alive,
    process_alive,
    read_pid,
    recorded_names,
    start_process,
    stop_process,
    wait_exit,
)
from deploy.local.parts.s3_smtp import http_ok, smtp_ready, start_s3, start_smtp

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_STATE_DIR = REPO_ROOT / ".local"
# Start order; down() goes the other way.
PARTS = ("postgres", "kafka", "s3", "smtp")

# Names callers used before the split into deploy/local/parts (stack.py, tests), kept so
# no caller changes.
_CHILDREN = CHILDREN
_tail = tail
_write_atomic = write_atomic
_ensure_databases = ensure_databases
_stop_postgres = stop_postgres
_start_postgres = start_postgres

__all__ = [
    "DATABASES",
    "DEFAULT_STATE_DIR",
    "HOST",
    "INSTALL_HINT",
    "KAFKA_START_TIMEOUT",
    "PARTS",
    "REPO_ROOT",
    "_CHILDREN",
    "Endpoints",
    "InfraError",
    "_ensure_databases",
    "_start_postgres",
    "_stop_postgres",
    "_tail",
    "_write_atomic",
    "down",
    "ensure_kafka_libs",
    "find_pg_bindir",
    "kafka_version",
    "main",
    "process_alive",
    "start_process",
    "status",
    "stop_process",
    "up",
    "venv_bin",
    "wait_exit",
    "write_env_file",
]


# --------------------------------------------------------------------------- up/down


def _part_ready(part: str, ports: dict[str, int]) -> bool:
    port = ports.get(part)
    if port is None:
        return False
    if part == "kafka":
        return api_versions_ok(port)
    if part == "s3":
        return http_ok(f"http://{HOST}:{port}/")
    if part == "smtp":
        return smtp_ready(port)
    return port_open(port)


def _start_part(part: str, state_dir: Path, repo_root: Path, ports: dict[str, int]) -> None:
    if part == "postgres":
        start_postgres(state_dir, ports["postgres"])
    elif part == "kafka":
        start_kafka(state_dir, repo_root, ports["kafka"], ports["kafka_controller"])
    elif part == "s3":
        start_s3(state_dir, repo_root, ports["s3"])
    else:
        start_smtp(state_dir, repo_root, ports["smtp"])


def _stop_part(part: str, state_dir: Path) -> None:
    if part == "postgres":
        stop_postgres(state_dir)
    else:
        stop_process(part, state_dir, timeout=30 if part == "kafka" else 15)


def _up(state_dir: Path, repo_root: Path) -> tuple[Endpoints, dict[str, str]]:
    """up() plus, per part, how it went ("reused" or the startup time)."""
    state_dir = Path(state_dir).resolve()
    repo_root = Path(repo_root).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    outcome: dict[str, str] = {}
    with locked(state_dir / "infra.lock"):
        ports = load_ports(state_dir)
        for part in PARTS:
            if process_alive(part, state_dir) and _part_ready(part, ports):
                outcome[part] = "reused"
                continue
            # Dead, hung or half-started: clear it before starting afresh.
            _stop_part(part, state_dir)
            assign_ports(part, ports)
            save_ports(state_dir, ports)
            t0 = time.monotonic()
            _start_part(part, state_dir, repo_root, ports)
            outcome[part] = f"started in {time.monotonic() - t0:.1f}s"
        ensure_databases(ports["postgres"])
        ep = endpoints_for(state_dir, ports)
        write_env_file(ep, state_dir / "env")
    return ep, outcome


def up(state_dir: Path, repo_root: Path) -> Endpoints:
    """Start Kafka, Postgres, S3 and SMTP (reusing live ones recorded in state_dir)."""
    return _up(state_dir, repo_root)[0]


def down(state_dir: Path) -> None:
    """Stop everything started from state_dir (other recorded processes first). Idempotent."""
    state_dir = Path(state_dir).resolve()
    if not state_dir.is_dir():
        return
    with locked(state_dir / "infra.lock"):
        for name in recorded_names(state_dir):
            if name not in PARTS:
                stop_process(name, state_dir)
        for part in reversed(PARTS):
            _stop_part(part, state_dir)


def status(state_dir: Path) -> dict[str, dict[str, Any]]:
    """Per part (and per other recorded process): running, pid, port, url, log."""
    state_dir = Path(state_dir).resolve()
    ports = load_ports(state_dir)
    urls = {
        "kafka": f"{HOST}:{ports.get('kafka')}",
        "postgres": f"postgresql://postgres@{HOST}:{ports.get('postgres')}/lethe",
        "s3": f"http://{HOST}:{ports.get('s3')}",
        "smtp": f"smtp://{HOST}:{ports.get('smtp')}",
    }
    result: dict[str, dict[str, Any]] = {}
    for name in [*PARTS, *(n for n in recorded_names(state_dir) if n not in PARTS)]:
        rec = read_pid(name, state_dir)
        alive = rec is not None and pid_alive(*rec)
        info: dict[str, Any] = {
            "running": alive,
            "pid": rec[0] if rec else None,
            "log": str(state_dir / "logs" / f"{name}.log"),
        }
        if name in PARTS:
            info["running"] = alive and _part_ready(name, ports)
            info["port"] = ports.get(name)
            info["url"] = urls[name] if name in ports else None
        result[name] = info
    return result


# --------------------------------------------------------------------------- CLI


def _print_table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _print_up(state_dir: Path, ep: Endpoints, outcome: dict[str, str], env_file: Path) -> None:
    st = status(state_dir)
    libs = REPO_ROOT / ".local" / "kafka" / "libs"
    where = {
        "kafka": f"{ep.kafka_bootstrap_servers} (Apache Kafka {kafka_version(libs)})",
        "postgres": f"{ep.database_url} , .../platform",
        "s3": ep.s3_endpoint_url,
        "smtp": f"{ep.smtp_host}:{ep.smtp_port} -> {ep.mail_dir}",
    }
    rows = [["part", "pid", "address", "state"]]
    rows += [[p, str(st[p]["pid"]), where[p], outcome[p]] for p in PARTS]
    _print_table(rows)
    print(f"env: . {env_file}   logs: {state_dir / 'logs'}")


def _print_status(state_dir: Path) -> int:
    st = status(state_dir)
    rows = [["name", "running", "pid", "address"]]
    rows += [
        [n, "yes" if i["running"] else "no", str(i["pid"] or "-"), str(i.get("url") or "-")]
        for n, i in st.items()
    ]
    _print_table(rows)
    return 0 if all(st[p]["running"] for p in PARTS) else 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.local.infra", description="Local Kafka/Postgres/S3/SMTP for Lethe"
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument(
        "--env-file",
        type=Path,
        default=None,
        help="also write the env file here (up); default <state-dir>/env",
    )
    args = parser.parse_args(argv)
    state_dir: Path = args.state_dir.resolve()
    try:
        if args.command == "up":
            ep, outcome = _up(state_dir, REPO_ROOT)
            if args.env_file is not None:
                write_env_file(ep, args.env_file)
            _print_up(state_dir, ep, outcome, args.env_file or state_dir / "env")
        elif args.command == "down":
            down(state_dir)
            print(f"stopped everything under {state_dir}")
        else:
            return _print_status(state_dir)
    except InfraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
