"""S3 (moto_server) and the SMTP sink (deploy/local/smtp_sink.py), both from the venv."""

from __future__ import annotations

import contextlib
import socket
import urllib.error
import urllib.request
from pathlib import Path

from deploy.local.parts.common import HOST, InfraError, venv_bin
from deploy.local.parts.processes import start_process, wait_ready


def smtp_ready(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=2) as s:
            ok = s.recv(512).startswith(b"220")
            with contextlib.suppress(OSError):
                s.sendall(b"QUIT\r\n")
            return ok
    except OSError:
        return False


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _venv_program(repo_root: Path, prog: str) -> str:
    path = venv_bin(repo_root) / prog
    if not path.exists():
        raise InfraError(f"{path} not found: create the venv (pip install -e '.[dev]')")
    return str(path)


def start_s3(state_dir: Path, repo_root: Path, port: int) -> None:
    moto = _venv_program(repo_root, "moto_server")
    start_process("s3", [moto, "-H", HOST, "-p", str(port)], {}, state_dir, cwd=state_dir)
    url = f"http://{HOST}:{port}/"
    wait_ready("s3", state_dir, lambda: http_ok(url), 60, f"HTTP 200 from {url}")


def start_smtp(state_dir: Path, repo_root: Path, port: int) -> None:
    python = _venv_program(repo_root, "python")
    sink = Path(repo_root) / "deploy" / "local" / "smtp_sink.py"
    mail_dir = state_dir / "mail"
    mail_dir.mkdir(parents=True, exist_ok=True)
    start_process(
        "smtp",
        [python, str(sink), "--host", HOST, "--port", str(port), "--mail-dir", str(mail_dir)],
        {"PYTHONUNBUFFERED": "1"},
        state_dir,
        cwd=state_dir,
    )
    wait_ready("smtp", state_dir, lambda: smtp_ready(port), 30, f"SMTP banner on {port}")
