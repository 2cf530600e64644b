"""A data map with a mistake stops every service that uses it, at start, with the same message
(file, table, field) and a non-zero exit: the exporter used to start anyway and fail at its
first export."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

from deploy.local import infra
from deploy.local.stack import REPO_ROOT, SAMPLE_DATAMAP, _free_port, service_env

pytestmark = pytest.mark.e2e
MAP_USERS = ("eraser", "exporter", "intake")


def _refusal(log: Path) -> str | None:
    lines = [ln for ln in log.read_text().splitlines() if "cannot start: " in ln]
    return lines[-1].split("cannot start: ", 1)[1] if lines else None


def test_a_data_map_mistake_stops_each_service_that_uses_it_with_the_same_message(
    prepared: infra.Endpoints, state_dir: Path, tmp_path: Path, group_prefix: str
) -> None:
    broken = tmp_path / "typo-map.yaml"
    text = SAMPLE_DATAMAP.read_text()
    assert "    phone: phone\n" in text
    broken.write_text(text.replace("    phone: phone\n", "    phone: phone_number\n", 1))
    env = service_env(prepared, _free_port(), environ={"LETHE_DATAMAP_PATH": str(broken)})
    env["LETHE_KAFKA_GROUP_PREFIX"] = group_prefix  # never the production groups
    tag = uuid.uuid4().hex[:6]
    pids = {
        service: infra.start_process(
            f"badmap-{service}-{tag}",
            [sys.executable, "-m", f"services.{service}"],
            env,
            state_dir,
            cwd=REPO_ROOT,
        )
        for service in MAP_USERS
    }
    try:
        codes = {service: infra.wait_exit(pid, timeout=60) for service, pid in pids.items()}
    finally:
        for service in MAP_USERS:
            infra.stop_process(f"badmap-{service}-{tag}", state_dir)
    logs = {s: state_dir / "logs" / f"badmap-{s}-{tag}.log" for s in MAP_USERS}
    assert all(code not in (0, None) for code in codes.values()), (codes, logs)

    messages = {service: _refusal(log) for service, log in logs.items()}
    assert len(set(messages.values())) == 1, messages
    message = messages["exporter"]
    assert message is not None
    # The file, the field and the table, so the operator knows where to look.
    assert message.startswith(f"{broken}: ")
    assert "subject.identities.phone" in message and "'phone_number'" in message
    assert "'users'" in message
