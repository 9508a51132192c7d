DROP INDEX IF EXISTS table_metadata_schema_idx;
ALTER TABLE table_metadata DROP COLUMN parent_table_type;
