DROP FUNCTION IF EXISTS etl_try_numeric(text);
DROP FUNCTION IF EXISTS etl_try_time(text);
DROP FUNCTION IF EXISTS etl_try_timestamptz(text);
ALTER TABLE column_metadata DROP COLUMN IF EXISTS base_name;
ALTER TABLE column_metadata DROP COLUMN IF EXISTS source_key;
