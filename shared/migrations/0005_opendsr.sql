-- OpenDSR (opengdpr/OpenDSR, formerly OpenGDPR): requests that came in through `/opendsr`,
-- and the status callbacks sent for them.

-- One row per OpenDSR request; the job itself lives in lethe.jobs (request_id is the
-- subject_request_id). Nothing here identifies the data subject: identities travel only in
-- the job's event, as for every other channel.
CREATE TABLE lethe.opendsr_requests (
    job_id                uuid PRIMARY KEY REFERENCES lethe.jobs (id),
    org_id                text NOT NULL REFERENCES lethe.organisations (id),
    subject_request_id    uuid NOT NULL,
    subject_request_type  text NOT NULL CHECK (subject_request_type IN
                              ('erasure', 'access', 'portability')),
    regulation            text NOT NULL,
    api_version           text,
    property_id           text,
    submitted_time        timestamptz NOT NULL,
    status_callback_urls  text[] NOT NULL DEFAULT '{}',
    -- keyed hash of the request as parsed: a repeated id with another body is refused
    request_fingerprint   text NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, subject_request_id)
);

-- One callback per (progress event, URL): a redelivered event never posts twice once sent.
CREATE TABLE lethe.opendsr_callbacks (
    event_id        uuid NOT NULL,
    url             text NOT NULL,
    job_id          uuid NOT NULL REFERENCES lethe.jobs (id),
    request_status  text NOT NULL,
    status          text NOT NULL CHECK (status IN ('sending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    http_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    PRIMARY KEY (event_id, url)
);
CREATE INDEX opendsr_callbacks_failed ON lethe.opendsr_callbacks (job_id)
    WHERE status = 'failed';

GRANT SELECT, INSERT, UPDATE ON lethe.opendsr_requests, lethe.opendsr_callbacks TO lethe_app;
