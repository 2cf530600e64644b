-- intake's admin web UI: sign-in sessions. The cookie holds a random token; only its hash is
-- stored, with the API key it was opened with (a revoked key ends its sessions) and the
-- session's CSRF token.
CREATE TABLE lethe.web_sessions (
    token_hash  text PRIMARY KEY,
    key_id      uuid NOT NULL REFERENCES lethe.api_keys (id),
    csrf        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX web_sessions_expiry ON lethe.web_sessions (expires_at);
