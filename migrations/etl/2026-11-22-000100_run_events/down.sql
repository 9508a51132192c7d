DROP INDEX IF EXISTS etl_run_queued_idx;
DROP INDEX IF EXISTS etl_run_entity_finished_idx;
DROP TABLE IF EXISTS etl_run_event;
