"""Data map mistakes only the live database shows (issue 12, acceptance 2), each refused at
start by `check_against_database` with the file, the table and the field named: tombstones
that do not exist, detaches a NOT NULL column cannot take, masks that do not fit their
column, row filters that do not parse or name an unknown column, and a live foreign key the
map's deletion order cannot honour. On the sample schema (one edit of the sample map each),
and on a small schema of its own for what the sample has no column for (a varchar(4))."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from deploy.local import infra
from shared.datamap import DataMapError, check_against_database, load_datamap
from tests.schemas import databases

pytestmark = pytest.mark.integration
SAMPLE = Path(__file__).resolve().parents[2] / "deploy/local/sample/datamap.yaml"


async def _refused(tmp_path: Path, conn: asyncpg.Connection, text: str) -> str:
    p = tmp_path / "map.yaml"
    p.write_text(text)
    dm = load_datamap(p)  # nothing wrong that the YAML alone shows
    with pytest.raises(DataMapError) as err:
        await check_against_database(dm, conn)
    msg = " ".join(str(err.value).split())
    assert msg.startswith(f"{p}: does not match the database: "), msg
    return msg


async def _sample(tmp_path: Path, platform_db: asyncpg.Pool, *edits: tuple[str, str]) -> str:
    text = SAMPLE.read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    async with platform_db.acquire() as conn:
        return await _refused(tmp_path, conn, text)


PAYMENT_LINK = "      - {table: users, column: user_id}\n  newsletter_signups:"
AUTHOR_LINK = "      - {table: users, column: author_id, kind: owned}"


async def test_a_tombstone_row_that_does_not_exist(
    tmp_path: Path, platform_db: asyncpg.Pool
) -> None:
    msg = await _sample(
        tmp_path,
        platform_db,
        (
            PAYMENT_LINK,
            "      - {table: users, column: user_id, kind: reference, detach: reassign,"
            " tombstone: 987654321}\n  newsletter_signups:",
        ),
    )
    assert "tables.payments.parents[0].tombstone: no row 987654321 in 'users'" in msg
    # The same as a mask: `reassign:<key>` moves the link to a row that must exist.
    msg = await _sample(tmp_path, platform_db, ('user_id: "null"', 'user_id: "reassign:987654321"'))
    assert "tables.payments.mask.user_id: no row '987654321' in 'users'" in msg
    msg = await _sample(tmp_path, platform_db, ('user_id: "null"', 'user_id: "reassign:ghost"'))
    assert (
        "tables.payments.mask.user_id: 'ghost' is not a value of column 'user_id' (bigint)" in msg
    )


async def test_detach_null_on_a_not_null_link(tmp_path: Path, platform_db: asyncpg.Pool) -> None:
    msg = await _sample(
        tmp_path, platform_db, (AUTHOR_LINK, AUTHOR_LINK.replace("kind: owned", "kind: reference"))
    )
    assert "tables.messages.parents[1].detach: messages.author_id is NOT NULL" in msg
    assert "use `detach: reassign` with a tombstone" in msg


@pytest.mark.parametrize(
    ("mask", "said"),
    [
        (
            'billing_name: "truncate:month"',
            "tables.payments.mask.billing_name: truncate needs a date or timestamp, "
            "but column 'billing_name' is text",
        ),
        (
            'billing_name: "round:10"',
            "tables.payments.mask.billing_name: round needs a number, "
            "but column 'billing_name' is text",
        ),
        (
            'amount_cents: "fixed:abc"',
            "tables.payments.mask.amount_cents: 'abc' is not a value of column 'amount_cents' "
            "(bigint)",
        ),
        (
            "amount_cents: hash",
            "tables.payments.mask.amount_cents: strategy hash writes text, "
            "but column 'amount_cents' is bigint",
        ),
        (
            'amount_cents: "null"',
            "tables.payments.mask.amount_cents: strategy null, but column 'amount_cents' is "
            "NOT NULL",
        ),
        (
            'paid_at: "round:100"',
            "tables.payments.mask.paid_at: round needs a number, but column 'paid_at' is "
            "timestamp with time zone",
        ),
    ],
)
async def test_masks_that_do_not_fit_their_column(
    tmp_path: Path, platform_db: asyncpg.Pool, mask: str, said: str
) -> None:
    msg = await _sample(tmp_path, platform_db, ("billing_name: redact", mask))
    assert said in msg


async def test_masks_that_fit_are_accepted(tmp_path: Path, platform_db: asyncpg.Pool) -> None:
    p = tmp_path / "map.yaml"
    p.write_text(
        SAMPLE.read_text().replace(
            "billing_name: redact",
            'billing_name: redact\n      amount_cents: "round:100"\n'
            '      paid_at: "truncate:month"\n      card_last4: "fixed:0000"',
            1,
        )
    )
    async with platform_db.acquire() as conn:
        await check_against_database(load_datamap(p), conn)


@pytest.mark.parametrize(
    ("where", "said"),
    [
        ("created_at >", "syntax error"),
        ("deleted_at IS NULL", 'column "deleted_at" does not exist'),
        ("event = 42", "operator does not exist: text = integer"),
    ],
)
async def test_a_row_filter_that_does_not_parse_or_names_an_unknown_column(
    tmp_path: Path, platform_db: asyncpg.Pool, where: str, said: str
) -> None:
    msg = await _sample(
        tmp_path,
        platform_db,
        ("  activity_logs:\n", f"  activity_logs:\n    where: {where!r}\n"),
    )
    assert f"tables.activity_logs.where: {where!r} is not a valid filter" in msg
    assert said in msg


async def test_a_live_foreign_key_that_makes_the_deletion_order_impossible(
    tmp_path: Path, platform_db: asyncpg.Pool
) -> None:
    # The map alone has no cycle: messages hang off users only, and conversations are
    # (absurdly) owned by a message through their own id. The database's foreign key
    # messages.conversation_id -> conversations makes each wait for the other.
    msg = await _sample(
        tmp_path,
        platform_db,
        ("      - {table: conversations, column: conversation_id, kind: owned}\n", ""),
        (
            "      - {table: users, column: user_id, kind: shared}\n",
            "      - {table: users, column: user_id, kind: shared}\n"
            "      - {table: messages, column: id, kind: owned}\n",
        ),
    )
    assert "links form a cycle" in msg and "(with the database's foreign keys)" in msg
    assert "conversations -> messages -> conversations" in msg or (
        "messages -> conversations -> messages" in msg
    )


# ------------------------------------------------------------------ a schema of its own

SCHEMA = """
CREATE TABLE store (store_id integer PRIMARY KEY, name text NOT NULL);
CREATE TABLE member (
    id        bigserial PRIMARY KEY,
    store_id  integer NOT NULL REFERENCES store (store_id),
    email     text NOT NULL,
    pin       varchar(4),
    nickname  varchar(40)
);
"""
HEAD = """version: 2
subject: {table: member, org_column: store_id, identities: {email: email}}
tables:
  member:
    primary_key: id
    org_column: store_id
"""


@pytest.fixture(scope="module")
async def small_db(prepared: infra.Endpoints) -> AsyncIterator[str]:
    dsn = await databases.create_database(prepared.platform_database_url, "mapchecks")
    try:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(SCHEMA)
        finally:
            await conn.close()
        yield dsn
    finally:
        await databases.drop_database(prepared.platform_database_url, dsn)


async def test_a_text_mask_longer_than_the_varchar(tmp_path: Path, small_db: str) -> None:
    conn = await asyncpg.connect(small_db)
    try:
        msg = await _refused(
            tmp_path,
            conn,
            HEAD + "    action: mask\n    mask: {pin: random_string, nickname: redact}\n",
        )
        assert (
            "tables.member.mask.pin: strategy random_string writes 28 characters, "
            "but column 'pin' is character varying(4)" in msg
        )
        assert "nickname" not in msg  # redact fits varchar(40)
        p = tmp_path / "ok.yaml"
        p.write_text(HEAD + '    action: mask\n    mask: {pin: "fixed:0000", nickname: redact}\n')
        await check_against_database(load_datamap(p), conn)
    finally:
        await conn.close()
