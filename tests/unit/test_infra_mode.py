"""Which infrastructure the test fixture starts, for every combination of env and Docker."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.containers import ContainersError, refuse_remote_engine, started
from tests.infra_mode import EXTERNAL_VARS, InfraChoiceError, docker_answers, select_infra

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
EXTERNAL = {k: "x" for k in EXTERNAL_VARS}


class Probe:
    """A Docker probe with a fixed answer that counts its calls."""

    def __init__(self, answer: bool) -> None:
        self.answer, self.calls = answer, 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.answer


def _docker(answer: bool) -> Probe:
    return Probe(answer)


@pytest.mark.parametrize("docker", [True, False])
@pytest.mark.parametrize("choice", [None, "containers", "processes", "bogus"])
def test_external_endpoints_come_first(docker: bool, choice: str | None) -> None:
    env = dict(EXTERNAL) | ({"LETHE_TEST_INFRA": choice} if choice else {})
    probe = _docker(docker)
    assert select_infra(env, probe) == "external"
    assert probe.calls == 0


@pytest.mark.parametrize("missing", EXTERNAL_VARS)
def test_one_missing_external_variable_means_not_external(missing: str) -> None:
    env = {k: v for k, v in EXTERNAL.items() if k != missing}
    assert select_infra(env, _docker(False)) == "processes"
    assert select_infra(env | {missing: ""}, _docker(True)) == "containers"


def test_unset_choice_follows_docker() -> None:
    assert select_infra({}, _docker(True)) == "containers"
    assert select_infra({}, _docker(False)) == "processes"


def test_containers_asked_and_docker_answers() -> None:
    assert select_infra({"LETHE_TEST_INFRA": "containers"}, _docker(True)) == "containers"
    assert select_infra({"LETHE_TEST_INFRA": " Containers "}, _docker(True)) == "containers"


def test_containers_asked_without_docker_fails_saying_what_to_do() -> None:
    with pytest.raises(InfraChoiceError) as err:
        select_infra({"LETHE_TEST_INFRA": "containers"}, _docker(False))
    message = str(err.value)
    assert "LETHE_TEST_INFRA=containers" in message
    assert "no Docker engine answers" in message
    assert "unset LETHE_TEST_INFRA" in message


@pytest.mark.parametrize("docker", [True, False])
def test_processes_asked_never_probes_docker(docker: bool) -> None:
    probe = _docker(docker)
    assert select_infra({"LETHE_TEST_INFRA": "processes"}, probe) == "processes"
    assert probe.calls == 0


def test_unknown_choice_is_refused_with_the_choices() -> None:
    with pytest.raises(InfraChoiceError, match="'docker' is not one of: containers, processes"):
        select_infra({"LETHE_TEST_INFRA": "docker"}, _docker(True))


def test_probe_says_no_where_no_engine_listens(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/docker.sock")
    assert docker_answers(timeout=1) is False


@pytest.mark.skipif(docker_answers(), reason="a Docker engine answers here")
def test_fixture_refuses_containers_without_docker_and_starts_nothing() -> None:
    """What a user sees: LETHE_TEST_INFRA=containers on a machine without Docker stops the
    run at the infrastructure fixture with the message, before any test body runs."""
    env = {k: v for k, v in os.environ.items() if k not in EXTERNAL_VARS}
    env |= {"LETHE_TEST_INFRA": "containers", "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
    cmd.append("tests/integration/test_audit_store.py")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=120)
    shutil.rmtree(REPO / ".local" / f"test-{proc.pid}", ignore_errors=True)
    assert proc.returncode == 1, out
    assert "LETHE_TEST_INFRA=containers but no Docker engine answers" in out
    assert " passed" not in out


def test_containers_refuse_a_remote_engine_before_starting() -> None:
    with pytest.raises(ContainersError, match="remote Docker engine"):
        refuse_remote_engine({"DOCKER_HOST": "tcp://10.0.0.5:2375"})
    refuse_remote_engine({})
    refuse_remote_engine({"DOCKER_HOST": "unix:///var/run/docker.sock"})


def test_started_refuses_a_remote_engine_first(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "ssh://builder@example.invalid")
    with pytest.raises(ContainersError, match="mail directory"):
        with started(tmp_path, REPO):
            pass
    assert not (tmp_path / "mail").exists()
