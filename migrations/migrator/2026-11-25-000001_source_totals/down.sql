DROP TRIGGER IF EXISTS error_audit_totals ON error_audit;
DROP TRIGGER IF EXISTS migration_audit_totals ON migration_audit;
DROP FUNCTION IF EXISTS error_audit_totals();
DROP FUNCTION IF EXISTS migration_audit_totals();
DROP FUNCTION IF EXISTS source_totals_add(text, bigint, bigint, bigint);
DROP TABLE IF EXISTS source_totals;
