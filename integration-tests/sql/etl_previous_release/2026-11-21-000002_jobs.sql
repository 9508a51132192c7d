-- The scheduler's state: one job per enabled organisation or organisation
-- group, and the history of every run. Replicas share these tables: due jobs
-- are claimed with FOR UPDATE SKIP LOCKED and a lease that expires if the
-- replica holding it dies.

CREATE TABLE etl_job (
    id                bigserial   PRIMARY KEY,
    entity_uuid       uuid        NOT NULL,
    entity_type       text        NOT NULL CHECK (entity_type IN ('organisation', 'organisation_group')),
    interval_seconds  integer     NOT NULL CHECK (interval_seconds > 0),
    next_run_at       timestamptz NOT NULL DEFAULT now(),
    enabled_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT etl_job_entity_unique UNIQUE (entity_uuid, entity_type)
);
CREATE INDEX etl_job_next_run_idx ON etl_job (next_run_at);

CREATE TABLE etl_run (
    id                bigserial   PRIMARY KEY,
    entity_uuid       uuid        NOT NULL,
    entity_type       text        NOT NULL CHECK (entity_type IN ('organisation', 'organisation_group')),
    trigger           text        NOT NULL CHECK (trigger IN ('schedule', 'run_now', 'recreate', 'command_line')),
    status            text        NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    queued_at         timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    finished_at       timestamptz,
    -- The replica working on the run, and until when its claim holds; a run
    -- whose lease expired belongs to a replica that died.
    worker            text,
    lease_expires_at  timestamptz,
    error             text,
    error_detail      text,
    tables_total      integer     NOT NULL DEFAULT 0,
    tables_done       integer     NOT NULL DEFAULT 0,
    current_table     text,
    rows_upserted     bigint      NOT NULL DEFAULT 0,
    rows_deleted      bigint      NOT NULL DEFAULT 0,
    table_results     jsonb       NOT NULL DEFAULT '[]'::jsonb
);
CREATE INDEX etl_run_entity_idx ON etl_run (entity_uuid, entity_type, id DESC);
-- At most one queued or running run per entity: RunNow during a run returns
-- that run instead of starting a second.
CREATE UNIQUE INDEX etl_run_one_active_per_entity
    ON etl_run (entity_uuid, entity_type) WHERE status IN ('queued', 'running');
