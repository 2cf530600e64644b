-- Connectors (docs/datamap.md, "Connectors"): what each call outside the platform database
-- came to, per erasure and connector (the eraser's record: a call recorded is not made again).
CREATE TABLE IF NOT EXISTS lethe.erase_connector_calls (
    job_id     uuid NOT NULL REFERENCES lethe.erase_tasks (job_id),
    connector  text NOT NULL,
    kind       text NOT NULL,
    outcome    text NOT NULL CHECK (outcome IN ('done', 'failed')),
    code       text,
    attempts   integer NOT NULL DEFAULT 0,
    tokens     integer,
    failed_tokens integer,
    at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, connector)
);
