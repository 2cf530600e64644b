-- Issue 13, notices: the "recovery window ends tomorrow" notice is sent once per erasure and
-- recorded here (the sweep that sends it skips jobs that have it).
ALTER TABLE lethe.erase_tasks ADD COLUMN recovery_notice_at timestamptz;
-- Issue 13, cancel of an export: asked for (by a CancelExport), then stopped between
-- batches with its partial upload aborted (`cancelled`: nothing is kept in the bucket).
ALTER TABLE lethe.exports ADD COLUMN cancel_requested_at timestamptz;
ALTER TABLE lethe.exports DROP CONSTRAINT exports_status_check;
ALTER TABLE lethe.exports ADD CONSTRAINT exports_status_check
    CHECK (status IN ('building', 'ready', 'failed', 'expired', 'cancelled'));
