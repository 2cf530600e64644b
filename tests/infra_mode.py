"""Which infrastructure the test suite uses: external endpoints, containers or local processes.

Pure: the environment and a "does a Docker engine answer" probe are passed in, so every case
is unit-tested (tests/unit/test_infra_mode.py) without Docker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

Mode = Literal["external", "containers", "processes"]

# All set: the tests use that infrastructure and start nothing.
EXTERNAL_VARS = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "DATABASE_URL",
    "PLATFORM_DATABASE_URL",
    "S3_ENDPOINT_URL",
    "SMTP_HOST",
    "SMTP_PORT",
    "LETHE_MAIL_DIR",
)
CHOICE_VAR = "LETHE_TEST_INFRA"
CHOICES: tuple[Mode, ...] = ("containers", "processes")


class InfraChoiceError(RuntimeError):
    """The asked-for infrastructure cannot be used; the message says what to do."""


def select_infra(env: Mapping[str, str], docker_answers: Callable[[], bool]) -> Mode:
    """External endpoints first; then `LETHE_TEST_INFRA` (containers|processes); unset,
    containers when a Docker engine answers and local processes otherwise.

    The probe is called only when the answer depends on it."""
    if all(env.get(k) for k in EXTERNAL_VARS):
        return "external"
    choice = env.get(CHOICE_VAR, "").strip().lower()
    if choice == "processes":
        return "processes"
    if choice == "containers":
        if not docker_answers():
            raise InfraChoiceError(
                f"{CHOICE_VAR}=containers but no Docker engine answers (checked DOCKER_HOST "
                "or the default socket). Start Docker, or unset "
                f"{CHOICE_VAR} to use local processes (deploy/local/infra.py)."
            )
        return "containers"
    if choice:
        raise InfraChoiceError(
            f"{CHOICE_VAR}={env[CHOICE_VAR]!r} is not one of: {', '.join(CHOICES)} "
            "(or unset it to choose by whether Docker answers)."
        )
    return "containers" if docker_answers() else "processes"


def docker_answers(timeout: float = 2.0) -> bool:
    """True when a Docker engine (DOCKER_HOST or the default socket) answers a ping."""
    try:
        import docker  # testcontainers' dependency; absent means no containers
    except ImportError:
        return False
    try:
        client = docker.from_env(timeout=int(max(1, timeout)))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no socket, refused, permission denied: all mean "no engine here"
        return False
