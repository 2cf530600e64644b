-- Issue 17 item 1: bulk requests. One bulk job holds up to 5,000 subjects of one request
-- type; each valid subject is a normal job of its own (lethe.jobs, its own timeline and
-- audit trail), each row's outcome is kept here. The requester's address is nulled with
-- the summary notice (as 0013 does for jobs). `pending` counts the subjects still
-- without a terminal outcome: the progress handler that takes it to 0 (under the row lock)
-- writes the one summary notice. Rows hold no identity in clear: `subject_hash` only.
CREATE TABLE lethe.bulk_jobs (
    id                  uuid PRIMARY KEY,
    org_id              text NOT NULL REFERENCES lethe.organisations (id),
    type                text NOT NULL CHECK (type IN ('erasure', 'export')),
    request_id          text,
    request_fingerprint text NOT NULL,
    channel             text NOT NULL,
    actor               text NOT NULL,
    requester_email     text,
    total               integer NOT NULL,
    pending             integer NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    finished_at         timestamptz,
    UNIQUE (org_id, request_id)
);

CREATE TABLE lethe.bulk_subjects (
    bulk_id       uuid NOT NULL REFERENCES lethe.bulk_jobs (id) ON DELETE CASCADE,
    row_no        integer NOT NULL,
    job_id        uuid,
    subject_hash  text,
    outcome       text NOT NULL CHECK (outcome IN ('pending', 'erased', 'exported', 'not_found',
                                                   'ambiguous', 'failed', 'rejected')),
    reason        text,
    decided_at    timestamptz,
    PRIMARY KEY (bulk_id, row_no)
);
CREATE UNIQUE INDEX bulk_subjects_job ON lethe.bulk_subjects (job_id) WHERE job_id IS NOT NULL;

GRANT SELECT, INSERT, UPDATE, DELETE ON lethe.bulk_jobs, lethe.bulk_subjects TO lethe_app;
