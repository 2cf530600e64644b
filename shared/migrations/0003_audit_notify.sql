-- Issue 6: signed audit checkpoints, controlled pruning of the audit trail, and the
-- notifier's recipients (owner contacts, webhooks) and per-recipient deliveries.

-- auditor: checkpoints ------------------------------------------------------
-- Each row signs the chain head at `seq` (Ed25519 over checkpoint_message(), see
-- services/auditor/checkpoints.py). A superuser who rewrites history cannot re-sign it
-- without the private key, which never reaches the database.
CREATE TABLE lethe.audit_checkpoints (
    seq         bigint PRIMARY KEY,          -- the audit_log row whose hash is signed
    head_hash   text NOT NULL,
    signed_at   timestamptz NOT NULL,
    key_id      text NOT NULL,               -- sha256 of the raw public key, first 16 hex
    signature   text NOT NULL                -- base64
);

CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE OR DELETE ON lethe.audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION lethe.audit_log_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON lethe.audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION lethe.audit_log_append_only();

-- auditor: retention ---------------------------------------------------------
-- Pruning is the only way rows leave audit_log. The trigger lets a DELETE through only for
-- rows at or below the transaction-local `lethe.audit_prune_through`, which only
-- lethe.audit_prune() sets, and only to the seq of a signed checkpoint: what remains starts
-- right after a checkpoint, so it still verifies. The application role has no DELETE
-- privilege at all; it may only call the function, which refuses retention under a year.
CREATE TABLE lethe.audit_prunes (
    id            bigserial PRIMARY KEY,
    through_seq   bigint NOT NULL,
    rows_deleted  bigint NOT NULL,
    cutoff        timestamptz NOT NULL,
    ran_at        timestamptz NOT NULL DEFAULT now(),
    ran_by        text NOT NULL DEFAULT session_user
);

CREATE OR REPLACE FUNCTION lethe.audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    through text := current_setting('lethe.audit_prune_through', true);
BEGIN
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_log' AND coalesce(through, '') <> '' THEN
        IF OLD.seq <= through::bigint THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE FUNCTION lethe.audit_prune(retention interval) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, lethe AS $$
DECLARE
    cutoff   timestamptz := now() - retention;
    young    bigint;
    through  bigint;
    deleted  bigint;
BEGIN
    IF retention < interval '365 days' THEN
        RAISE EXCEPTION 'audit retention % refused: at least 365 days', retention
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    PERFORM pg_advisory_xact_lock(7715002);  -- the chain lock: no append races a prune
    SELECT min(seq) INTO young FROM lethe.audit_log WHERE recorded_at >= cutoff;
    SELECT max(c.seq) INTO through FROM lethe.audit_checkpoints c
     WHERE young IS NULL OR c.seq < young;
    IF through IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM set_config('lethe.audit_prune_through', through::text, true);
    DELETE FROM lethe.audit_log WHERE seq <= through;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    PERFORM set_config('lethe.audit_prune_through', '', true);
    IF deleted > 0 THEN
        INSERT INTO lethe.audit_prunes (through_seq, rows_deleted, cutoff)
        VALUES (through, deleted, cutoff);
    END IF;
    RETURN deleted;
END;
$$;

REVOKE ALL ON FUNCTION lethe.audit_prune(interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lethe.audit_prune(interval) TO lethe_app;
GRANT SELECT, INSERT ON lethe.audit_checkpoints TO lethe_app;
GRANT SELECT ON lethe.audit_prunes TO lethe_app;

-- For GET /v1/audit filters.
CREATE INDEX audit_log_org_seq ON lethe.audit_log (org_id, seq);
CREATE INDEX audit_log_recorded ON lethe.audit_log (recorded_at);

-- notifier -------------------------------------------------------------------
-- Owners to notify per organisation (who gets which template is configuration).
CREATE TABLE lethe.org_contacts (
    org_id      text NOT NULL REFERENCES lethe.organisations (id),
    email       text NOT NULL,
    role        text NOT NULL DEFAULT 'owner' CHECK (role IN ('owner')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, email)
);

-- Registered status-callback URLs; the secret signs each POST (HMAC-SHA256).
CREATE TABLE lethe.webhooks (
    id          uuid PRIMARY KEY,
    org_id      text NOT NULL REFERENCES lethe.organisations (id),
    url         text NOT NULL,
    secret      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    removed_at  timestamptz
);
CREATE INDEX webhooks_org ON lethe.webhooks (org_id) WHERE removed_at IS NULL;

-- One delivery per (event, recipient): a redelivered event never sends twice. The
-- recipient is a key ('requester', 'owner:<keyed hash>', 'webhook:<id>'), never an address.
ALTER TABLE lethe.deliveries ADD COLUMN recipient text NOT NULL DEFAULT 'requester';
ALTER TABLE lethe.deliveries DROP CONSTRAINT deliveries_pkey;
ALTER TABLE lethe.deliveries ADD PRIMARY KEY (command_event_id, recipient);
ALTER TABLE lethe.deliveries ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();
-- A 'sending' claim older than its lease belongs to a notifier that died mid-send.
ALTER TABLE lethe.deliveries ADD COLUMN claimed_at timestamptz;

GRANT SELECT, INSERT, UPDATE, DELETE ON lethe.org_contacts, lethe.webhooks TO lethe_app;
