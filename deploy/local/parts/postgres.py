"""PostgreSQL: server binaries (apt-get when root and missing), initdb as `postgres`, start."""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

from deploy.local.parts.common import HOST, InfraError, run_logged
from deploy.local.parts.processes import start_process, stop, wait_ready

DATABASES = ("lethe", "platform")


def _pg_bindir_candidates() -> list[Path]:
    found: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            found.append(Path(out.stdout.strip()))

    def version(p: Path) -> float:
        try:
            return float(p.parent.name)
        except ValueError:
            return 0.0

    found += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    for prog in ("initdb", "postgres"):
        where = shutil.which(prog)
        if where:
            found.append(Path(where).resolve().parent)
    return found


def find_pg_bindir() -> Path | None:
    for cand in _pg_bindir_candidates():
        if all((cand / p).is_file() for p in ("initdb", "postgres", "pg_isready", "psql")):
            return cand
    return None


def ensure_pg_bindir() -> Path:
    bindir = find_pg_bindir()
    if bindir is not None:
        return bindir
    apt = shutil.which("apt-get")
    if os.geteuid() == 0 and apt:
        print("PostgreSQL server binaries not found; installing with apt-get ...", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for argv in ([apt, "update"], [apt, "install", "-y", "postgresql"]):
            if subprocess.run(argv, env=env, check=False).returncode != 0:
                raise InfraError(f"failed: {shlex.join(argv)}")
        bindir = find_pg_bindir()
        if bindir is not None:
            return bindir
    raise InfraError(
        "PostgreSQL server binaries (initdb, postgres, pg_isready, psql) not found in "
        "`pg_config --bindir`, /usr/lib/postgresql/*/bin or PATH: "
        "apt-get install postgresql (as root)"
    )


def _pg_user() -> str | None:
    """Account to run initdb/postgres as: `postgres` when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise InfraError(
            "running as root but there is no `postgres` user to run "
            "PostgreSQL as (useradd --system postgres)"
        ) from exc
    return "postgres"


def _make_reachable(path: Path) -> None:
    # The postgres account must traverse every ancestor of its data dir.
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(parent, mode | stat.S_IXOTH)
            print(f"note: chmod o+x {parent} so postgres can reach its data dir", file=sys.stderr)


_PG_HBA = """\
# DEV ONLY: trust every connection on the private socket and loopback.
# Never copy this to a shared or production server.
local   all          all                 trust
host    all          all  127.0.0.1/32   trust
local   replication  all                 trust
host    replication  all  127.0.0.1/32   trust
"""


def _init_cluster(bindir: Path, root: Path, log: Path, user: str | None) -> None:
    """initdb into root/data (afresh if half-made), listening on HOST and root/sock only."""
    data, sock = root / "data", root / "sock"
    shutil.rmtree(data, ignore_errors=True)
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8"]
    run_logged([*initdb, "--no-locale", "--auth=trust"], log, user=user, cwd=root)
    with open(data / "postgresql.conf", "a") as fh:
        fh.write(
            "\n# --- Lethe local dev (deploy/local/infra.py); port is given on the "
            "command line ---\n"
            f"listen_addresses = '{HOST}'\n"
            f"unix_socket_directories = '{sock}'\n"
            "max_connections = 200\n"
            "fsync = on\n"
        )
    (data / "pg_hba.conf").write_text(_PG_HBA)


def start_postgres(state_dir: Path, port: int) -> None:
    bindir = ensure_pg_bindir()
    user = _pg_user()
    root = state_dir / "pg"
    data, sock = root / "data", root / "sock"
    log = state_dir / "logs" / "postgres.log"
    sock.mkdir(parents=True, exist_ok=True)
    if user is not None:
        pw = pwd.getpwnam(user)
        _make_reachable(root.parent)
        for d in (root, sock):
            os.chown(d, pw.pw_uid, pw.pw_gid)
    if not (data / "PG_VERSION").is_file():
        _init_cluster(bindir, root, log, user)
    start_process(
        "postgres",
        [str(bindir / "postgres"), "-D", str(data), "-p", str(port)],
        {},
        state_dir,
        user=user,
        cwd=root,
    )
    isready = [str(bindir / "pg_isready"), "-q", "-h", HOST, "-p", str(port), "-U", "postgres"]

    def ready() -> bool:
        return subprocess.run(isready, check=False).returncode == 0

    wait_ready("postgres", state_dir, ready, 60, f"pg_isready on {HOST}:{port}")


def ensure_databases(port: int) -> None:
    bindir = ensure_pg_bindir()
    conn = ["-h", HOST, "-p", str(port), "-U", "postgres"]
    out = subprocess.run(
        [str(bindir / "psql"), *conn, "-d", "postgres", "-XtAc", "SELECT datname FROM pg_database"],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise InfraError(f"psql failed listing databases: {out.stderr.strip()}")
    existing = set(out.stdout.split())
    for db in DATABASES:
        if db in existing:
            continue
        res = subprocess.run(
            [str(bindir / "createdb"), *conn, db], capture_output=True, text=True, check=False
        )
        if res.returncode != 0:
            raise InfraError(f"createdb {db} failed: {res.stderr.strip()}")


def stop_postgres(state_dir: Path, timeout: float = 30) -> None:
    # SIGINT to the postmaster alone is "fast shutdown"; SIGTERM would wait for clients.
    stop("postgres", state_dir, timeout, signal.SIGINT, group=False)
