"""The HTTP client the CLI's job commands use (the same API and access control as anyone)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import typer

from services.cli.common import console, load_env_file


def client() -> httpx.Client:
    load_env_file(_env_path())
    url = os.environ.get("LETHE_API_URL")
    key = os.environ.get("LETHE_API_KEY")
    if not url or not key:
        console.print(
            "[red]set LETHE_API_URL (in .local/env after `make up`) and LETHE_API_KEY "
            "(from `lethe keys create`)[/]"
        )
        raise typer.Exit(2)
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=15)


def _env_path() -> Path:
    return Path(os.environ.get("LETHE_ENV_FILE", ".local/env"))


def check(r: httpx.Response) -> Any:
    """The JSON body, or the API's reason on stderr and a non-zero exit."""
    if r.status_code >= 400:
        try:
            detail = r.json().get("detail", r.text)
        except ValueError:
            detail = r.text
        console.print(f"[red]{r.status_code}[/]: {detail}")
        raise typer.Exit(1)
    return r.json()
