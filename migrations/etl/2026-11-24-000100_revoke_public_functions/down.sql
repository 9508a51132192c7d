GRANT EXECUTE ON FUNCTION delete_etl_metadata_for_schema(text, text, text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION delete_etl_metadata_for_org(text, text) TO PUBLIC;
