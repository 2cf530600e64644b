-- OpenDSR status callbacks become a durable queue the notifier's dispatcher works through,
-- off the Kafka consumer: the consumer only records each (progress event, URL) as pending;
-- deliveries are isolated per endpoint (scheme://host:port), retried with backoff until
-- sent, out of attempts, or past their deadline. `seq` keeps each job's callbacks to one URL
-- in order. `body` is the exact JSON sent (signed when sent).
ALTER TABLE lethe.opendsr_callbacks
    ADD COLUMN seq                bigserial,
    ADD COLUMN org_id             text,
    ADD COLUMN subject_hash       text,
    ADD COLUMN subject_request_id text,
    ADD COLUMN endpoint           text,
    ADD COLUMN body               bytea,
    ADD COLUMN next_attempt_at    timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN deadline_at        timestamptz,
    ADD COLUMN claimed_at         timestamptz;

UPDATE lethe.opendsr_callbacks
   SET endpoint = substring(url from '^[A-Za-z]+://[^/?#]+');

ALTER TABLE lethe.opendsr_callbacks DROP CONSTRAINT opendsr_callbacks_status_check;
ALTER TABLE lethe.opendsr_callbacks ADD CONSTRAINT opendsr_callbacks_status_check
    CHECK (status IN ('pending', 'sending', 'sent', 'failed'));

CREATE INDEX opendsr_callbacks_due ON lethe.opendsr_callbacks (next_attempt_at)
    WHERE status IN ('pending', 'sending');
CREATE INDEX opendsr_callbacks_order ON lethe.opendsr_callbacks (job_id, url, seq)
    WHERE status IN ('pending', 'sending');

GRANT USAGE ON SEQUENCE lethe.opendsr_callbacks_seq_seq TO lethe_app;
