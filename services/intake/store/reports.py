"""The compliance report's figures, computed by Postgres in one statement over the org's jobs
(`domain.reports` puts them together; what each figure means is written there)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.intake.store.db import Db

# The requests received in [$2, $3), each with its month (UTC), its channel (an OpenDSR request
# and a bulk request's member are recorded as `http` or `kafka`: their opendsr_requests row,
# or a bulk row made with the job (not one linked later to an older job), tells), its deadline
# (the extended one if any), and, once closed, when: the first event that closed it ($5), else
# its last event.
_REQUESTS = """
SELECT j.type, j.regulation,
       CASE WHEN o.job_id IS NOT NULL THEN 'opendsr'
            WHEN EXISTS (SELECT 1 FROM lethe.bulk_subjects b
                           JOIN lethe.bulk_jobs bj ON bj.id = b.bulk_id
                          WHERE b.job_id = j.id AND bj.created_at = j.received_at) THEN 'bulk'
            ELSE j.channel END AS channel,
       to_char(j.received_at AT TIME ZONE 'UTC', 'YYYY-MM') AS month,
       j.received_at,
       coalesce(j.extended_due_at, j.due_at) AS due,
       j.extended_due_at IS NOT NULL AS extended,
       j.status = ANY($4::text[]) AS closed,
       CASE WHEN j.status = ANY($4::text[]) THEN coalesce(
           (SELECT min(e.occurred_at) FROM lethe.job_events e
             WHERE e.job_id = j.id AND e.type = ANY($5::text[])),
           j.last_event_at, j.updated_at) END AS closed_at
  FROM lethe.jobs j
  LEFT JOIN lethe.opendsr_requests o ON o.job_id = j.id
 WHERE j.org_id = $1 AND j.type <> 'retention'
   AND j.received_at >= $2 AND j.received_at < $3
"""

# Per month and for the whole range (month NULL): the counts and close times; and per month
# and range, the requests by type, by channel and by regulation (`dimension`, `key`).
_FIGURES = f"""
WITH r AS ({_REQUESTS}),
t AS (SELECT *, extract(epoch FROM closed_at - received_at)::float8 AS seconds FROM r)
SELECT CASE WHEN GROUPING(month) = 0 THEN month END AS month,
       CASE WHEN GROUPING(type) = 0 THEN 'type'
            WHEN GROUPING(channel) = 0 THEN 'channel'
            WHEN GROUPING(regulation) = 0 THEN 'regulation' END AS dimension,
       coalesce(
           CASE WHEN GROUPING(type) = 0 THEN type END,
           CASE WHEN GROUPING(channel) = 0 THEN channel END,
           CASE WHEN GROUPING(regulation) = 0 THEN regulation END) AS key,
       count(*) AS requests,
       count(*) FILTER (WHERE closed) AS closed,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS median_seconds,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds) AS p90_seconds,
       count(*) FILTER (WHERE closed AND closed_at <= due) AS on_time,
       count(*) FILTER (WHERE (closed AND closed_at > due) OR (NOT closed AND due < $6))
           AS late,
       count(*) FILTER (WHERE NOT closed) AS open,
       count(*) FILTER (WHERE NOT closed AND due < $6) AS overdue,
       count(*) FILTER (WHERE extended) AS extended
  FROM t
 GROUP BY GROUPING SETS (
       (month), (),
       (month, type), (type),
       (month, channel), (channel),
       (month, regulation), (regulation))
"""


async def compliance_figures(
    db: Db,
    org_id: str,
    start: datetime,
    end: datetime,
    now: datetime,
    *,
    closed_states: tuple[str, ...],
    closing_events: tuple[str, ...],
) -> list[dict[str, Any]]:
    """Requests received in [start, end); `now` decides what is overdue. Percentiles are
    linear interpolations (percentile_cont) over the closed requests' seconds to close."""
    rows = await db.fetch(
        _FIGURES, org_id, start, end, list(closed_states), list(closing_events), now
    )
    return [dict(r) for r in rows]
