"""Detached processes: start with a pid file and a log, probe, wait for readiness, stop.

Each process leads its own session, so stopping it signals its children too; the start
time recorded beside the pid guards against a reused pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from deploy.local.parts import preload
from deploy.local.parts.common import InfraError, locked, tail, write_atomic

# Popen objects of children started by this interpreter: kept so they are reaped (no
# zombies that look alive) and never garbage-collected with a ResourceWarning.
CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
# Services forked by a preloaded launcher (deploy/local/parts/preload.py): pid -> its
# state directory, which names the launcher that knows the exit code.
PRELOADED: dict[int, Path] = {}


def _pid_file(name: str, state_dir: Path) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"bad process name: {name!r}")
    return state_dir / "run" / f"{name}.pid"


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def _start_ticks(pid: int) -> str | None:
    fields = _proc_stat(pid)
    return fields[19] if fields and len(fields) > 19 else None


def read_pid(name: str, state_dir: Path) -> tuple[int, str | None] | None:
    """(pid, start ticks recorded at launch) or None."""
    path = _pid_file(name, state_dir)
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    ticks: str | None = None
    with contextlib.suppress(OSError, ValueError):
        ticks = json.loads(path.with_suffix(".json").read_text()).get("start_ticks")
    return pid, ticks


def pid_alive(pid: int, ticks: str | None = None) -> bool:
    child = CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del CHILDREN[pid]
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    fields = _proc_stat(pid)
    if fields is None:
        return not Path("/proc/self").exists()  # no procfs: trust kill(0)
    if fields[0] in ("Z", "X"):
        return False
    # Start time guards against the pid having been reused by an unrelated process.
    return ticks is None or len(fields) <= 19 or fields[19] == ticks


def process_alive(name: str, state_dir: Path) -> bool:
    rec = read_pid(name, Path(state_dir))
    return rec is not None and pid_alive(*rec)


def start_process(
    name: str,
    argv: list[str],
    env: dict[str, str],
    state_dir: Path,
    *,
    user: str | None = None,
    cwd: Path | None = None,
) -> int:
    """Start argv detached (own session); output to logs/<name>.log, pid to run/<name>.pid.

    ``env`` is laid over the current environment. ``user`` (root only) runs the process as
    that account. Raises InfraError if a process of that name is already alive.
    """
    state_dir = Path(state_dir).resolve()
    pid_path = _pid_file(name, state_dir)
    if process_alive(name, state_dir):
        raise InfraError(f"{name} is already running (pid file {pid_path})")
    log_path = state_dir / "logs" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    pid_path.parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {}
    if user is not None and os.geteuid() == 0 and pwd.getpwuid(0).pw_name != user:
        pw = pwd.getpwnam(user)
        kwargs.update(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
    forked = user is None and preload.enabled(os.environ) and bool(preload.service_module(argv))
    if forked:
        _ensure_launcher(state_dir)
    with open(log_path, "ab") as log:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        how = " (forked from the preloaded launcher)" if forked else ""
        log.write(f"\n=== {stamp} start {name}{how}: {shlex.join(argv)}\n".encode())
        log.flush()
        if forked:  # the child opens the log itself, in append mode
            pid = preload.spawn(state_dir, argv, {**os.environ, **env}, cwd, log_path)
            PRELOADED[pid] = state_dir
            _record(pid_path, argv, pid)
            return pid
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
            **kwargs,
        )
    CHILDREN[proc.pid] = proc
    _record(pid_path, argv, proc.pid)
    return proc.pid


def _record(pid_path: Path, argv: list[str], pid: int) -> None:
    meta = {"argv": argv, "start_ticks": _start_ticks(pid), "started_at": time.time()}
    write_atomic(pid_path.with_suffix(".json"), json.dumps(meta) + "\n")
    write_atomic(pid_path, f"{pid}\n")


def _ensure_launcher(state_dir: Path) -> None:
    """The state directory's preloaded launcher, started on first use."""
    with locked(state_dir / "preload.lock"):
        if preload.answers(state_dir):
            return
        argv = [sys.executable, "-m", "deploy.local.parts.preload", str(state_dir)]
        start_process("preload", argv, {}, state_dir, cwd=Path(__file__).resolve().parents[3])
        wait_ready("preload", state_dir, lambda: preload.answers(state_dir), 60, "its socket")


def wait_exit(pid: int, timeout: float) -> int | None:
    """The exit code of a process `start_process` started, once it ends; None if it still
    runs after `timeout` seconds."""
    proc = CHILDREN.get(pid)
    if proc is None and pid in PRELOADED:
        deadline = time.monotonic() + timeout
        while (code := preload.exit_code(PRELOADED[pid], pid)) is None:
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)
        return code
    if proc is None:
        raise ValueError(f"pid {pid} was not started by this process")
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def _signal(pid: int, sig: int, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        # Our processes lead their own session/group: signal children (workers) too.
        if group and os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def _wait_dead(pid: int, ticks: str | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid, ticks):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # killpg(0) also succeeds on zombies; look for a live member.
    for proc in Path("/proc").glob("[0-9]*"):
        fields = _proc_stat(int(proc.name))
        if fields and len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in "ZX":
            return True
    return False


def stop(name: str, state_dir: Path, timeout: float, sig: int, group: bool) -> None:
    state_dir = Path(state_dir).resolve()
    rec = read_pid(name, state_dir)
    if rec is not None:
        pid, ticks = rec
        if pid_alive(pid, ticks):
            _signal(pid, sig, group)
            if not _wait_dead(pid, ticks, timeout):
                _signal(pid, signal.SIGKILL, True)
                _wait_dead(pid, ticks, 5)
            # Children that outlived the leader (same process group) go too.
            if _group_alive(pid):
                _signal(pid, signal.SIGTERM, True)
                deadline = time.monotonic() + 3
                while _group_alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
                if _group_alive(pid):
                    _signal(pid, signal.SIGKILL, True)
        child = CHILDREN.pop(pid, None)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=1)
    pid_path = _pid_file(name, state_dir)
    pid_path.unlink(missing_ok=True)
    pid_path.with_suffix(".json").unlink(missing_ok=True)


def stop_process(name: str, state_dir: Path, timeout: float = 15) -> None:
    """SIGTERM the process group, wait up to `timeout`, then SIGKILL. Idempotent."""
    stop(name, state_dir, timeout, signal.SIGTERM, group=True)


def recorded_names(state_dir: Path) -> list[str]:
    run = state_dir / "run"
    return sorted(p.stem for p in run.glob("*.pid")) if run.is_dir() else []


def wait_ready(name: str, state_dir: Path, check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    log = state_dir / "logs" / f"{name}.log"
    while not check():
        if not process_alive(name, state_dir):
            raise InfraError(f"{name} exited during startup; log {log}:\n{tail(log)}")
        if time.monotonic() >= deadline:
            raise InfraError(
                f"{name} not ready after {timeout:.0f}s ({what}); log {log}:\n{tail(log)}"
            )
        time.sleep(0.1)
