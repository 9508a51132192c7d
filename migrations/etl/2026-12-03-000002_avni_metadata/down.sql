-- Avni's tables and functions in public are left: they may be Avni's.
DROP TABLE IF EXISTS etl_service.watermark;
DROP TABLE IF EXISTS etl_service.column_metadata_ext;
DROP TABLE IF EXISTS etl_service.table_metadata_ext;
