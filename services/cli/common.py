"""What every `lethe` subcommand needs: settings from the environment or `.local/env`."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from rich.console import Console

from shared.settings import LetheSettings

console = Console()


def load_env_file(path: Path) -> None:
    """Take endpoints from `.local/env` (written by `make up`) unless already set."""
    if not path.exists():
        return
    for line in path.read_text().splitlines():
        parts = shlex.split(line, comments=True)
        if parts and parts[0] == "export":
            parts = parts[1:]
        for part in parts:
            key, sep, value = part.partition("=")
            if sep and key not in os.environ:
                os.environ[key] = value


def settings() -> LetheSettings:
    load_env_file(Path(os.environ.get("LETHE_ENV_FILE", ".local/env")))
    return LetheSettings()
