-- Connectors (docs/datamap.md, "Connectors"): what each call outside the platform database
-- came to, per erasure and connector (the eraser's record: a call recorded is not made again).
CREATE TABLE IF NOT EXISTS lethe.erase_connector_calls (
    job_id     uuid NOT NULL REFERENCES lethe.erase_tasks (job_id),
    connector  text NOT NULL,
    kind       text NOT NULL,
    outcome    text NOT NULL CHECK (outcome IN ('done', 'failed')),
    code       text,
    attempts   integer NOT NULL DEFAULT 0,
    tokens     integer,
    failed_tokens integer,
    at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, connector)
);

-- Manual connectors: one task per job and system, held by intake (it owns job state); the
-- job waits in `awaiting_tasks` after its purge until each is done or waived.
ALTER TABLE lethe.jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE lethe.jobs ADD CONSTRAINT jobs_status_check CHECK (status IN (
    'pending', 'running', 'soft_deleted', 'purging', 'awaiting_tasks', 'completed',
    'completed_with_errors', 'failed', 'cancelled', 'restored', 'ready', 'expired',
    'not_found', 'ambiguous', 'awaiting_approval', 'denied'));
CREATE TABLE IF NOT EXISTS lethe.job_tasks (
    job_id        uuid NOT NULL REFERENCES lethe.jobs (id) ON DELETE CASCADE,
    task          text NOT NULL,
    assignee      text NOT NULL,
    instructions  text NOT NULL DEFAULT '',
    status        text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done', 'waived')),
    reason        text,
    closed_by     text,
    opened_at     timestamptz NOT NULL DEFAULT now(),
    closed_at     timestamptz,
    reminded_at   timestamptz,
    reminders     integer NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, task)
);
CREATE INDEX IF NOT EXISTS job_tasks_open ON lethe.job_tasks (opened_at) WHERE status = 'open';
