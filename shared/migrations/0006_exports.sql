-- exporter: one row per export job, and the download links handed out for it.
CREATE TABLE lethe.exports (
    job_id          uuid PRIMARY KEY,
    org_id          text NOT NULL,
    status          text NOT NULL CHECK (status IN ('building', 'ready', 'failed', 'expired')),
    attempt         integer NOT NULL DEFAULT 1,
    object_key      text NOT NULL,
    upload_id       text,            -- multipart upload in flight (aborted on a restart)
    wrapped_key     bytea,           -- the export's data key, wrapped; NULL once destroyed
    size_bytes      bigint,
    rows_per_table  jsonb,
    expires_at      timestamptz,
    started_at      timestamptz NOT NULL DEFAULT now(),
    ready_at        timestamptz
);
CREATE INDEX exports_expiry ON lethe.exports (expires_at) WHERE status = 'ready';

CREATE TABLE lethe.download_tokens (
    token_id        uuid PRIMARY KEY,
    job_id          uuid NOT NULL REFERENCES lethe.exports (job_id),
    recipient_hash  text NOT NULL,
    expires_at      timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz
);
CREATE INDEX download_tokens_job ON lethe.download_tokens (job_id);
