-- Issue 17: the privacy centre, subject-facing pages per organisation, off by default.
-- An owner turns it on (PUT /v1/orgs/{org}/privacy-centre, or the web UI's settings page);
-- its pages live at /privacy/{slug}.
ALTER TABLE lethe.organisations
    ADD COLUMN privacy_centre_enabled boolean NOT NULL DEFAULT false,
    ADD COLUMN privacy_centre_slug text UNIQUE
        CHECK (privacy_centre_slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$');

-- A one-time code mailed to the address a subject gave, before any job exists. Nothing here
-- is personal data in clear: the address is held only as keyed hashes (per org, as on jobs;
-- and across orgs, for the per-address rate limit), the client address likewise, the code
-- as an HMAC. A challenge is used at most once (used_at, set in the job's transaction).
CREATE TABLE lethe.privacy_challenges (
    id            uuid PRIMARY KEY,
    org_id        text NOT NULL REFERENCES lethe.organisations (id),
    request_type  text NOT NULL CHECK (request_type IN ('erasure', 'export')),
    subject_hash  text NOT NULL,
    address_key   text NOT NULL,
    source_key    text NOT NULL,
    code_hash     text NOT NULL,
    attempts      integer NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz,
    job_id        uuid
);
CREATE INDEX privacy_challenges_address ON lethe.privacy_challenges (address_key, created_at);
CREATE INDEX privacy_challenges_source ON lethe.privacy_challenges (source_key, created_at);
CREATE INDEX privacy_challenges_created ON lethe.privacy_challenges (created_at);
