"""`python -m services.<name>`: build the service's settings and app, run until SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from typing import NoReturn, TypeVar

from faststream import FastStream
from pydantic import ValidationError

from shared.datamap import DataMap
from shared.health import arm_watchdog
from shared.settings import LetheSettings, UnsafeSecrets
from shared.startup import STARTUP_ERRORS, load_checked_datamap, refusal

S = TypeVar("S", bound=LetheSettings)


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


def load_settings(settings_cls: type[S]) -> S:
    """The service's settings, or its refusal: an unsafe secret (named) or an invalid value."""
    try:
        return settings_cls()
    except (UnsafeSecrets, ValidationError) as exc:
        refuse(exc)


def run(settings_cls: type[S], create_app: Callable[[S], FastStream]) -> None:
    configure_logging()
    settings = load_settings(settings_cls)
    app = create_app(settings)
    # SIGTERM: the app drains (shared.health); the process is gone within the grace period.
    arm_watchdog(app, settings.shutdown_grace_seconds)
    try:
        asyncio.run(app.run())
    except STARTUP_ERRORS as exc:
        refuse(exc)


def refuse(exc: BaseException) -> NoReturn:
    """A configuration mistake (secrets, data map, bucket): its message alone, no traceback,
    exit 2."""
    logging.getLogger(__name__).error("%s", refusal(exc))
    logging.shutdown()
    sys.exit(2)


def preflight(settings: LetheSettings) -> DataMap:
    """For a process whose server runs the start-up (intake under uvicorn): the data map
    checked against the live database before serving, or the refusal."""
    try:
        datamap, _ = asyncio.run(load_checked_datamap(settings))
    except STARTUP_ERRORS as exc:
        refuse(exc)
    return datamap
