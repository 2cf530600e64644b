"""The draft as YAML text, every table's `# review:` lines above it."""

from __future__ import annotations

import json
import re

from shared.datamap_draft.model import Draft, Relation

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_YAML_WORDS = frozenset({"null", "true", "false", "yes", "no", "on", "off", "y", "n"})


def _s(value: str) -> str:
    """A YAML scalar: plain for identifiers, double-quoted (JSON) otherwise."""
    if _PLAIN.match(value) and value.lower() not in _YAML_WORDS:
        return value
    return json.dumps(value)


def _cols(cols: tuple[str, ...]) -> str:
    return _s(cols[0]) if len(cols) == 1 else "[" + ", ".join(_s(c) for c in cols) + "]"


def _relation(r: Relation) -> str:
    detach = f', detach: "{r.detach}"' if r.detach else ""
    return f"{{table: {_s(r.table)}, column: {_cols(r.column)}, kind: {r.kind}{detach}}}"


def render_draft(d: Draft, *, source: str = "the live database") -> str:
    out = [
        f"# Draft data map (version 2, docs/datamap.md) written by `lethe datamap draft` from "
        f"{source}.",
        "# Nothing here is decided: read every `# review:` line, then run `lethe datamap check`.",
        *(f"# note: {n}" for n in d.notes),
        "version: 2",
        "subject:",
        *(f"  # review: {line}" for line in d.subject_review),
        f"  table: {_s(d.subject)}",
    ]
    if d.subject_org_column:
        out.append(f"  org_column: {_s(d.subject_org_column)}")
    out.append("  identities:")
    out += [f"    {kind}: {_s(col)}" for kind, col in d.subject_identities.items()]
    if d.platform_org is not None:
        out.append(
            f"platform_org: {_s(d.platform_org)}  # review: single-tenant (no org column): "
            "the Lethe organisation this platform is"
        )
    out.append("tables:")
    for t in d.tables.values():
        out.append(f"  {_s(t.name)}:")
        out += [f"    # review: {line}" for line in t.review]
        out.append(f"    primary_key: {_cols(t.primary_key) if t.primary_key else '[]'}")
        if t.org_column:
            out.append(f"    org_column: {_s(t.org_column)}")
        out.append(f"    action: delete  # review: {_ACTION_HINT[t.role]}")
        if t.identities:
            pairs = ", ".join(f"{k}: {_s(v)}" for k, v in t.identities.items())
            out.append(f"    identities: {{{pairs}}}")
        for key, relations in (("parents", t.parents), ("referenced_by", t.referenced_by)):
            if relations:
                out.append(f"    {key}:")
                out += [f"      - {_relation(r)}" for r in relations]
    if d.not_mapped:
        out.append(
            "# not mapped (no link to the subject, no identity, no org column): "
            + ", ".join(d.not_mapped)
        )
    return "\n".join(out) + "\n"


_ACTION_HINT = {
    "subject": "the subject's own row",
    "owned": "delete, mask or keep",
    "shared": "goes only when nothing else references it",
    "identities": "rows matched by identity",
    "org": "org scope only: all its rows of the organisation",
    "organisations": "org scope only",
}
