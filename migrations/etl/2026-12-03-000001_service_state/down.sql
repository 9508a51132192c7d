DROP FUNCTION IF EXISTS etl_service.etl_try_numeric(text);
DROP FUNCTION IF EXISTS etl_service.etl_try_time(text);
DROP FUNCTION IF EXISTS etl_service.etl_try_timestamptz(text);
DROP TABLE IF EXISTS etl_service.etl_run_event;
DROP TABLE IF EXISTS etl_service.etl_run;
DROP TABLE IF EXISTS etl_service.etl_job;
