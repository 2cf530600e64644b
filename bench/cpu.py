"""CPU seconds used by the processes a bench started (Linux /proc): each process recorded in
a state directory's `run/<name>.pid`, with all its descendants (Postgres backends, Kafka's
threads), and the bench itself. Where a burst's CPU goes on a shared machine, where wall time
says little."""

from __future__ import annotations

import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds: user + system)."""
    found = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            raw = (d / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        fields = raw[raw.rindex(")") + 2 :].split()  # after the command name (may hold spaces)
        found[int(d.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK)
    return found


def cpu_seconds(state_dirs: list[Path]) -> dict[str, float]:
    """CPU seconds so far per process name of the state directories, and "bench"."""
    roots: dict[int, str] = {}
    for state_dir in state_dirs:
        for pid_file in (state_dir / "run").glob("*.pid"):
            try:
                roots[int(pid_file.read_text().split()[0])] = pid_file.stem
            except (OSError, ValueError, IndexError):
                continue
    procs = _processes()
    total: dict[str, float] = {}
    for pid, (_, cpu) in procs.items():
        p, hops = pid, 0
        while p and p not in roots and hops < 64:
            p, hops = procs.get(p, (0, 0.0))[0], hops + 1
        if p in roots:
            total[roots[p]] = total.get(roots[p], 0.0) + cpu
    user, system = os.times()[:2]
    total["bench"] = user + system
    return total


def cpu_used(before: dict[str, float], after: dict[str, float]) -> str:
    """`name seconds, ...`, most first."""
    used = {k: v - before.get(k, 0.0) for k, v in after.items()}
    return ", ".join(f"{k} {v:.1f}" for k, v in sorted(used.items(), key=lambda kv: -kv[1]))
