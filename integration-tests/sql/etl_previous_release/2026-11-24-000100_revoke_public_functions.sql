-- PostgreSQL grants EXECUTE on new functions to PUBLIC. The manual recovery
-- functions drop schemas and metadata: only the ETL's own role (their owner)
-- and administrators may call them, never an organisation's role.
REVOKE EXECUTE ON FUNCTION delete_etl_metadata_for_schema(text, text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION delete_etl_metadata_for_org(text, text) FROM PUBLIC;
