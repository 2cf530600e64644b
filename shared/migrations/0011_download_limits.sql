-- A download link is a bearer link for the data subject: it works without an API key, up to
-- max_downloads times (fixed when the link is issued), until it expires or is revoked.
ALTER TABLE lethe.download_tokens
    ADD COLUMN max_downloads integer NOT NULL DEFAULT 5 CHECK (max_downloads >= 1),
    ADD COLUMN downloads     integer NOT NULL DEFAULT 0 CHECK (downloads >= 0);
