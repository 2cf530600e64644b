"""A preloaded launcher for the services of a test run: forked, not exec'd.

    python -m deploy.local.parts.preload <state_dir>

Importing a service's dependencies (FastStream, aiokafka, FastAPI, botocore, pydantic...)
costs 1 to 1.5 CPU-seconds per process, and a test run starts well over a hundred service
processes on two cores. This process imports the five services' code once, then forks one
child per `python -m services.<name>` it is asked for (gunicorn's "preload", a zygote). The
child is what the command would have been: a session of its own, stdin from /dev/null,
stdout and stderr to its log, the caller's environment and working directory, `sys.argv`
and `__main__` as under `-m`, and the interpreter's normal exit (atexit, thread joins,
flushes, exit code). One difference shows from outside only: `/proc/<pid>/environ` is the
launcher's initial block, since a forked child sets its environment with putenv.

Only `start_process` uses it, and only where `LETHE_PRELOAD_SERVICES=1` (tests/conftest.py
sets it): the demo and deployments exec the services. Nothing is read from the
environment at import time by Lethe's code (a rule of the house), so forking from a
process that imported with another environment changes nothing. One launcher per state
directory, on an abstract Unix socket named after it; it leaves when its parent does.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import random
import runpy
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_FLAG = "LETHE_PRELOAD_SERVICES"
# What the services import before they serve: their apps, and the parts uvicorn picks at
# run time.
PRELOAD = (
    "services.auditor.app",
    "services.notifier.app",
    "services.eraser.app",
    "services.exporter.app",
    "services.intake.app",
    "shared.runner",
    "uvicorn",
    "uvicorn.loops.auto",
    "uvicorn.protocols.http.auto",
    "uvicorn.protocols.websockets.auto",
    "uvicorn.lifespan.on",
)
_POLL = 0.05  # seconds between reaps while idle: a dead child is a zombie no longer


def socket_name(state_dir: Path) -> str:
    """The launcher's abstract socket for a state directory (no file, no length limit)."""
    digest = hashlib.sha256(str(Path(state_dir).resolve()).encode()).hexdigest()[:24]
    return f"\0lethe-preload-{digest}"


def enabled(environ: dict[str, str] | os._Environ[str]) -> bool:
    return environ.get(ENV_FLAG, "") == "1"


def service_module(argv: list[str]) -> str | None:
    """`services.<name>` when argv is `<this python> -m services.<name> ...`, else None."""
    if len(argv) >= 3 and argv[0] == sys.executable and argv[1] == "-m":
        if argv[2].startswith("services.") and argv[2].count(".") == 1:
            return argv[2]
    return None


# --- client side (start_process) ---------------------------------------------------------


def _call(state_dir: Path, request: dict[str, Any], timeout: float = 10) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(socket_name(state_dir))
        s.sendall(json.dumps(request).encode() + b"\n")
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    reply: dict[str, Any] = json.loads(data)
    if "error" in reply:
        raise OSError(reply["error"])
    return reply


def answers(state_dir: Path) -> bool:
    try:
        _call(state_dir, {"op": "ping"}, timeout=2)
    except (OSError, ValueError):
        return False
    return True


def spawn(
    state_dir: Path, argv: list[str], env: dict[str, str], cwd: Path | None, log: Path
) -> int:
    """Fork `argv` (a `python -m services.<name>`) from the launcher; the child's pid."""
    request = {"op": "spawn", "argv": argv, "env": env, "cwd": str(cwd or os.getcwd())}
    pid: int = _call(state_dir, {**request, "log": str(log)})["pid"]
    return pid


def exit_code(state_dir: Path, pid: int) -> int | None:
    """The exit code of a child the launcher reaped; None while it runs (or was never its)."""
    code: int | None = _call(state_dir, {"op": "status", "pid": pid}).get("code")
    return code


# --- server side ---------------------------------------------------------------------------


@dataclass
class _Child:
    """What a forked child runs, once it has left the server's loop."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    log: str

    def run(self) -> None:
        os.setsid()  # a session and process group of its own, as `start_new_session` gives
        fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.chdir(self.cwd)
        os.environ.clear()
        os.environ.update(self.env)
        random.seed()  # not the launcher's sequence, shared by every sibling
        sys.argv = [self.argv[2], *self.argv[3:]]
        runpy.run_module(self.argv[2], run_name="__main__", alter_sys=True)


def _serve(state_dir: Path) -> _Child | None:
    """Answer requests until the parent leaves; in a forked child, return what it runs."""
    parent = os.getppid()
    codes: dict[int, int] = {}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as srv:
        srv.bind(socket_name(state_dir))
        srv.listen(64)
        srv.settimeout(_POLL)
        print(f"preloaded {len(PRELOAD)} modules; serving", flush=True)
        while os.getppid() == parent:
            _reap(codes)
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(10)
                request = _read(conn)
                if request.get("op") != "spawn":
                    _reply(conn, _answer(request, codes))
                    continue
                pid = os.fork()
                if pid == 0:
                    return _Child(request["argv"], request["env"], request["cwd"], request["log"])
                _reply(conn, {"pid": pid})
    return None


def _read(conn: socket.socket) -> dict[str, Any]:
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    request: dict[str, Any] = json.loads(data)
    return request


def _reply(conn: socket.socket, reply: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        conn.sendall(json.dumps(reply).encode())


def _answer(request: dict[str, Any], codes: dict[int, int]) -> dict[str, Any]:
    if request.get("op") == "ping":
        return {"ok": True}
    if request.get("op") == "status":
        _reap(codes)
        return {"code": codes.get(int(request["pid"]))}
    return {"error": f"unknown request {request.get('op')!r}"}


def _reap(codes: dict[int, int]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        codes[pid] = os.waitstatus_to_exitcode(status)


def main() -> None:
    state_dir = Path(sys.argv[1])
    started = time.monotonic()
    for name in PRELOAD:
        importlib.import_module(name)
    print(f"imported in {time.monotonic() - started:.2f}s", flush=True)
    child = _serve(state_dir)
    if child is not None:
        child.run()  # the service; its SystemExit ends this interpreter as it would its own


if __name__ == "__main__":
    main()
