-- The history of the deployment's own form-table migrations (the `*.sql`
-- files of the directory `form_migrations.directory` names), applied by
-- `migrator-service migrate`: one row per file, with the SHA-256 of its
-- text so a file changed after it was applied is refused by name.
CREATE TABLE form_migration (
    name       text        PRIMARY KEY,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
