-- The full job lifecycle (issue 3/4): soft delete with a recovery window, purge, restore.
ALTER TABLE lethe.jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE lethe.jobs ADD CONSTRAINT jobs_status_check CHECK (status IN (
    'pending', 'running', 'soft_deleted', 'purging', 'completed', 'completed_with_errors',
    'failed', 'cancelled', 'restored', 'ready', 'expired'));
ALTER TABLE lethe.jobs ADD COLUMN purge_after timestamptz;
ALTER TABLE lethe.jobs ADD COLUMN needs_review jsonb NOT NULL DEFAULT '[]';
