-- Issue 17, items 3 and 4: an approval step per organisation and channel, and duplicate
-- requests linked to the open job they repeat.

-- 1. Approval: the entry points (channels) whose new jobs wait for an admin's decision.
--    Empty (the default): no approval step anywhere. Set by owners (PUT /v1/orgs/{org}/approvals,
--    the web UI's Approvals page); each change audited (OrgApprovalChanged).
ALTER TABLE lethe.organisations
    ADD COLUMN approval_channels text[] NOT NULL DEFAULT '{}'
    CHECK (approval_channels <@ ARRAY['api', 'web', 'kafka', 'opendsr', 'privacy_centre',
                                      'bulk']::text[]);

-- Two job states: `awaiting_approval` (held: its request event is not yet sent to the
-- worker; the legal deadline runs) and `denied` (final: nothing was done).
ALTER TABLE lethe.jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE lethe.jobs ADD CONSTRAINT jobs_status_check CHECK (status IN (
    'pending', 'running', 'soft_deleted', 'purging', 'completed', 'completed_with_errors',
    'failed', 'cancelled', 'restored', 'ready', 'expired', 'not_found', 'ambiguous',
    'awaiting_approval', 'denied'));

-- A held job's request event (it carries the subject's identities, as the outbox does) until
-- an admin decides: moved to the outbox on approval, deleted on denial.
CREATE TABLE lethe.held_requests (
    job_id  uuid PRIMARY KEY REFERENCES lethe.jobs (id),
    topic   text NOT NULL,
    event   jsonb NOT NULL
);

-- `denied` is a final state: the requester's address goes with it as with the others
-- (0013; tests/unit/test_purge_migration.py keeps this list equal to shared.lifecycle.FINAL).
CREATE OR REPLACE FUNCTION lethe.jobs_forget_requester() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IN ('completed', 'completed_with_errors', 'failed', 'cancelled', 'restored',
                      'expired', 'not_found', 'ambiguous', 'denied') THEN
        NEW.requester_email := NULL;
    END IF;
    RETURN NEW;
END $$;

-- 2. Duplicates: a request for a subject (same org, subject hash and type) that already has
--    an open job is linked to it instead of running twice. The link keeps its own requester
--    (told when the job it joined is done, then forgotten) and its own idempotency key.
CREATE TABLE lethe.job_links (
    id                  uuid PRIMARY KEY,
    org_id              text NOT NULL REFERENCES lethe.organisations (id),
    job_id              uuid NOT NULL REFERENCES lethe.jobs (id),
    request_id          text,
    request_fingerprint text,
    channel             text NOT NULL,
    actor               text NOT NULL,
    requester_email     text,
    received_at         timestamptz NOT NULL,
    notified_at         timestamptz,
    UNIQUE (org_id, request_id)
);
CREATE INDEX job_links_job ON lethe.job_links (job_id);
-- Finding the open job of a subject.
CREATE INDEX jobs_open_subject ON lethe.jobs (org_id, subject_hash, type)
    WHERE status IN ('awaiting_approval', 'pending', 'running');

GRANT SELECT, INSERT, UPDATE, DELETE ON lethe.held_requests, lethe.job_links TO lethe_app;
