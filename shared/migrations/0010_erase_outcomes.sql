-- Issue 12: outcomes that are not errors (nothing held on the subject; identities of more
-- than one person), and chunks that detach links instead of erasing rows.
ALTER TABLE lethe.jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE lethe.jobs ADD CONSTRAINT jobs_status_check CHECK (status IN (
    'pending', 'running', 'soft_deleted', 'purging', 'completed', 'completed_with_errors',
    'failed', 'cancelled', 'restored', 'ready', 'expired', 'not_found', 'ambiguous'));
ALTER TABLE lethe.erase_tasks DROP CONSTRAINT erase_tasks_status_check;
ALTER TABLE lethe.erase_tasks ADD CONSTRAINT erase_tasks_status_check CHECK (status IN (
    'planning', 'erasing', 'cancelled', 'soft_deleted', 'purging', 'purged', 'restored',
    'failed', 'running', 'completed', 'not_found', 'ambiguous'));
-- `erase`: the table's own action on the keys; `detach:<n>`: null or reassign the link of
-- the table's n-th `parents` relation (the row stays: it is someone else's).
ALTER TABLE lethe.erase_chunks ADD COLUMN op text NOT NULL DEFAULT 'erase';
-- `delete_media: false`: the rows go, their S3 objects stay where they are (recorded here as
-- `kept`, so the job says which objects it left on purpose).
ALTER TABLE lethe.erase_objects DROP CONSTRAINT erase_objects_state_check;
ALTER TABLE lethe.erase_objects ADD CONSTRAINT erase_objects_state_check
    CHECK (state IN ('quarantined', 'restored', 'purged', 'kept'));
