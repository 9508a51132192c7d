-- The service's own state, in the schema etl_service (created just before,
-- with the migration history in it; these migrations run with it as their
-- only search_path and name every other object in full). Never in public:
-- avni-server's create_db_user() grants ALL on every table and EXECUTE on
-- every function in public to each organisation's role, and those grants
-- must never reach the service's jobs, runs, events or watermarks.
--
-- Written to be applied to any database: empty, avni-server's, the
-- project's test source, or one a previous release migrated (its tables in
-- public are moved here, rows and all).
REVOKE ALL ON SCHEMA etl_service FROM PUBLIC;

DO $$
DECLARE
    moved text;
BEGIN
    -- The previous release kept these in public: move them, with their
    -- rows, sequences, indexes and constraints.
    FOREACH moved IN ARRAY ARRAY['etl_job', 'etl_run', 'etl_run_event'] LOOP
        IF to_regclass(format('public.%I', moved)) IS NOT NULL
           AND to_regclass(format('etl_service.%I', moved)) IS NULL THEN
            EXECUTE format('ALTER TABLE public.%I SET SCHEMA etl_service', moved);
        END IF;
    END LOOP;
    FOREACH moved IN ARRAY ARRAY['etl_try_timestamptz(text)', 'etl_try_time(text)', 'etl_try_numeric(text)'] LOOP
        IF to_regprocedure('public.' || moved) IS NOT NULL
           AND to_regprocedure('etl_service.' || moved) IS NULL THEN
            EXECUTE 'ALTER FUNCTION public.' || moved || ' SET SCHEMA etl_service';
        END IF;
    END LOOP;
    -- Its migration history, in public, named these versions only.
    IF to_regclass('public.__diesel_schema_migrations') IS NOT NULL THEN
        DELETE FROM public.__diesel_schema_migrations
         WHERE version IN ('20261121000001', '20261121000002', '20261122000001',
                           '20261122000100', '20261123000001', '20261124000100');
        IF NOT EXISTS (SELECT 1 FROM public.__diesel_schema_migrations) THEN
            DROP TABLE public.__diesel_schema_migrations;
        END IF;
    END IF;
END
$$;

-- The scheduler's state: one job per enabled organisation or organisation
-- group, and the history of every run. Replicas share these tables: due jobs
-- are claimed with FOR UPDATE SKIP LOCKED and a lease that expires if the
-- replica holding it dies.
CREATE TABLE IF NOT EXISTS etl_service.etl_job (
    id                bigserial   PRIMARY KEY,
    entity_uuid       uuid        NOT NULL,
    entity_type       text        NOT NULL CHECK (entity_type IN ('organisation', 'organisation_group')),
    interval_seconds  integer     NOT NULL CHECK (interval_seconds > 0),
    next_run_at       timestamptz NOT NULL DEFAULT now(),
    enabled_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT etl_job_entity_unique UNIQUE (entity_uuid, entity_type)
);
CREATE INDEX IF NOT EXISTS etl_job_next_run_idx ON etl_service.etl_job (next_run_at);

CREATE TABLE IF NOT EXISTS etl_service.etl_run (
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
CREATE INDEX IF NOT EXISTS etl_run_entity_idx ON etl_service.etl_run (entity_uuid, entity_type, id DESC);
-- At most one queued or running run per entity: RunNow during a run returns
-- that run instead of starting a second.
CREATE UNIQUE INDEX IF NOT EXISTS etl_run_one_active_per_entity
    ON etl_service.etl_run (entity_uuid, entity_type) WHERE status IN ('queued', 'running');
-- Why a job last failed is read from its last run.
CREATE INDEX IF NOT EXISTS etl_run_entity_finished_idx
    ON etl_service.etl_run (entity_uuid, entity_type, finished_at DESC) WHERE finished_at IS NOT NULL;
-- Queued runs are claimed oldest first.
CREATE INDEX IF NOT EXISTS etl_run_queued_idx ON etl_service.etl_run (queued_at) WHERE status = 'queued';

-- Progress events of runs, so WatchJobRun can follow a run from any replica.
CREATE TABLE IF NOT EXISTS etl_service.etl_run_event (
    run_id      bigint      NOT NULL REFERENCES etl_service.etl_run (id) ON DELETE CASCADE,
    seq         integer     NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('run_queued', 'run_started', 'schema_applied', 'table_started', 'table_finished', 'run_finished')),
    event_time  timestamptz NOT NULL DEFAULT clock_timestamp(),
    table_name  text,
    rows_upserted bigint    NOT NULL DEFAULT 0,
    message     text,
    PRIMARY KEY (run_id, seq)
);

-- An answer PostgreSQL cannot read as its column's type (2024-13-45 for a
-- date, 1e999999 for a number) becomes NULL in its cell instead of failing
-- the table's sync. Tables are synced with plain casts first; only a
-- statement that fails is redone with these tolerant ones (catching the
-- error costs a subtransaction per value).
CREATE OR REPLACE FUNCTION etl_service.etl_try_timestamptz(value text) RETURNS timestamptz
    LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
BEGIN
    RETURN value::timestamptz;
EXCEPTION WHEN data_exception THEN
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION etl_service.etl_try_time(value text) RETURNS time
    LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
BEGIN
    RETURN value::time;
EXCEPTION WHEN data_exception THEN
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION etl_service.etl_try_numeric(value text) RETURNS numeric
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    RETURN value::numeric;
EXCEPTION WHEN data_exception THEN
    RETURN NULL;
END
$$;
