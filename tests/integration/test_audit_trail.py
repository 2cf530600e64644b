"""The audit trail against real Postgres: checkpoints, tampering caught by `lethe audit
verify`, the app role's limits, replicas, retention and the offline-verifiable export.

Tests that rewrite history (as a superuser would) do it in a database of their own, made by
the same migrations, so the shared chain stays intact for every other test.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import uuid
import zipfile
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from deploy.local import infra
from services.auditor import maintenance, store
from services.auditor.app import create_app as create_auditor
from services.auditor.domain import canonical_json, row_hash
from services.auditor.export import export
from services.auditor.keys import dev_seed, key_id, public_raw
from services.auditor.settings import AuditorSettings
from services.auditor.store import Signer
from shared.auditchain.verify import verify_chain
from shared.db import _init_connection, create_pool, migrate
from shared.events import Actor, make_event
from shared.events.progress import BatchErased
from shared.events.topics import AUDIT
from tests.helpers import eventually, find_record

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
ACTOR = Actor(kind="service", id="test")
KEY = Ed25519PrivateKey.from_private_bytes(dev_seed())
PUBLIC = public_raw(KEY.public_key())
TRUSTED = {key_id(PUBLIC): PUBLIC}


class Scratch:
    def __init__(self, dsn: str, pool: asyncpg.Pool) -> None:
        self.dsn, self.pool = dsn, pool


@pytest.fixture
async def scratch(prepared: infra.Endpoints) -> AsyncIterator[Scratch]:
    """A fresh Lethe database (all migrations) on the test Postgres, dropped afterwards."""
    name = f"lethe_t_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(prepared.database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = prepared.database_url.rsplit("/", 1)[0] + f"/{name}"
    await migrate(dsn)
    pool = await create_pool(dsn)
    try:
        yield Scratch(dsn, pool)
    finally:
        await pool.close()
        admin = await asyncpg.connect(prepared.database_url)
        try:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def _event(org: str = "org-a", i: int = 0, job: uuid.UUID | None = None) -> Any:
    return make_event(
        BatchErased(
            table="messages",
            rows=i,
            objects=0,
            done=i,
            total=100,
            rows_per_second=12.5,
            eta_seconds=None,
        ),
        actor=ACTOR,
        org_id=org,
        job_id=job,
    )


async def _fill(pool: asyncpg.Pool, n: int, every: int = 5, **kw: Any) -> None:
    signer = Signer(KEY, every)
    for i in range(n):
        await store.append(pool, _event(i=i, **kw), signer=signer)


async def create_pool_as(dsn: str, role: str) -> asyncpg.Pool:
    async def init(conn: asyncpg.Connection) -> None:
        await _init_connection(conn)
        await conn.execute(f"SET ROLE {role}")

    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, init=init)
    assert pool is not None
    return pool


def lethe_cli(*args: str, dsn: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `lethe ...` as an operator would, pointed at `dsn` by environment variables, in
    this process (typer's CliRunner, in a thread of its own: the command runs its own event
    loop): a new interpreter importing the whole CLI cost seconds a call."""
    overlay = {"DATABASE_URL": dsn, "LETHE_ENV_FILE": "/nonexistent", "COLUMNS": "200", **env}
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(_cli_in_process, list(args), overlay).result()


def lethe_cli_process(*args: str, dsn: str) -> subprocess.CompletedProcess[str]:
    """`lethe_cli` as a process of its own (the entry point itself)."""
    full = {**os.environ, "DATABASE_URL": dsn, "LETHE_ENV_FILE": "/nonexistent", "COLUMNS": "200"}
    full.pop("LETHE_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-c", "from services.cli import app; app()", *args],
        cwd=REPO,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _cli_in_process(args: list[str], overlay: dict[str, str]) -> subprocess.CompletedProcess[str]:
    from typer.testing import CliRunner

    from services.cli import app

    env: dict[str, str | None] = {**overlay, "LETHE_DATABASE_URL": None}
    r = CliRunner().invoke(app, args, env=env)
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return subprocess.CompletedProcess(args, r.exit_code, r.stdout, r.stderr)


