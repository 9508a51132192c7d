-- Progress events of runs, so WatchJobRun can follow a run from any replica:
-- the replica doing the work appends events; watchers read those after the
-- last one they saw. Removed with their run.

CREATE TABLE etl_run_event (
    run_id      bigint      NOT NULL REFERENCES etl_run (id) ON DELETE CASCADE,
    seq         integer     NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('run_queued', 'run_started', 'schema_applied', 'table_started', 'table_finished', 'run_finished')),
    event_time  timestamptz NOT NULL DEFAULT clock_timestamp(),
    table_name  text,
    rows_upserted bigint    NOT NULL DEFAULT 0,
    message     text,
    PRIMARY KEY (run_id, seq)
);

-- Why a job last failed is read from its last run; this index finds a job's
-- newest finished run quickly.
CREATE INDEX etl_run_entity_finished_idx
    ON etl_run (entity_uuid, entity_type, finished_at DESC) WHERE finished_at IS NOT NULL;

-- Queued runs are claimed oldest first.
CREATE INDEX etl_run_queued_idx ON etl_run (queued_at) WHERE status = 'queued';
