"""Pointing the local stack at another platform database and data map: the caller's values
reach the services, and `status` shows them with the password hidden."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.local import infra
from deploy.local.stack import SAMPLE_DATAMAP, print_target, record_target, service_env
from shared.startup import redact_dsn

pytestmark = pytest.mark.unit

EP = infra.Endpoints(
    kafka_bootstrap_servers="127.0.0.1:19092",
    database_url="postgresql://postgres@127.0.0.1:15432/lethe",
    platform_database_url="postgresql://postgres@127.0.0.1:15432/platform",
    s3_endpoint_url="http://127.0.0.1:15000",
    smtp_host="127.0.0.1",
    smtp_port=10025,
    mail_dir=Path("/tmp/mail"),
)
SHOP = "postgresql://lethe:s3cret-pw@db.example.com:5432/shop?sslmode=require"


def test_service_env_keeps_the_callers_platform_database_and_data_map(tmp_path: Path) -> None:
    mine = tmp_path / "shop-map.yaml"
    env = service_env(
        EP, 8080, environ={"PLATFORM_DATABASE_URL": SHOP, "LETHE_DATAMAP_PATH": str(mine)}
    )
    # Both names: a LETHE_PLATFORM_DATABASE_URL left in the services' environment cannot win.
    assert env["PLATFORM_DATABASE_URL"] == env["LETHE_PLATFORM_DATABASE_URL"] == SHOP
    assert env["LETHE_DATAMAP_PATH"] == str(mine)
    # The prefixed name wins, as in the services' settings.
    other = "postgresql://lethe@db.example.com/other"
    env = service_env(
        EP, 8080, environ={"PLATFORM_DATABASE_URL": SHOP, "LETHE_PLATFORM_DATABASE_URL": other}
    )
    assert env["PLATFORM_DATABASE_URL"] == other
    # Unset or empty: the local sample database and map.
    for environ in (None, {}, {"PLATFORM_DATABASE_URL": "", "LETHE_DATAMAP_PATH": ""}):
        env = service_env(EP, 8080, environ=environ)
        assert env["PLATFORM_DATABASE_URL"] == EP.platform_database_url
        assert env["LETHE_DATAMAP_PATH"] == str(SAMPLE_DATAMAP)


def test_a_relative_data_map_path_is_the_callers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # services run from the repository: the path must not move
    env = service_env(EP, 8080, environ={"LETHE_DATAMAP_PATH": "maps/shop.yaml"})
    assert env["LETHE_DATAMAP_PATH"] == str(tmp_path / "maps" / "shop.yaml")


def test_status_shows_the_database_without_its_password_and_the_map(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "shop-map.yaml"
    environ = {"PLATFORM_DATABASE_URL": SHOP, "LETHE_DATAMAP_PATH": str(mine)}
    record_target(tmp_path, EP, service_env(EP, 8080, environ=environ))
    print_target(tmp_path)
    out = capsys.readouterr().out
    assert "postgresql://lethe:***@db.example.com:5432/shop?sslmode=require" in out
    assert str(mine) in out
    assert "s3cret" not in out and "s3cret" not in (tmp_path / "platform.json").read_text()

    record_target(tmp_path, EP, service_env(EP, 8080))
    print_target(tmp_path)
    out = capsys.readouterr().out
    assert f"{EP.platform_database_url} (the local sample)" in out
    assert f"{SAMPLE_DATAMAP} (the local sample)" in out


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (SHOP, "postgresql://lethe:***@db.example.com:5432/shop?sslmode=require"),
        (
            "postgresql://u:p%40ss@h/db?password=x&ssl=1",
            "postgresql://u:***@h/db?password=***&ssl=1",
        ),
        ("postgresql:///db?host=/run/pg&password=x", "postgresql:///db?host=/run/pg&password=***"),
        (
            "postgresql://postgres@127.0.0.1:5432/platform",
            "postgresql://postgres@127.0.0.1:5432/platform",
        ),
    ],
)
def test_redact_dsn_hides_only_the_password(url: str, shown: str) -> None:
    assert redact_dsn(url) == shown
