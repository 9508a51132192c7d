-- The ETL's metadata tables, compatible with the Avni ETL's own: they describe
-- every reporting schema the service maintains (tables, columns, indexes) and
-- each table's sync watermark. They live in the public schema of the database
-- that also holds the Avni source tables.

CREATE TABLE table_metadata (
    id                                      serial PRIMARY KEY,
    name                                    text        NOT NULL,
    type                                    text        NOT NULL,
    schema_name                             text        NOT NULL,
    subject_type_uuid                       text,
    program_uuid                            text,
    encounter_type_uuid                     text,
    form_uuid                               text,
    repeatable_question_group_concept_uuid  text,
    group_subject_type_uuid                 text,
    member_subject_type_uuid                text,
    -- The name before shortening, kept so a rename can be detected and shown.
    full_name                               text,
    -- A table whose form mapping was voided: kept, no longer synced.
    is_voided                               boolean     NOT NULL DEFAULT false,
    created_date_time                       timestamptz NOT NULL DEFAULT now(),
    last_modified_date_time                 timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT table_metadata_schema_name_unique UNIQUE (schema_name, name)
);

CREATE TABLE column_metadata (
    id                   serial PRIMARY KEY,
    table_id             integer     NOT NULL REFERENCES table_metadata (id) ON DELETE CASCADE,
    name                 text        NOT NULL,
    type                 text        NOT NULL,
    concept_uuid         text,
    concept_type         text,
    parent_concept_uuid  text,
    schema_name          text        NOT NULL,
    concept_voided       boolean     NOT NULL DEFAULT false,
    display_order        integer     NOT NULL DEFAULT 0,
    CONSTRAINT column_metadata_table_name_unique UNIQUE (table_id, name)
);
CREATE INDEX column_metadata_table_id_idx ON column_metadata (table_id);

CREATE TABLE index_metadata (
    id                 serial PRIMARY KEY,
    table_metadata_id  integer NOT NULL REFERENCES table_metadata (id) ON DELETE CASCADE,
    column_id          integer REFERENCES column_metadata (id) ON DELETE CASCADE,
    name               text    NOT NULL
);
CREATE INDEX index_metadata_table_idx ON index_metadata (table_metadata_id);

-- One row per (reporting table, source organisation): an organisation group's
-- schema keeps a separate watermark for each member organisation (db_user).
CREATE TABLE entity_sync_status (
    id                 serial PRIMARY KEY,
    db_user            text        NOT NULL,
    table_metadata_id  integer     NOT NULL REFERENCES table_metadata (id) ON DELETE CASCADE,
    last_sync_time     timestamptz NOT NULL DEFAULT '1900-01-01 00:00:00+00',
    sync_status        text        NOT NULL DEFAULT 'Running',
    schema_name        text        NOT NULL,
    CONSTRAINT entity_sync_status_table_user_unique UNIQUE (table_metadata_id, db_user)
);

-- Drops a reporting schema and every metadata row that describes it: the first
-- step of the reference system's manual recovery procedure, kept for people who
-- know it. RecreateSchema does the same under the organisation's lock.
CREATE FUNCTION delete_etl_metadata_for_schema(in_impl_schema text, in_db_user text, in_db_owner text)
    RETURNS boolean
    LANGUAGE plpgsql
AS $$
BEGIN
    EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', in_impl_schema);
    DELETE FROM entity_sync_status WHERE schema_name = in_impl_schema OR db_user = in_db_user;
    DELETE FROM index_metadata
     WHERE table_metadata_id IN (SELECT id FROM table_metadata WHERE schema_name = in_impl_schema);
    DELETE FROM column_metadata
     WHERE table_id IN (SELECT id FROM table_metadata WHERE schema_name = in_impl_schema);
    DELETE FROM table_metadata WHERE schema_name = in_impl_schema;
    IF in_db_owner IS NOT NULL AND in_db_owner <> '' THEN
        RAISE NOTICE 'reporting schema % of owner % dropped', in_impl_schema, in_db_owner;
    END IF;
    RETURN true;
END
$$;

-- Forgets one organisation's sync status in a schema, so its rows are synced
-- again from the start; for an organisation group, only that member's window
-- is reset.
CREATE FUNCTION delete_etl_metadata_for_org(in_impl_schema text, in_db_user text)
    RETURNS boolean
    LANGUAGE plpgsql
AS $$
BEGIN
    DELETE FROM entity_sync_status WHERE schema_name = in_impl_schema AND db_user = in_db_user;
    RETURN true;
END
$$;
