-- The restoration log lives in the platform database, next to the rows it holds, so that
-- copying a chunk's rows here and deleting (or masking) them is one transaction.
-- Applied by the eraser at start-up with the shared migration runner.
CREATE SCHEMA IF NOT EXISTS lethe;
CREATE TABLE lethe.restoration_log (
    job_id      uuid NOT NULL,
    chunk_no    integer NOT NULL,
    table_name  text NOT NULL,
    keys        text[] NOT NULL,      -- primary keys (as text) of the rows held
    sealed      bytea NOT NULL,       -- AES-256-GCM (job key): JSON array of the original rows
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, chunk_no)
);