async def _superuser(pool: asyncpg.Pool, *statements: tuple[str, list[Any]]) -> None:
    """What a database superuser can do: switch the triggers off and edit history."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE lethe.audit_log DISABLE TRIGGER USER")
        await conn.execute("ALTER TABLE lethe.audit_checkpoints DISABLE TRIGGER USER")
        for sql, args in statements:
            await conn.execute(sql, *args)
        await conn.execute("ALTER TABLE lethe.audit_log ENABLE TRIGGER USER")
        await conn.execute("ALTER TABLE lethe.audit_checkpoints ENABLE TRIGGER USER")


async def test_checkpoints_sign_the_head_every_n_rows(scratch: Scratch) -> None:
    await _fill(scratch.pool, 12, every=5)
    seqs = [r["seq"] for r in await scratch.pool.fetch("SELECT seq FROM lethe.audit_checkpoints")]
    assert seqs == [5, 10]
    cp = await store.checkpoint_head(scratch.pool, KEY)  # the timer's path
    assert cp is not None and cp.seq == 12
    assert await store.checkpoint_head(scratch.pool, KEY) is None  # head already signed
    v = await verify_chain(scratch.pool, TRUSTED)
    assert v.ok and v.rows == 12 and v.checkpoints == 3 and v.unsigned_tail == 0, v
    r = lethe_cli_process("audit", "verify", dsn=scratch.dsn)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "OK: 12 rows, 3 signed checkpoints" in r.stdout


async def test_the_app_role_may_only_insert_and_select(scratch: Scratch) -> None:
    await _fill(scratch.pool, 3, every=3)
    async with scratch.pool.acquire() as conn:
        for sql in (
            "UPDATE lethe.audit_log SET action = 'x' WHERE seq = 1",
            "DELETE FROM lethe.audit_log WHERE seq = 1",
            "TRUNCATE lethe.audit_log",
            "UPDATE lethe.audit_checkpoints SET head_hash = 'x'",
            "DELETE FROM lethe.audit_checkpoints",
        ):
            async with conn.transaction():
                await conn.execute("SET LOCAL ROLE lethe_app")
                # Even with the pruner's switch set by hand: no DELETE privilege at all.
                await conn.execute("SET LOCAL lethe.audit_prune_through = '100'")
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                    await conn.execute(sql)
        async with conn.transaction():
            await conn.execute("SET LOCAL ROLE lethe_app")
            assert await conn.fetchval("SELECT count(*) FROM lethe.audit_log") == 3
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="at least 365 days"):
                await conn.fetchval("SELECT lethe.audit_prune(interval '30 days')")
        async with conn.transaction():
            await conn.execute("SET LOCAL ROLE lethe_app")
            assert await conn.fetchval("SELECT lethe.audit_prune(interval '6 years')") == 0
    # ...and appends, checkpoints included, through the auditor's own code.
    app_pool = await create_pool_as(scratch.dsn, "lethe_app")
    try:
        assert await app_pool.fetchval("SELECT current_user") == "lethe_app"
        assert await store.append(app_pool, _event(i=99), signer=Signer(KEY, 2)) is not None
    finally:
        await app_pool.close()
    assert (await verify_chain(scratch.pool, TRUSTED)).ok


async def test_verify_names_a_row_a_superuser_changed(scratch: Scratch) -> None:
    await _fill(scratch.pool, 9, every=5)
    await _superuser(
        scratch.pool,
        ("UPDATE lethe.audit_log SET details = details || '{\"rows\": 0}' WHERE seq = 7", []),
    )
    r = lethe_cli("audit", "verify", dsn=scratch.dsn)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "BROKEN at row 7: hash does not match the row's contents" in r.stdout


async def test_a_rewritten_chain_is_caught_by_the_checkpoint_signature(scratch: Scratch) -> None:
    await _fill(scratch.pool, 10, every=5)
    # The superuser rewrites row 3 and recomputes every hash after it: the chain is consistent.
    rows = [r async for r in store.iter_rows(scratch.pool)]
    statements: list[tuple[str, list[Any]]] = []
    prev = rows[1].hash
    for row in rows[2:]:
        details = {**row.details, "rows": 0} if row.seq == 3 else row.details
        fields = {k: v for k, v in row.__dict__.items() if k not in ("prev_hash", "hash")}
        fields["details"] = details
        new_hash = row_hash(prev, **fields)
        statements.append(
            (
                "UPDATE lethe.audit_log SET details = $2, prev_hash = $3, hash = $4 WHERE seq = $1",
                [row.seq, details, prev, new_hash],
            )
        )
        prev = new_hash
    await _superuser(scratch.pool, *statements)
    assert (await verify_chain(scratch.pool)).ok  # the hash chain alone no longer tells
    r = lethe_cli("audit", "verify", dsn=scratch.dsn)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "BAD CHECKPOINT at seq 5" in r.stdout and "history was rewritten" in r.stdout

    # ...and moving the checkpoints along with it breaks their signatures.
    new5 = await scratch.pool.fetchval("SELECT hash FROM lethe.audit_log WHERE seq = 5")
    await _superuser(
        scratch.pool,
        ("UPDATE lethe.audit_checkpoints SET head_hash = $1 WHERE seq = 5", [new5]),
    )
    r = lethe_cli("audit", "verify", dsn=scratch.dsn)
    assert r.returncode == 2 and "seq 5: signature does not verify" in r.stdout, r.stdout


async def test_a_checkpoint_signed_by_another_key_is_refused(scratch: Scratch) -> None:
    await _fill(scratch.pool, 4, every=0)
    await store.checkpoint_head(scratch.pool, Ed25519PrivateKey.generate())
    v = await verify_chain(scratch.pool, TRUSTED)
    assert not v.ok and v.bad_checkpoint_seq == 4 and "not a trusted key" in (v.reason or "")


async def test_rows_removed_from_the_end_are_caught(scratch: Scratch) -> None:
    await _fill(scratch.pool, 10, every=5)
    await _superuser(scratch.pool, ("DELETE FROM lethe.audit_log WHERE seq >= 4", []))
    v = await verify_chain(scratch.pool, TRUSTED)
    assert not v.ok and v.bad_checkpoint_seq == 5 and "removed from the end" in (v.reason or "")


async def test_two_auditor_replicas_make_one_chain(scratch: Scratch) -> None:
    """Two replicas (own pools, as two processes would have) append the same events at once,
    each also seeing the other's events redelivered."""
    events = [_event(i=i) for i in range(60)]
    a, b = (await create_pool(scratch.dsn), await create_pool(scratch.dsn))
    try:
        signer = Signer(KEY, 7)
        await asyncio.gather(
            *(store.append(a, e, signer=signer) for e in events),
            *(store.append(b, e, signer=signer) for e in reversed(events)),
            *(store.checkpoint_head(p, KEY) for p in (a, b) for _ in range(3)),
        )
    finally:
        await a.close()
        await b.close()
    assert await scratch.pool.fetchval("SELECT count(*) FROM lethe.audit_log") == 60
    v = await verify_chain(scratch.pool, TRUSTED)
    assert v.ok and v.rows == 60 and v.checkpoints >= 8, v


