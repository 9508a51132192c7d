DROP TABLE IF EXISTS error_audit;
DROP TABLE IF EXISTS migration_audit;
DROP TABLE IF EXISTS form_submission;
