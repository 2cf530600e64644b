"""Helpers every part uses: atomic files, log tails, a state-dir lock, setup commands, ports."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import random
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"


class InfraError(RuntimeError):
    """A part could not be started or a prerequisite is missing."""


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def tail(path: Path, lines: int = 30) -> str:
    try:
        data = path.read_bytes()[-16384:]
    except OSError:
        return "(no log)"
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


@contextlib.contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    # Serialises concurrent up/down on one state dir (e.g. parallel test sessions).
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def port_open(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # Servers here set SO_REUSEADDR too, so TIME_WAIT leftovers do not count as busy.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


# Under pytest-xdist each worker takes ports from a block of its own below the kernel's
# ephemeral range (32768 and up): a port picked with bind(0) and let go can meanwhile be
# picked by another worker, or become an outgoing connection's source port, before the
# server that was meant to listen on it starts.
_WORKER_BLOCK = 2_000
_WORKER_BASE = 10_000
_cursor: dict[str, int] = {}


def free_port(exclude: set[int] | None = None) -> int:
    """A port nobody listens on (and not in `exclude`): from this pytest-xdist worker's own
    block when PYTEST_XDIST_WORKER names one, else as the kernel hands one out."""
    exclude = exclude or set()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and worker[2:].isdigit():
        return _worker_port(worker, exclude)
    return _kernel_port(exclude)


def _worker_port(worker: str, exclude: set[int]) -> int:
    base = _WORKER_BASE + (int(worker[2:]) % 10) * _WORKER_BLOCK
    start = _cursor.get(worker, random.randrange(_WORKER_BLOCK))
    for i in range(_WORKER_BLOCK):
        port = base + (start + i) % _WORKER_BLOCK
        if port not in exclude and port_free(port):
            _cursor[worker] = (start + i + 1) % _WORKER_BLOCK  # never the same one twice
            return port
    raise InfraError(f"no free port in {base}-{base + _WORKER_BLOCK - 1} for {worker}")


def _kernel_port(exclude: set[int]) -> int:
    held: list[socket.socket] = []
    try:
        while True:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(s)  # keep bound so the kernel does not hand the same port back
            s.bind((HOST, 0))
            port = int(s.getsockname()[1])
            if port not in exclude:
                return port
    finally:
        for s in held:
            s.close()


def run_logged(
    argv: list[str],
    log: Path,
    *,
    user: str | None = None,
    timeout: float = 300,
    cwd: Path | None = None,
) -> None:
    """Run a setup command to completion, appending its output to `log`."""
    kwargs: dict[str, Any] = {}
    if user is not None and os.geteuid() == 0:
        pw = pwd.getpwnam(user)
        kwargs.update(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as fh:
        fh.write(f"\n=== {shlex.join(argv)}\n".encode())
        fh.flush()
        try:
            rc = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                cwd=cwd,
                check=False,
                **kwargs,
            ).returncode
        except subprocess.TimeoutExpired as exc:
            raise InfraError(f"timed out after {timeout:.0f}s: {shlex.join(argv)}") from exc
    if rc != 0:
        raise InfraError(f"failed (rc={rc}): {shlex.join(argv)}\nlog {log}:\n{tail(log)}")


def venv_bin(repo_root: Path) -> Path:
    """bin/ of the project virtualenv: ours if running inside one, else <repo>/.venv."""
    if sys.prefix != sys.base_prefix:
        return Path(sys.executable).parent
    return Path(repo_root) / ".venv" / "bin"
