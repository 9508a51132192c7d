-- The migrator's bookkeeping: the archive of every submission received, one
-- audit row per committed batch (the watermark), and one error row per
-- submission that could not be written.

-- Every submission received, as received, whatever became of it: nothing the
-- upstream sent is ever lost.
CREATE TABLE form_submission (
    id                 bigserial   PRIMARY KEY,
    source             text        NOT NULL,
    instance_id        text        NOT NULL,
    form_name          text,
    entity_id          text,
    anm_id             text,
    client_version     bigint,
    server_version     bigint,
    payload            jsonb       NOT NULL,
    -- 'written' once its form row exists, 'failed' while it is in error_audit.
    status             text        NOT NULL CHECK (status IN ('written', 'failed')),
    received_timestamp timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT form_submission_instance_id_unique UNIQUE (instance_id)
);
CREATE INDEX form_submission_form_name_idx ON form_submission (form_name);

-- One row per non-empty batch; the latest row's last_polled_timestamp is the
-- source's watermark (the max serverVersion of that batch, epoch ms).
CREATE TABLE migration_audit (
    id                                   bigserial   PRIMARY KEY,
    source                               text        NOT NULL,
    last_polled_timestamp                bigint      NOT NULL,
    total_no_of_form_entries             integer     NOT NULL,
    successfully_processed_form_entries  integer     NOT NULL,
    duplicate_form_entries               integer     NOT NULL DEFAULT 0,
    failed_form_entries                  integer     NOT NULL DEFAULT 0,
    created_timestamp                    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX migration_audit_source_idx ON migration_audit (source, id DESC);

-- One row per failed submission: a short reason for people, the full cause
-- (never cut), and the raw element as received.
CREATE TABLE error_audit (
    id                 bigserial   PRIMARY KEY,
    source             text        NOT NULL,
    instance_id        text,
    form_name          text,
    server_version     bigint,
    failure_reason     text        NOT NULL,
    detailed_reason    text        NOT NULL,
    raw_payload        text        NOT NULL,
    created_timestamp  timestamptz NOT NULL DEFAULT now(),
    resolved_at        timestamptz
);
CREATE INDEX error_audit_source_form_idx ON error_audit (source, form_name, id DESC);
CREATE INDEX error_audit_unresolved_idx ON error_audit (id) WHERE resolved_at IS NULL;
