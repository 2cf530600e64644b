-- Issue 13 item 6: a retention job can be cancelled. The run holds its partition of the
-- job topic until it ends, so the cancel command is also read by a listener of its own
-- (consumer group lethe-eraser-cancels), which records it here at once; the run reads it
-- between batches and stops there (status cancelled).
CREATE TABLE lethe.retention_cancels (
    job_id        uuid PRIMARY KEY,
    reason        text,
    requested_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE lethe.retention_runs DROP CONSTRAINT retention_runs_status_check;
ALTER TABLE lethe.retention_runs ADD CONSTRAINT retention_runs_status_check
    CHECK (status IN ('running', 'completed', 'failed', 'cancelled'));

GRANT SELECT, INSERT, UPDATE, DELETE ON lethe.retention_cancels TO lethe_app;
