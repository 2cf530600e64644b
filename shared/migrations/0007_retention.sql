-- Issue 7: retention policies per organisation and category, the scheduler's record of
-- which periods ran (one run per period, whichever replica leads), retention jobs in the
-- normal job table, and the deadline reminders already sent (once per job and kind).

ALTER TABLE lethe.jobs DROP CONSTRAINT jobs_type_check;
ALTER TABLE lethe.jobs ADD CONSTRAINT jobs_type_check
    CHECK (type IN ('erasure', 'export', 'retention'));
ALTER TABLE lethe.jobs DROP CONSTRAINT jobs_scope_check;
ALTER TABLE lethe.jobs ADD CONSTRAINT jobs_scope_check
    CHECK (scope IN ('subject', 'organisation', 'category'));

-- Days per category; a category without a row uses the data map's default.
CREATE TABLE lethe.retention_policies (
    org_id      text NOT NULL REFERENCES lethe.organisations (id),
    category    text NOT NULL,
    days        integer NOT NULL CHECK (days BETWEEN 1 AND 3650),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text NOT NULL,
    PRIMARY KEY (org_id, category)
);

-- One row per scheduled period: inserted with the period's jobs in one transaction, so a
-- period never runs twice (two leaders for a moment still insert it once).
CREATE TABLE lethe.scheduler_runs (
    name     text NOT NULL,
    period   timestamptz NOT NULL,
    ran_at   timestamptz NOT NULL DEFAULT now(),
    ran_by   text NOT NULL,
    jobs     integer NOT NULL DEFAULT 0,
    PRIMARY KEY (name, period)
);

-- What a retention job asked for and what it did (the eraser's record of it).
CREATE TABLE lethe.retention_runs (
    job_id      uuid PRIMARY KEY,
    org_id      text,
    category    text NOT NULL,
    cutoff      timestamptz NOT NULL,
    status      text NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
    stats       jsonb NOT NULL DEFAULT '{}',
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);

-- Objects a retention run deletes: recorded before the delete (intent), marked after;
-- one still 'pending' after a run is a manual-review item and is retried next run.
CREATE TABLE lethe.retention_objects (
    key         text PRIMARY KEY,
    job_id      uuid,
    table_name  text NOT NULL,
    state       text NOT NULL CHECK (state IN ('pending', 'deleted')),
    error       text,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX retention_objects_pending ON lethe.retention_objects (table_name)
    WHERE state = 'pending';

CREATE TABLE lethe.deadline_reminders (
    job_id   uuid NOT NULL REFERENCES lethe.jobs (id),
    kind     text NOT NULL CHECK (kind IN ('deadline_approaching', 'deadline_passed')),
    sent_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, kind)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON lethe.retention_policies, lethe.scheduler_runs,
    lethe.retention_runs, lethe.retention_objects, lethe.deadline_reminders TO lethe_app;
