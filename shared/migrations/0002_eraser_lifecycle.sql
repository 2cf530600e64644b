-- eraser (issue 4): soft delete with a recovery window, chunks shared by replicas, purge.
-- erase_tasks stays the one record per erasure job; its chunks are the checkpoints.
ALTER TABLE lethe.erase_tasks DROP CONSTRAINT erase_tasks_status_check;
ALTER TABLE lethe.erase_tasks ADD CONSTRAINT erase_tasks_status_check CHECK (status IN (
    'planning', 'erasing', 'cancelled', 'soft_deleted', 'purging', 'purged', 'restored',
    'failed', 'running', 'completed'));
ALTER TABLE lethe.erase_tasks
    ADD COLUMN subject_hash          text,
    ADD COLUMN wave                  integer NOT NULL DEFAULT 0,
    ADD COLUMN waves                 integer NOT NULL DEFAULT 0,
    ADD COLUMN recovery_window_days  integer NOT NULL DEFAULT 7,
    ADD COLUMN erasing_since         timestamptz,
    ADD COLUMN soft_deleted_at       timestamptz,
    ADD COLUMN purge_after           timestamptz,
    ADD COLUMN purged_at             timestamptz,
    -- The job's AES-256-GCM key, wrapped by the master key; NULL once destroyed (purge).
    ADD COLUMN wrapped_key           bytea,
    ADD COLUMN key_destroyed_at      timestamptz,
    -- The request (identities, requester address) sealed with the job key: verification
    -- after purge and the final email need it; nobody can read it once the key is gone.
    ADD COLUMN sealed_request        bytea,
    ADD COLUMN needs_review          jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN restored_rows         bigint NOT NULL DEFAULT 0;
CREATE INDEX erase_tasks_purge_due ON lethe.erase_tasks (purge_after)
    WHERE purged_at IS NULL AND purge_after IS NOT NULL;

-- One row per chunk (table + list of keys) of a job: the checkpoint of crash safety.
CREATE TABLE lethe.erase_chunks (
    job_id      uuid NOT NULL REFERENCES lethe.erase_tasks (job_id),
    chunk_no    integer NOT NULL,
    wave        integer NOT NULL,
    table_name  text NOT NULL,
    keys        text[] NOT NULL,
    status      text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'done', 'failed', 'cancelled')),
    rows_done   integer,
    objects     integer,
    error       text,
    done_at     timestamptz,
    done_by     text,          -- which eraser process (host:pid) did it
    PRIMARY KEY (job_id, chunk_no)
);
CREATE INDEX erase_chunks_open ON lethe.erase_chunks (job_id, wave) WHERE status = 'pending';

-- S3 objects moved to quarantine: recorded before the move, so none is ever orphaned.
CREATE TABLE lethe.erase_objects (
    job_id          uuid NOT NULL REFERENCES lethe.erase_tasks (job_id),
    key             text NOT NULL,
    quarantine_key  text NOT NULL,
    table_name      text NOT NULL,
    chunk_no        integer NOT NULL,
    state           text NOT NULL CHECK (state IN ('quarantined', 'restored', 'purged')),
    PRIMARY KEY (job_id, key)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON lethe.erase_chunks, lethe.erase_objects TO lethe_app;
