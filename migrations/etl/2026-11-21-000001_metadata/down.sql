DROP FUNCTION IF EXISTS delete_etl_metadata_for_org(text, text);
DROP FUNCTION IF EXISTS delete_etl_metadata_for_schema(text, text, text);
DROP TABLE IF EXISTS entity_sync_status;
DROP TABLE IF EXISTS index_metadata;
DROP TABLE IF EXISTS column_metadata;
DROP TABLE IF EXISTS table_metadata;
