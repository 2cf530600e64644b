-- Webhooks become a durable queue, like OpenDSR callbacks (0012): the notifier's consumer only
-- records one `pending` delivery per (progress event, webhook) in lethe.deliveries (channel
-- 'webhook', recipient 'webhook:<id>') with the exact body; its dispatcher sends them off the
-- consumer's path, at most a few at a time per organisation and round-robin across
-- organisations, retried with backoff until sent, out of attempts or past `deadline_at`
-- ('failed', audited). `seq` keeps one job's webhooks to one endpoint in order. Email rows
-- keep their columns NULL and are sent by the consumer, as before.
ALTER TABLE lethe.deliveries
    ADD COLUMN seq              bigserial,
    ADD COLUMN org_id           text,
    ADD COLUMN subject_hash     text,
    ADD COLUMN hook_id          uuid,
    ADD COLUMN body             bytea,
    ADD COLUMN http_status      integer,
    ADD COLUMN next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN deadline_at      timestamptz;

ALTER TABLE lethe.deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE lethe.deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('pending', 'sending', 'sent', 'failed'));

-- What the dispatcher reads: each organisation's due webhooks, oldest first.
CREATE INDEX deliveries_webhooks_due ON lethe.deliveries (org_id, next_attempt_at, seq)
    WHERE channel = 'webhook' AND status IN ('pending', 'sending') AND body IS NOT NULL;
CREATE INDEX deliveries_webhooks_order ON lethe.deliveries (job_id, recipient, seq)
    WHERE channel = 'webhook' AND status IN ('pending', 'sending');

GRANT USAGE ON SEQUENCE lethe.deliveries_seq_seq TO lethe_app;
