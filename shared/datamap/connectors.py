"""Connectors: the subject's data outside the platform database (docs/datamap.md,
"Connectors"). Three kinds, each a `connectors.<name>` entry of the map:

- `http`: a signed POST per erasure to the system's own erase endpoint (at the purge);
- `oauth_revocation`: the subject's OAuth tokens, read from a mapped table, revoked at the
  authorisation server (RFC 7009) before those rows are erased;
- `manual`: a person or team erases by hand; the job holds a task for them.

Secrets are never in the map: it names the environment variables holding them, which the
eraser reads at start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

if TYPE_CHECKING:
    from shared.datamap.model import DataMap

ColumnName = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]
EnvName = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z_][A-Z0-9_]{0,127}$"),
    Field(description="name of an environment variable (upper case, digits, _)"),
]
# An email address, loosely: a mail goes to it, and the notifier refuses what is not one.
Address = Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+$", max_length=254)]


def _http_url(v: str) -> str:
    parts = urlsplit(v)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{v!r} is not an absolute http(s) URL")
    return v


HttpUrl = Annotated[str, AfterValidator(_http_url)]


class HttpConnector(BaseModel):
    """POST `{job_id, org_id, scope, identities}` signed with the secret in `secret_env`
    (header `Lethe-Signature`, as webhooks); a 2xx answer is done."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["http"]
    url: HttpUrl
    secret_env: EnvName


class OAuthRevocation(BaseModel):
    """Each token of the subject's rows of `table` is revoked at `endpoint` (RFC 7009), with
    HTTP Basic client authentication from `client_id_env` / `client_secret_env`."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["oauth_revocation"]
    endpoint: HttpUrl
    table: ColumnName
    tokens: dict[ColumnName, Literal["access_token", "refresh_token"]] = Field(
        description="column holding a token -> its token_type_hint"
    )
    client_id_env: EnvName
    client_secret_env: EnvName


class ManualConnector(BaseModel):
    """A system someone erases by hand: each erasure opens a task mailed to `assignee`."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["manual"]
    assignee: Address
    instructions: str = Field("", max_length=2000)


Connector = Annotated[
    HttpConnector | OAuthRevocation | ManualConnector, Field(discriminator="type")
]


def check_connectors(dm: DataMap) -> None:
    """What a connector names in the map: a mapped table whose rows are erased, its columns
    distinct from the key (their existence is checked against the live database)."""
    for name, c in dm.connectors.items():
        where = f"connectors.{name}"
        if isinstance(c, OAuthRevocation):
            t = dm.tables.get(c.table)
            if t is None:
                raise ValueError(f"{where}.table: unknown table {c.table!r}")
            if t.action == "keep":
                raise ValueError(
                    f"{where}.table: {c.table!r} is kept (action keep); tokens are revoked "
                    "before their rows are erased, so the table must be erased or masked"
                )
            if not c.tokens:
                raise ValueError(f"{where}.tokens: name at least one token column")


def env_names(dm: DataMap) -> dict[str, list[str]]:
    """connector -> the environment variables it needs (checked when the eraser starts)."""
    out: dict[str, list[str]] = {}
    for name, c in dm.connectors.items():
        if isinstance(c, HttpConnector):
            out[name] = [c.secret_env]
        elif isinstance(c, OAuthRevocation):
            out[name] = [c.client_id_env, c.client_secret_env]
    return out


def missing_env(dm: DataMap, environ: dict[str, str] | None) -> list[str]:
    """`connectors.<name>: VARIABLE is not set` for each variable a connector needs."""
    env = environ or {}
    return [
        f"connectors.{name}: {var} is not set"
        for name, variables in env_names(dm).items()
        for var in variables
        if not env.get(var)
    ]
