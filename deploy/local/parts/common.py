"""Helpers every part uses: atomic files, log tails, a state-dir lock, setup commands, ports."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
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


def free_port(exclude: set[int]) -> int:
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
