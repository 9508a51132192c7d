-- A repeatable-question-group table is identified by its owning table as
-- well as its group concept: the same group concept can appear on an
-- enrolment form and on that program's exit form, and each gets a table.
ALTER TABLE table_metadata ADD COLUMN parent_table_type text;

-- Watermarks are looked up per table and organisation on every run.
CREATE INDEX IF NOT EXISTS table_metadata_schema_idx ON table_metadata (schema_name);