async def test_retention_prunes_to_a_checkpoint_and_the_rest_verifies(scratch: Scratch) -> None:
    old = datetime.now(UTC) - timedelta(days=7 * 365)
    signer = Signer(KEY, 4)
    for i in range(10):  # seven-year-old rows; checkpoints at 4 and 8
        await store.append(scratch.pool, _event(i=i), signer=signer, recorded_at=old)
    for i in range(5):
        await store.append(scratch.pool, _event(i=100 + i), signer=signer)
    # A plain DELETE is still refused, superuser or not, outside the prune function.
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await scratch.pool.execute("DELETE FROM lethe.audit_log WHERE seq = 1")

    deleted = await maintenance.prune(scratch.pool, signer, 6 * 365)
    assert deleted == 8  # up to the newest checkpoint before the first young row
    first = await scratch.pool.fetchval("SELECT min(seq) FROM lethe.audit_log")
    assert first == 9
    assert (
        await scratch.pool.fetchval(
            "SELECT details->>'rows_deleted' FROM lethe.audit_log WHERE action = 'AuditPruned'"
        )
        == "8"
    )
    v = await verify_chain(scratch.pool, TRUSTED)
    assert v.ok and v.first_seq == 9, v
    r = lethe_cli("audit", "verify", dsn=scratch.dsn)
    assert r.returncode == 0 and "older rows pruned" in r.stdout, r.stdout
    # Removing rows after the anchor by hand is still caught.
    await _superuser(scratch.pool, ("DELETE FROM lethe.audit_log WHERE seq = 9", []))
    v = await verify_chain(scratch.pool, TRUSTED)
    assert not v.ok and v.first_bad_seq == 10 and "without a checkpoint" in (v.reason or "")


