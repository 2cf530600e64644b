-- The full job lifecycle (issue 3/4): soft delete with a recovery window, purge, restore.
ALTER TABLE lethe.jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE lethe.jobs ADD CONSTRAINT jobs_status_check CHECK (status IN (
    'pending', 'running', 'soft_deleted', 'purging', 'completed', 'completed_with_errors',
    'failed', 'cancelled', 'restored', 'ready', 'expired'));
ALTER TABLE lethe.jobs ADD COLUMN purge_after timestamptz;
ALTER TABLE lethe.jobs ADD COLUMN needs_review jsonb NOT NULL DEFAULT '[]';
-- Who to tell (the requester: staff or upstream, not the data subject), and what was asked:
-- the fingerprint tells a repeated idempotency key with a different body (409).
ALTER TABLE lethe.jobs ADD COLUMN requester_email text;
ALTER TABLE lethe.jobs ADD COLUMN request_fingerprint text;
ALTER TABLE lethe.jobs ADD COLUMN reason text;
ALTER TABLE lethe.jobs ADD COLUMN extension_reason text;
CREATE INDEX jobs_org_due ON lethe.jobs (org_id, due_at);

-- The job's timeline (GET /v1/jobs/{id}/events): no personal data, as in the audit trail.
CREATE TABLE lethe.job_events (
    event_id     uuid PRIMARY KEY,
    job_id       uuid NOT NULL REFERENCES lethe.jobs (id),
    type         text NOT NULL,
    occurred_at  timestamptz NOT NULL,
    actor        text NOT NULL,
    details      jsonb NOT NULL
);
CREATE INDEX job_events_job ON lethe.job_events (job_id, occurred_at);
