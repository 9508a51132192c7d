-- The metadata tables describing the reporting schemas are Avni's own
-- (avni-server V1_214..V1_297): table_metadata, column_metadata,
-- index_metadata and entity_sync_status in public, read by avni-server and
-- by whatever else reads avni-etl's metadata. On an Avni database they
-- exist, with RLS and possibly avni-etl's rows, and are used as they are:
-- never re-created, altered or dropped. Elsewhere (an empty database, the
-- project's test source) they are created in Avni's shape.
--
-- What the service keeps beyond Avni's shape lives in etl_service, in
-- extension tables keyed to Avni's rows (removed with them, so Avni's own
-- recovery functions, which delete Avni's rows, clear it too):
--   table_metadata_ext   a table's name before shortening, the table that
--                        owns a repeatable group's table, voided or not;
--   column_metadata_ext  a column's exact PostgreSQL type and concept data
--                        type (column_metadata holds them in avni-etl's
--                        vocabulary), its order, identity and base name;
--   watermark            which organisation an entity_sync_status row is
--                        the window of (Avni keys it by db_user, which the
--                        members of a group may share).

-- Created only where missing, and tested first: on an Avni database the
-- service's role may be neither their owner nor allowed to CREATE in public,
-- and CREATE ... IF NOT EXISTS checks those rights before it looks.
DO $$
BEGIN
    IF to_regclass('public.table_metadata') IS NULL THEN
        CREATE TABLE public.table_metadata (
            id                                      serial PRIMARY KEY,
            name                                    text,
            type                                    text,
            schema_name                             text,
            subject_type_uuid                       varchar(255),
            program_uuid                            varchar(255),
            encounter_type_uuid                     varchar(255),
            form_uuid                               varchar(255),
            group_subject_type_uuid                 varchar(255),
            member_subject_type_uuid                varchar(255),
            repeatable_question_group_concept_uuid  varchar(255)
        );
    END IF;
    IF to_regclass('public.column_metadata') IS NULL THEN
        CREATE TABLE public.column_metadata (
            id                   serial PRIMARY KEY,
            table_id             integer REFERENCES public.table_metadata (id),
            name                 text,
            type                 text,
            concept_id           integer,
            concept_type         text,
            concept_uuid         varchar(255),
            schema_name          text,
            parent_concept_uuid  varchar(255),
            concept_voided       boolean DEFAULT false
        );
        CREATE INDEX table_metadata_table_id_idx ON public.column_metadata (table_id);
    END IF;
    IF to_regclass('public.index_metadata') IS NULL THEN
        CREATE TABLE public.index_metadata (
            id                 serial PRIMARY KEY,
            table_metadata_id  integer REFERENCES public.table_metadata (id),
            column_id          integer REFERENCES public.column_metadata (id),
            name               text
        );
    END IF;
    IF to_regclass('public.entity_sync_status') IS NULL THEN
        CREATE TABLE public.entity_sync_status (
            id                 serial PRIMARY KEY,
            db_user            text,
            table_metadata_id  integer REFERENCES public.table_metadata (id),
            last_sync_time     timestamptz(3),
            sync_status        text,
            schema_name        text NOT NULL
        );
    END IF;
END
$$;

CREATE TABLE IF NOT EXISTS etl_service.table_metadata_ext (
    table_metadata_id        integer     PRIMARY KEY REFERENCES public.table_metadata (id) ON DELETE CASCADE,
    full_name                text,
    parent_table_type        text,
    -- A table whose form mapping was voided: kept, no longer synced.
    is_voided                boolean     NOT NULL DEFAULT false,
    created_date_time        timestamptz NOT NULL DEFAULT now(),
    last_modified_date_time  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS etl_service.column_metadata_ext (
    column_metadata_id  integer PRIMARY KEY REFERENCES public.column_metadata (id) ON DELETE CASCADE,
    sql_type            text    NOT NULL,
    concept_type        text,
    display_order       integer NOT NULL DEFAULT 0,
    -- 'concept:<concept uuid>:<parent concept uuid>' for a question,
    -- 'fixed:<name>' for a column every table of its kind has,
    -- 'name:<name>' for an address level's column (design/etl.md §5.2).
    source_key          text,
    base_name           text
);

-- One row per (reporting table, member organisation): the window is the
-- organisation's, whatever db_user it shares. The window itself is kept
-- here; Avni's row holds a copy for Avni's readers: every role
-- create_db_user() makes may write public.entity_sync_status, and a copy
-- moved forward must not make a run skip changes. Deleting Avni's row
-- (Avni's recovery functions) still resets the window.
CREATE TABLE IF NOT EXISTS etl_service.watermark (
    entity_sync_status_id  integer PRIMARY KEY REFERENCES public.entity_sync_status (id) ON DELETE CASCADE,
    table_metadata_id      integer NOT NULL,
    organisation_id        integer NOT NULL,
    last_sync_time         timestamptz NOT NULL,
    CONSTRAINT watermark_table_organisation_unique UNIQUE (table_metadata_id, organisation_id)
);

-- A database the previous release migrated holds the tables in its own
-- shape: what is beyond Avni's goes to the extension tables, the rest is
-- brought to Avni's shape and vocabulary.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns
                WHERE table_schema = 'public' AND table_name = 'table_metadata'
                  AND column_name = 'full_name') THEN
        INSERT INTO etl_service.table_metadata_ext
               (table_metadata_id, full_name, parent_table_type, is_voided,
                created_date_time, last_modified_date_time)
        SELECT id, full_name, parent_table_type, is_voided, created_date_time, last_modified_date_time
          FROM public.table_metadata
        ON CONFLICT DO NOTHING;
        ALTER TABLE public.table_metadata
            DROP CONSTRAINT IF EXISTS table_metadata_schema_name_unique,
            DROP COLUMN full_name,
            DROP COLUMN IF EXISTS parent_table_type,
            DROP COLUMN is_voided,
            DROP COLUMN created_date_time,
            DROP COLUMN last_modified_date_time,
            ALTER COLUMN name DROP NOT NULL,
            ALTER COLUMN type DROP NOT NULL,
            ALTER COLUMN schema_name DROP NOT NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM information_schema.columns
                WHERE table_schema = 'public' AND table_name = 'column_metadata'
                  AND column_name = 'display_order') THEN
        INSERT INTO etl_service.column_metadata_ext
               (column_metadata_id, sql_type, concept_type, display_order, source_key, base_name)
        SELECT id, type, concept_type, display_order, source_key, base_name
          FROM public.column_metadata
        ON CONFLICT DO NOTHING;
        UPDATE public.column_metadata
           SET type = CASE type
                   WHEN 'boolean' THEN 'bool'
                   WHEN 'timestamptz' THEN 'timestampWithTimezone'
                   WHEN 'bigint' THEN 'integer'
                   ELSE type END,
               concept_type = CASE WHEN concept_type = 'Coded' THEN 'SingleSelect' ELSE concept_type END;
        ALTER TABLE public.column_metadata
            DROP CONSTRAINT IF EXISTS column_metadata_table_name_unique,
            DROP COLUMN display_order,
            DROP COLUMN IF EXISTS source_key,
            DROP COLUMN IF EXISTS base_name,
            ADD COLUMN IF NOT EXISTS concept_id integer,
            ALTER COLUMN table_id DROP NOT NULL,
            ALTER COLUMN name DROP NOT NULL,
            ALTER COLUMN type DROP NOT NULL,
            ALTER COLUMN schema_name DROP NOT NULL,
            ALTER COLUMN concept_voided DROP NOT NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_constraint
                WHERE conname = 'entity_sync_status_table_user_unique'
                  AND conrelid = 'public.entity_sync_status'::regclass) THEN
        -- Its windows were per db_user: each becomes the window of the one
        -- organisation with that db_user. Where several share one, the
        -- window was never theirs alone (rows were lost, issue #18.1): it
        -- is dropped, so their tables are synced again from the start.
        IF to_regclass('public.organisation') IS NOT NULL THEN
            INSERT INTO etl_service.watermark
                   (entity_sync_status_id, table_metadata_id, organisation_id, last_sync_time)
            SELECT s.id, s.table_metadata_id, min(o.id), s.last_sync_time
              FROM public.entity_sync_status s
              JOIN public.organisation o ON o.db_user = s.db_user
             GROUP BY s.id, s.table_metadata_id, s.last_sync_time
            HAVING count(*) = 1
            ON CONFLICT DO NOTHING;
        END IF;
        DELETE FROM public.entity_sync_status s
         WHERE NOT EXISTS (SELECT 1 FROM etl_service.watermark w WHERE w.entity_sync_status_id = s.id);
        ALTER TABLE public.entity_sync_status
            DROP CONSTRAINT entity_sync_status_table_user_unique,
            ALTER COLUMN db_user DROP NOT NULL,
            ALTER COLUMN table_metadata_id DROP NOT NULL,
            ALTER COLUMN last_sync_time DROP NOT NULL,
            ALTER COLUMN last_sync_time DROP DEFAULT,
            ALTER COLUMN sync_status DROP NOT NULL,
            ALTER COLUMN sync_status DROP DEFAULT;
        ALTER TABLE public.index_metadata ALTER COLUMN table_metadata_id DROP NOT NULL;
    END IF;
END
$$;

-- avni-server's manual recovery functions (R__Functions.sql). Where Avni
-- has them they are Avni's and are left alone: never replaced, their
-- grants untouched. Elsewhere they are created with Avni's signatures and
-- meaning, run with the caller's rights, and callable only by their owner
-- and administrators.
DO $do$
BEGIN
    IF to_regprocedure('public.delete_etl_metadata_for_schema(text, text, text)') IS NULL THEN
        EXECUTE $ddl$
            CREATE FUNCTION public.delete_etl_metadata_for_schema(in_impl_schema text, in_db_user text, in_db_owner text)
                RETURNS boolean
                LANGUAGE plpgsql
            AS $f$
            BEGIN
                EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', in_impl_schema);
                DELETE FROM public.entity_sync_status WHERE schema_name = in_impl_schema OR db_user = in_db_user;
                DELETE FROM public.index_metadata
                 WHERE table_metadata_id IN (SELECT id FROM public.table_metadata WHERE schema_name = in_impl_schema);
                DELETE FROM public.column_metadata
                 WHERE table_id IN (SELECT id FROM public.table_metadata WHERE schema_name = in_impl_schema);
                DELETE FROM public.table_metadata WHERE schema_name = in_impl_schema;
                RETURN true;
            END
            $f$
        $ddl$;
        REVOKE EXECUTE ON FUNCTION public.delete_etl_metadata_for_schema(text, text, text) FROM PUBLIC;
    END IF;
    IF to_regprocedure('public.delete_etl_metadata_for_org(text, text)') IS NULL THEN
        EXECUTE $ddl$
            CREATE FUNCTION public.delete_etl_metadata_for_org(in_impl_schema text, in_db_user text)
                RETURNS boolean
                LANGUAGE plpgsql
            AS $f$
            BEGIN
                DELETE FROM public.entity_sync_status WHERE schema_name = in_impl_schema AND db_user = in_db_user;
                RETURN true;
            END
            $f$
        $ddl$;
        REVOKE EXECUTE ON FUNCTION public.delete_etl_metadata_for_org(text, text) FROM PUBLIC;
    END IF;
END
$do$;
