DROP TABLE form_migration;
