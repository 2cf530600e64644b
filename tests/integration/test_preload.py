"""The preloaded launcher (deploy/local/parts/preload.py) starts what `python -m` would:
argv, environment, working directory, log, a session of its own, and the exit code."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest

from deploy.local.parts import preload
from deploy.local.parts.processes import process_alive, start_process, stop_process, wait_exit

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "services.cli"]


def test_only_a_service_module_of_this_interpreter_is_forked() -> None:
    assert preload.service_module([sys.executable, "-m", "services.eraser"]) == "services.eraser"
    assert preload.service_module([*CLI, "submit"]) == "services.cli"
    assert preload.service_module(["/usr/bin/python3", "-m", "services.eraser"]) is None
    assert preload.service_module([sys.executable, "-m", "deploy.local.stack"]) is None
    assert preload.service_module([sys.executable, "-m", "services.eraser.app"]) is None
    assert preload.service_module([sys.executable, "-c", "services.eraser"]) is None


def _log(state_dir: Path, name: str) -> str:
    return (state_dir / "logs" / f"{name}.log").read_text()


def test_a_forked_process_is_what_python_m_would_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(preload.ENV_FLAG, "1")
    work = tmp_path / "work"
    work.mkdir()
    try:
        ok = start_process("table", [*CLI, "config-table"], {}, tmp_path, cwd=work)
        assert wait_exit(ok, timeout=60) == 0
        assert "forked from the preloaded launcher" in _log(tmp_path, "table")
        assert "LETHE_ERASE_BATCH_SIZE" in _log(tmp_path, "table")  # its output, in its log
        bad = start_process("bad", [*CLI, "no-such-command"], {}, tmp_path, cwd=work)
        assert wait_exit(bad, timeout=60) == 2  # typer's usage error, as under `python -m`
        assert "No such command" in _log(tmp_path, "bad")

        # A submit to an API that accepts and never answers: alive long enough to look at.
        with socket.create_server(("127.0.0.1", 0)) as api:
            env = {
                "LETHE_API_URL": f"http://127.0.0.1:{api.getsockname()[1]}",
                "LETHE_API_KEY": "k",
                "LETHE_ENV_FILE": str(work / "none"),
            }
            pid = start_process(
                "held", [*CLI, "submit", "erasure", "--email", "a@x.test"], env, tmp_path, cwd=work
            )
            api.settimeout(60)
            conn, _ = api.accept()
            with conn:
                assert os.getsid(pid) == pid and os.getpgid(pid) == pid
                assert Path(f"/proc/{pid}/cwd").resolve() == work.resolve()
                # Its environment is the caller's: it came to this URL with this key.
                conn.settimeout(30)
                assert b"authorization: bearer k\r\n" in conn.recv(65536).lower()
                stop_process("held", tmp_path, timeout=10)
                assert not process_alive("held", tmp_path)
    finally:
        stop_process("preload", tmp_path)
    deadline = time.monotonic() + 10
    while preload.answers(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not preload.answers(tmp_path)


def test_without_the_flag_the_command_is_execd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(preload.ENV_FLAG, "0")
    pid = start_process("help", [*CLI, "--help"], {}, tmp_path)
    assert wait_exit(pid, timeout=60) == 0
    assert "forked" not in _log(tmp_path, "help")
    assert not preload.answers(tmp_path)
