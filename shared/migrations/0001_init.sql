-- Lethe's own tables. Each service owns the tables named in ARCHITECTURE.md.

-- intake ------------------------------------------------------------------
CREATE TABLE lethe.organisations (
    id                    text PRIMARY KEY,
    name                  text NOT NULL,
    recovery_window_days  integer NOT NULL DEFAULT 7 CHECK (recovery_window_days BETWEEN 0 AND 30),
    created_at            timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE lethe.api_keys (
    id          uuid PRIMARY KEY,
    org_id      text NOT NULL REFERENCES lethe.organisations (id),
    key_hash    text NOT NULL UNIQUE,  -- sha256 of the key; the key itself is shown once
    role        text NOT NULL CHECK (role IN ('owner', 'admin', 'viewer', 'service')),
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_org ON lethe.api_keys (org_id);

CREATE TABLE lethe.jobs (
    id                    uuid PRIMARY KEY,
    org_id                text NOT NULL REFERENCES lethe.organisations (id),
    type                  text NOT NULL CHECK (type IN ('erasure', 'export')),
    scope                 text NOT NULL CHECK (scope IN ('subject', 'organisation')),
    status                text NOT NULL CHECK (status IN
                            ('pending', 'running', 'completed', 'failed', 'cancelled')),
    phase                 text NOT NULL DEFAULT 'requested',
    subject_hash          text,
    request_id            text,
    channel               text NOT NULL,
    actor                 text NOT NULL,
    regulation            text NOT NULL,
    received_at           timestamptz NOT NULL,
    due_at                timestamptz NOT NULL,
    extended_due_at       timestamptz,
    recovery_window_days  integer NOT NULL,
    done                  bigint NOT NULL DEFAULT 0,
    total                 bigint,
    rows_per_second       double precision,
    eta_seconds           double precision,
    result                jsonb,
    error                 text,
    last_event_at         timestamptz,
    updated_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, request_id)
);
CREATE INDEX jobs_org_status ON lethe.jobs (org_id, status, received_at DESC);

-- Transactional outbox: written with the job, published by the relay, then deleted
-- (the event may carry the subject's identities, so it does not linger).
CREATE TABLE lethe.outbox (
    id          bigserial PRIMARY KEY,
    topic       text NOT NULL,
    event       jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- eraser ------------------------------------------------------------------
CREATE TABLE lethe.erase_tasks (
    job_id        uuid PRIMARY KEY,
    org_id        text NOT NULL,
    status        text NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
    total         bigint NOT NULL,
    per_table     jsonb NOT NULL,
    done          bigint NOT NULL DEFAULT 0,
    verification  jsonb,
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);

-- notifier ----------------------------------------------------------------
CREATE TABLE lethe.deliveries (
    command_event_id  uuid PRIMARY KEY,
    job_id            uuid,
    channel           text NOT NULL,
    template          text NOT NULL,
    status            text NOT NULL CHECK (status IN ('sending', 'sent', 'failed')),
    attempts          integer NOT NULL DEFAULT 0,
    last_error        text,
    sent_at           timestamptz
);

-- auditor -----------------------------------------------------------------
CREATE TABLE lethe.audit_log (
    seq           bigint PRIMARY KEY,
    event_id      uuid NOT NULL UNIQUE,
    occurred_at   timestamptz NOT NULL,
    recorded_at   timestamptz NOT NULL,
    actor         text NOT NULL,
    action        text NOT NULL,
    org_id        text,
    job_id        uuid,
    subject_hash  text,
    details       jsonb NOT NULL,
    prev_hash     text NOT NULL,
    hash          text NOT NULL
);
CREATE INDEX audit_log_job ON lethe.audit_log (job_id);
CREATE INDEX audit_log_org_time ON lethe.audit_log (org_id, occurred_at);

CREATE FUNCTION lethe.audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON lethe.audit_log
    FOR EACH ROW EXECUTE FUNCTION lethe.audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON lethe.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION lethe.audit_log_append_only();

-- The application role may only append to and read the audit trail.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'lethe_app') THEN
        CREATE ROLE lethe_app NOLOGIN;
    END IF;
END;
$$;
GRANT USAGE ON SCHEMA lethe TO lethe_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA lethe TO lethe_app;
REVOKE UPDATE, DELETE, TRUNCATE ON lethe.audit_log FROM lethe_app;
