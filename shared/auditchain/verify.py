"""Walk the chain and the checkpoints; name the first row or checkpoint that does not match.

Rows: each row's hash is recomputed from its contents and linked to the previous one, so an
edited, inserted or removed row is named. Checkpoints: each signature must verify under a
trusted key, and the row at the checkpoint's seq must have the signed hash, so a history
rewritten wholesale (every hash recomputed) is still caught at the first checkpoint after the
change. A pruned trail starts right after a checkpoint, whose signed hash anchors it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from shared.auditchain import checkpoints
from shared.auditchain.checkpoints import Checkpoint
from shared.auditchain.rows import GENESIS, check_row
from shared.readmodels import audit as store


@dataclass(frozen=True)
class Verdict:
    ok: bool
    rows: int
    checkpoints: int = 0
    first_bad_seq: int | None = None
    bad_checkpoint_seq: int | None = None
    reason: str | None = None
    unsigned_tail: int = 0  # rows after the last checkpoint (not yet covered by a signature)
    first_seq: int | None = None

    @property
    def kind(self) -> str:
        if self.ok:
            return "ok"
        return "checkpoint" if self.bad_checkpoint_seq is not None else "row"


async def _next(it: AsyncIterator[Checkpoint]) -> Checkpoint | None:
    try:
        return await anext(it)
    except StopAsyncIteration:
        return None


async def verify_chain(db: store.Db, trusted: dict[str, bytes] | None = None) -> Verdict:
    """Verify every row; with `trusted` public keys (key_id -> raw key), every checkpoint too."""
    cps = store.iter_checkpoints(db)
    cp = await _next(cps) if trusted is not None else None
    n_cps = 0
    prev, expected, count, last_signed = GENESIS, 1, 0, 0
    first_seq: int | None = None

    def bad_cp(c: Checkpoint, reason: str) -> Verdict:
        return Verdict(
            ok=False, rows=count, checkpoints=n_cps, bad_checkpoint_seq=c.seq, reason=reason
        )

    async for row in store.iter_rows(db):
        if first_seq is None:
            first_seq = row.seq
            if row.seq != 1:  # pruned: the trail must start right after a signed checkpoint
                anchor = None
                while trusted is not None and cp is not None and cp.seq < row.seq:
                    if (why := checkpoints.check(cp, trusted)) is not None:
                        return bad_cp(cp, f"checkpoint at seq {cp.seq}: {why}")
                    anchor, n_cps = cp, n_cps + 1
                    cp = await _next(cps)
                if trusted is not None and (anchor is None or anchor.seq != row.seq - 1):
                    return Verdict(
                        ok=False,
                        rows=0,
                        checkpoints=n_cps,
                        first_bad_seq=row.seq,
                        reason=f"trail starts at seq {row.seq} without a checkpoint at "
                        f"seq {row.seq - 1} to start from (rows removed at the start)",
                    )
                prev, expected = (anchor.head_hash if anchor else row.prev_hash), row.seq
        reason = check_row(row, prev, expected)
        if reason:
            return Verdict(
                ok=False, rows=count, checkpoints=n_cps, first_bad_seq=row.seq, reason=reason
            )
        prev, expected, count = row.hash, row.seq + 1, count + 1
        while trusted is not None and cp is not None and cp.seq <= row.seq:
            if (why := checkpoints.check(cp, trusted)) is not None:
                return bad_cp(cp, f"checkpoint at seq {cp.seq}: {why}")
            if cp.seq == row.seq and cp.head_hash != row.hash:
                return bad_cp(
                    cp,
                    f"checkpoint at seq {cp.seq} signed hash {cp.head_hash[:16]}..., the chain "
                    f"has {row.hash[:16]}...: history was rewritten",
                )
            n_cps, last_signed = n_cps + 1, cp.seq
            cp = await _next(cps)
    if cp is not None:
        return bad_cp(
            cp,
            f"checkpoint at seq {cp.seq} signs a row that is missing "
            f"(the chain ends at {expected - 1}): rows were removed from the end",
        )
    tail = (expected - 1 - last_signed) if trusted is not None and count else 0
    return Verdict(ok=True, rows=count, checkpoints=n_cps, unsigned_tail=tail, first_seq=first_seq)
