"""Resolving a scope: the organisation id fits, and the identities find one subject row
(more than one: `Ambiguous`, nothing is done)."""

from __future__ import annotations

import asyncpg

from shared.resolver.base import ResolverBase
from shared.resolver.scope import Ambiguous, Scope, ScopeError, Subject, ambiguity
from shared.resolver.sql import Params, key_text, q


class SubjectResolution(ResolverBase):
    async def check_org(self, conn: asyncpg.Connection, scope: Scope) -> None:
        dm = self.dm
        if dm.single_tenant:
            if scope.org_id != dm.platform_org:
                raise ScopeError(
                    f"this platform's data belongs to organisation {dm.platform_org!r} only"
                )
            if scope.organisation:
                raise ScopeError(
                    "the platform is single-tenant: an organisation erasure or export would "
                    "take the whole platform; refused"
                )
            return
        for name in self.dm.tables:
            t = self.dm.tables[name]
            if t.org_column is None or name not in self.live.columns:
                continue
            typ = self.live.type_of(name, t.org_column)
            try:
                await conn.fetchval(f"SELECT $1::text::{typ}", scope.org_id)
            except (asyncpg.DataError, asyncpg.PostgresError):
                raise ScopeError(
                    f"the organisation id is not a valid {typ} for {name}.{t.org_column}"
                ) from None

    async def resolve(self, conn: asyncpg.Connection, scope: Scope) -> Subject:
        """Check the scope and find the subject row; raises ScopeError / Ambiguous."""
        await self.check_org(conn, scope)
        if scope.identities is None:
            return Subject(scope)
        dm, s = self.dm, self.dm.subject
        usable = {k: v for k, v in scope.identities.items() if self.usable(s.identities, k)}
        ignored = tuple(sorted(set(scope.identities) - set(usable)))
        if not usable:
            raise ScopeError(
                "none of the identities given can be matched here "
                f"(the data map knows {', '.join(sorted(s.identities))})"
            )
        org_col = dm.subject_org_column
        matched: dict[str, set[str]] = {}
        for kind, value in sorted(usable.items()):
            p = Params()
            col = self.usable(s.identities, kind)
            assert col is not None
            slot = p.ref("v", self.normalise(kind, value))
            cond = self._identity_cond(s.table, "s", col, kind, slot)
            org = self._org_cond(s.table, "s", org_col, p, scope.org_id)
            rows = await conn.fetch(
                f"SELECT {key_text(dm, s.table, 's')} FROM {q(s.table)} s "
                f"WHERE {org} AND {cond} {self._filter(s.table, 's')} LIMIT 3",
                *p.values,
            )
            matched[kind] = {r[0] for r in rows}
        keys = set().union(*matched.values())
        if len(keys) > 1:
            raise Ambiguous(ambiguity(matched))
        return Subject(scope, tuple(sorted(keys)), ignored)
