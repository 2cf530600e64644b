"""The data map's `connectors:` section: refused at load with the place of the mistake; and
the connector rules (what is retried, the codes, the review items)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from services.eraser import connector_rules as rules
from services.eraser.models import ConnectorCall
from shared.datamap import DataMapError, ManualConnector, load_datamap, missing_env

pytestmark = pytest.mark.unit
BASE = """version: 2
subject: {table: users, org_column: org_id, identities: {email: email}}
tables:
  users: {primary_key: id, org_column: org_id}
  tokens: {primary_key: id, parents: [{table: users, column: user_id}]}
  audit: {primary_key: id, action: keep, parents: [{table: users, column: user_id}]}
connectors:
"""
GOOD = """  crm: {type: http, url: "https://crm.example/erase", secret_env: CRM_SECRET}
  idp:
    type: oauth_revocation
    endpoint: "https://idp.example/revoke"
    table: tokens
    tokens: {access_token: access_token}
    client_id_env: IDP_ID
    client_secret_env: IDP_SECRET
  archive: {type: manual, assignee: ops@example.com, instructions: "the billing sheet"}
"""


def _load(tmp_path: Path, connectors: str) -> object:
    p = tmp_path / f"{uuid.uuid4().hex[:6]}.yaml"
    p.write_text(BASE + connectors)
    return load_datamap(p)


def test_a_map_with_each_kind_of_connector_loads(tmp_path: Path) -> None:
    dm = _load(tmp_path, GOOD)
    assert list(dm.connectors) == ["crm", "idp", "archive"]  # type: ignore[attr-defined]
    archive = dm.connectors["archive"]  # type: ignore[attr-defined]
    assert isinstance(archive, ManualConnector) and archive.assignee == "ops@example.com"
    assert missing_env(dm, {"CRM_SECRET": "x", "IDP_ID": "y"}) == [  # type: ignore[arg-type]
        "connectors.idp: IDP_SECRET is not set"
    ]


@pytest.mark.parametrize(
    ("connectors", "error"),
    [
        (
            '  crm: {type: http, url: "ftp://crm/erase", secret_env: S}\n',
            "connectors.crm.http.url: 'ftp://crm/erase' is not an absolute http(s) URL",
        ),
        (
            '  crm: {type: http, url: "https://crm/erase", secret_env: lower_case}\n',
            "connectors.crm.http.secret_env: String should match pattern",
        ),
        ("  crm: {type: ftp}\n", "connectors.crm: Input tag 'ftp' found using 'type'"),
        (
            '  crm: {type: http, url: "https://crm/e", secret_env: S, secret: s3cret}\n',
            "connectors.crm.http.secret: Extra inputs are not permitted",
        ),
        (
            "  idp: {type: oauth_revocation, endpoint: 'https://i/r', table: nope, "
            "tokens: {t: access_token}, client_id_env: A, client_secret_env: B}\n",
            "connectors.idp.table: unknown table 'nope'",
        ),
        (
            "  idp: {type: oauth_revocation, endpoint: 'https://i/r', table: audit, "
            "tokens: {t: access_token}, client_id_env: A, client_secret_env: B}\n",
            "connectors.idp.table: 'audit' is kept (action keep)",
        ),
        (
            "  idp: {type: oauth_revocation, endpoint: 'https://i/r', table: tokens, "
            "tokens: {t: id_token}, client_id_env: A, client_secret_env: B}\n",
            "connectors.idp.oauth_revocation.tokens.t: Input should be 'access_token' or",
        ),
        ("  archive: {type: manual, assignee: ops}\n", "connectors.archive.manual.assignee"),
    ],
)
def test_a_connector_mistake_is_refused_naming_its_place(
    tmp_path: Path, connectors: str, error: str
) -> None:
    with pytest.raises(DataMapError, match="invalid data map") as err:
        _load(tmp_path, connectors)
    assert error in str(err.value)


def test_which_answers_are_retried() -> None:
    assert rules.status_code(200) is None and rules.status_code(204) is None
    assert rules.status_code(503) == "http_503" and rules.retryable(503)
    assert rules.retryable(429) and not rules.retryable(400) and not rules.retryable(401)
    assert [rules.backoff(n, 1.0) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    assert rules.backoff(20, 1.0) == 60.0


def test_failures_are_review_items_without_the_tokens() -> None:
    calls = [
        ConnectorCall("crm", "http", "done", None, 1),
        ConnectorCall("idp", "oauth_revocation", "failed", "http_500", 4, 10, 2),
    ]
    assert rules.review_items(calls) == [
        {"kind": "connector", "connector": "idp", "code": "http_500", "failed_tokens": 2}
    ]
    assert rules.outcomes(calls)["idp"] == {
        "kind": "oauth_revocation",
        "outcome": "failed",
        "code": "http_500",
        "tokens": 10,
        "failed_tokens": 2,
    }
    job = uuid.uuid4()
    assert rules.call_id(job, "crm") == rules.call_id(job, "crm") != rules.call_id(job, "x")