def _offline(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The export's own script, run as a regulator would: outside the repository."""
    return subprocess.run(
        [sys.executable, "-I", str(folder / "verify_audit.py"), str(folder), *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _unzip(path: Path, to: Path) -> Path:
    with zipfile.ZipFile(path) as zf:
        zf.extractall(to)
    return to


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
async def test_an_export_verifies_offline(scratch: Scratch, tmp_path: Path, fmt: str) -> None:
    job = uuid.uuid4()
    await _fill(scratch.pool, 6, every=5, org="org-a", job=job)
    await _fill(scratch.pool, 3, every=5, org="org-b")
    r = lethe_cli(
        "audit", "export", "--format", fmt, "--out", str(tmp_path / "a.zip"), dsn=scratch.dsn
    )
    assert r.returncode == 0, r.stdout + r.stderr
    folder = _unzip(tmp_path / "a.zip", tmp_path / "a")
    assert {p.name for p in folder.iterdir()} >= {
        f"audit.{fmt}",
        "checkpoints.jsonl",
        "public_key.txt",
        "public_key.pem",
        "README.md",
        "verify_audit.py",
        "manifest.json",
    }
    key = base64.b64encode(PUBLIC).decode()
    ok = _offline(folder, "--public-key", key)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "OK: rows 1..9: 9 verified in full" in ok.stdout and "not yet signed" not in ok.stdout

    # One changed character in one row is named.
    data = (folder / f"audit.{fmt}").read_text()
    head, *parts = data.split("BatchErased")
    parts[4] = "Erased" + parts[4]  # row 5's action becomes "BatchErasedErased"
    (folder / f"audit.{fmt}").write_text("BatchErased".join([head, *parts]))
    bad = _offline(folder, "--public-key", key)
    assert bad.returncode == 1 and "BAD ROW 5" in bad.stdout, bad.stdout


async def test_an_org_export_links_other_orgs_rows(scratch: Scratch, tmp_path: Path) -> None:
    for i in range(8):
        await store.append(
            scratch.pool, _event(org="org-a" if i % 2 else "org-b", i=i), signer=Signer(KEY, 5)
        )
    out = tmp_path / "a.zip"
    summary = await export(scratch.pool, out, public_key=PUBLIC, org_id="org-a")
    assert summary is not None and summary.rows == 4 and summary.links == 4
    folder = _unzip(out, tmp_path / "a")
    lines = [json.loads(x) for x in (folder / "audit.jsonl").read_text().splitlines()]
    assert all(x.get("redacted") or x["org_id"] == "org-a" for x in lines)
    assert "org-b" not in (folder / "audit.jsonl").read_text()
    r = _offline(folder)
    assert r.returncode == 0 and "4 verified in full, 4 links" in r.stdout, r.stdout
    # A forged checkpoint signature is refused offline too.
    cps = (folder / "checkpoints.jsonl").read_text().splitlines()
    forged = json.loads(cps[0]) | {"head_hash": "0" * 64}
    (folder / "checkpoints.jsonl").write_text(canonical_json(forged) + "\n")
    r = _offline(folder)
    assert r.returncode == 2 and "BAD CHECKPOINT" in r.stdout, r.stdout


async def test_the_documented_openssl_check_verifies_a_checkpoint(
    scratch: Scratch, tmp_path: Path
) -> None:
    await _fill(scratch.pool, 5, every=5)
    out = tmp_path / "a.zip"
    await export(scratch.pool, out, public_key=PUBLIC)
    folder = _unzip(out, tmp_path / "a")
    cp = json.loads((folder / "checkpoints.jsonl").read_text().splitlines()[0])
    script = (
        "printf 'lethe-audit-checkpoint/v1\\nseq=%s\\nhead_hash=%s\\nsigned_at=%s\\nkey_id=%s\\n' "
        '"$seq" "$head_hash" "$signed_at" "$key_id" > msg\n'
        'echo "$signature" | base64 -d > sig\n'
        "openssl pkeyutl -verify -pubin -inkey public_key.pem -rawin -in msg -sigfile sig\n"
    )
    r = _bash(script, folder, {k: str(v) for k, v in cp.items()})
    if r.returncode != 0 and "pkeyutl" in r.stderr and "rawin" in r.stderr:
        pytest.skip("this openssl has no -rawin (OpenSSL < 3)")
    assert r.returncode == 0 and "Signature Verified Successfully" in r.stdout, r.stderr


def _bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", script],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


async def test_an_export_by_time_range_still_ends_at_a_checkpoint(
    scratch: Scratch, tmp_path: Path
) -> None:
    old = datetime.now(UTC) - timedelta(days=3)
    signer = Signer(KEY, 4)
    for i in range(6):
        await store.append(scratch.pool, _event(i=i), signer=signer, recorded_at=old)
    for i in range(6):
        await store.append(scratch.pool, _event(i=10 + i), signer=signer)
    since = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    r = lethe_cli(
        "audit", "export", "--from", since, "--out", str(tmp_path / "a.zip"), dsn=scratch.dsn
    )
    assert r.returncode == 0, r.stdout + r.stderr
    folder = _unzip(tmp_path / "a.zip", tmp_path / "a")
    manifest = json.loads((folder / "manifest.json").read_text())
    # Rows 7..12 asked for; 5..6 come as links so the run starts right after checkpoint 4.
    assert (manifest["first_seq"], manifest["last_seq"], manifest["rows"]) == (5, 12, 6)
    ok = _offline(folder)
    assert ok.returncode == 0 and "6 verified in full, 2 links" in ok.stdout, ok.stdout
    r = lethe_cli("audit", "export", "--from", "2999-01-01", dsn=scratch.dsn)
    assert r.returncode == 0 and "no audit rows in that range" in r.stdout


async def test_two_auditor_apps_fed_every_event_keep_one_chain(
    scratch: Scratch, base_settings: dict[str, Any], prepared: infra.Endpoints
) -> None:
    """The worst case for replicas: two auditor apps on Kafka that both receive every event
    (each in a consumer group of its own) and append into one database at once."""
    org = f"org-{uuid.uuid4().hex[:8]}"
    settings = AuditorSettings(
        **{**base_settings, "database_url": scratch.dsn},
        audit_checkpoint_every_rows=9,
        audit_checkpoint_every_seconds=0.2,
    )
    tag = uuid.uuid4().hex[:8]
    a = create_auditor(settings, group_id=f"test-auditor-a-{tag}")
    b = create_auditor(settings, group_id=f"test-auditor-b-{tag}")
    events = [_event(org=org, i=i) for i in range(40)]
    async with a, b:
        producer = AIOKafkaProducer(bootstrap_servers=prepared.kafka_bootstrap_servers)
        await producer.start()
        try:
            for e in events:
                await producer.send(AUDIT, e.model_dump_json().encode(), key=e.key())
            await producer.flush()
        finally:
            await producer.stop()

        async def all_in() -> bool:
            n = await scratch.pool.fetchval(
                "SELECT count(*) FROM lethe.audit_log WHERE org_id = $1", org
            )
            return bool(n == len(events))

        await eventually(all_in, what="every event in the chain", timeout=90)

        async def head_signed() -> bool:
            v = await verify_chain(scratch.pool, TRUSTED)
            return v.checkpoints >= 1 and v.unsigned_tail == 0

        await eventually(head_signed, what="the timer to sign the head", timeout=30)
    ids = [
        r["event_id"]
        for r in await scratch.pool.fetch(
            "SELECT event_id FROM lethe.audit_log WHERE org_id = $1 ORDER BY seq", org
        )
    ]
    assert ids == [e.event_id for e in events]  # once each, in the topic's order
    v = await verify_chain(scratch.pool, TRUSTED)
    assert v.ok and v.checkpoints >= 1 and v.unsigned_tail == 0, v


async def test_signing_key_management_is_audited(
    scratch: Scratch, base_settings: dict[str, Any], prepared: infra.Endpoints
) -> None:
    """A trusted public key added or withdrawn shows in the chain at the auditor's next start,
    and `lethe audit keygen` records the new key's id (never its seed)."""
    from services.auditor.bootstrap import open_deps

    other = Ed25519PrivateKey.generate()
    other_pub = public_raw(other.public_key())
    listed = {**base_settings, "database_url": scratch.dsn}

    async def start(public_keys: str) -> list[dict[str, Any]]:
        async with open_deps(AuditorSettings(**listed, audit_public_keys=public_keys)):
            pass
        rows = await scratch.pool.fetch(
            "SELECT details FROM lethe.audit_log WHERE action = 'AuditTrustedKeysChanged' "
            "ORDER BY seq"
        )
        return [r["details"] for r in rows]

    own = key_id(PUBLIC)  # the dev signing key of the test settings
    first = await start(base64.b64encode(other_pub).decode())
    assert [(r["added"], r["removed"]) for r in first] == [(sorted([own, key_id(other_pub)]), [])]
    assert len(await start(base64.b64encode(other_pub).decode())) == 1  # unchanged: no row
    withdrawn = await start("")
    assert (withdrawn[-1]["added"], withdrawn[-1]["removed"]) == ([], [key_id(other_pub)])

    env = {"LETHE_KAFKA_BOOTSTRAP_SERVERS": prepared.kafka_bootstrap_servers}
    r = await asyncio.to_thread(lethe_cli, "audit", "keygen", dsn=scratch.dsn, **env)
    assert r.returncode == 0 and "NOT recorded" not in r.stderr, r.stdout + r.stderr
    seed = r.stdout.split("LETHE_AUDIT_SIGNING_KEY=")[1].split()[0]
    made = key_id(
        public_raw(Ed25519PrivateKey.from_private_bytes(base64.b64decode(seed)).public_key())
    )

    async def recorded() -> bytes | None:
        try:
            return await find_record(
                prepared.kafka_bootstrap_servers,
                AUDIT,
                lambda rec: b"AuditSigningKeyGenerated" in rec.value and made.encode() in rec.value,
            )
        except AssertionError:
            return None

    raw = await eventually(recorded, what="AuditSigningKeyGenerated", timeout=30)
    assert seed.encode() not in raw and json.loads(raw)["actor"]["kind"] == "operator"
