-- A sample platform schema for the demo and tests: the data Lethe acts on.
-- Every foreign key the eraser follows is indexed (an unindexed one makes deletes scan).
CREATE TABLE IF NOT EXISTS organisations (
    id    text PRIMARY KEY,
    name  text NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    id           bigserial PRIMARY KEY,
    org_id       text NOT NULL REFERENCES organisations (id),
    email        text NOT NULL,
    name         text,
    phone        text,
    external_id  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- A disabled account cannot sign in and is not shown to others (the erasure's hide step).
    disabled     boolean NOT NULL DEFAULT false,
    UNIQUE (org_id, email)
);
ALTER TABLE users ADD COLUMN IF NOT EXISTS disabled boolean NOT NULL DEFAULT false;
-- A conversation outlives the person who started it when others wrote in it (user_id null).
CREATE TABLE IF NOT EXISTS conversations (
    id          bigserial PRIMARY KEY,
    org_id      text NOT NULL REFERENCES organisations (id),
    user_id     bigint REFERENCES users (id),
    title       text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS conversations_user ON conversations (user_id);
CREATE TABLE IF NOT EXISTS messages (
    id               bigserial PRIMARY KEY,
    conversation_id  bigint NOT NULL REFERENCES conversations (id),
    author_id        bigint NOT NULL REFERENCES users (id),
    body             text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS messages_conversation ON messages (conversation_id);
CREATE INDEX IF NOT EXISTS messages_author ON messages (author_id);
CREATE TABLE IF NOT EXISTS media_objects (
    id            bigserial PRIMARY KEY,
    message_id    bigint NOT NULL REFERENCES messages (id),
    s3_key        text NOT NULL,
    content_type  text NOT NULL,
    size_bytes    bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS media_objects_message ON media_objects (message_id);
-- Payments stay (bookkeeping) but lose their link to the person: the data map masks them.
CREATE TABLE IF NOT EXISTS payments (
    id             bigserial PRIMARY KEY,
    org_id         text NOT NULL REFERENCES organisations (id),
    user_id        bigint REFERENCES users (id),
    billing_name   text,
    billing_email  text,
    card_last4     text,
    amount_cents   bigint NOT NULL,
    paid_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS payments_user ON payments (user_id);
-- Newsletter sign-ups carry an email but no user id: matched by identity, not by relation.
CREATE TABLE IF NOT EXISTS newsletter_signups (
    id          bigserial PRIMARY KEY,
    org_id      text NOT NULL REFERENCES organisations (id),
    email       text NOT NULL,
    topics      text[] NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, email)
);
-- Aged out by retention policies (issue 7): logs, metrics, and anonymous uploads (rows with
-- no owner, deleted only on public instances). Indexed on (org, time) for the age scans.
CREATE TABLE IF NOT EXISTS activity_logs (
    id          bigserial PRIMARY KEY,
    org_id      text NOT NULL REFERENCES organisations (id),
    event       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS activity_logs_org_time ON activity_logs (org_id, created_at);
CREATE TABLE IF NOT EXISTS metrics_samples (
    id           bigserial PRIMARY KEY,
    org_id       text NOT NULL REFERENCES organisations (id),
    name         text NOT NULL,
    value        double precision NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS metrics_samples_org_time ON metrics_samples (org_id, recorded_at);
CREATE TABLE IF NOT EXISTS anonymous_uploads (
    id          bigserial PRIMARY KEY,
    org_id      text NOT NULL REFERENCES organisations (id),
    session_id  text NOT NULL,
    s3_key      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS anonymous_uploads_org_time ON anonymous_uploads (org_id, created_at);
CREATE INDEX IF NOT EXISTS messages_created ON messages (created_at);
