-- avni-server's functions that the ETL's behaviour depends on, written for
-- this fixture from what docs/real-systems/avni-server-schema.md §3 records
-- (avni-server's R__Functions.sql and V1_194 define the real ones). Same
-- names, signatures, languages and effects; every one SECURITY INVOKER,
-- owned by openchs, EXECUTE left to PUBLIC, as there. Load before
-- schema.sql: the sync_disabled CHECKs call the assert_* functions.

-- An organisation's (or group's) role: NOINHERIT LOGIN, openchs made a
-- member of it (so openchs may SET ROLE to it), and ALL on everything in
-- public that exists right now (a snapshot: no default privileges).
CREATE FUNCTION create_db_user(inrolname text, inpassword text) RETURNS bigint
LANGUAGE plpgsql AS $fn$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = inrolname) THEN
        EXECUTE format('CREATE ROLE %I NOINHERIT LOGIN PASSWORD %L', inrolname, inpassword);
    END IF;
    EXECUTE format('GRANT %I TO openchs', inrolname);
    PERFORM grant_all_on_all(inrolname);
    RETURN 1;
END
$fn$;

-- ALL on every base table of public, SELECT on openchs's views there, ALL
-- on its sequences, EXECUTE on its functions.
CREATE FUNCTION grant_all_on_all(rolename text) RETURNS text
LANGUAGE plpgsql AS $fn$
DECLARE
    tables text;
    views text;
BEGIN
    SELECT string_agg(format('%I.%I', table_schema, table_name), ', ') INTO tables
      FROM information_schema.tables
     WHERE table_schema = 'public' AND table_type = 'BASE TABLE';
    EXECUTE format('GRANT ALL ON TABLE %s TO %I', tables, rolename);
    SELECT string_agg(format('%I.%I', schemaname, viewname), ', ') INTO views
      FROM pg_catalog.pg_views WHERE schemaname = 'public' AND viewowner IN ('openchs');
    IF views IS NOT NULL THEN
        EXECUTE format('GRANT SELECT ON %s TO %I', views, rolename);
    END IF;
    EXECUTE format('GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO %I', rolename);
    EXECUTE format('GRANT ALL ON ALL FUNCTIONS IN SCHEMA public TO %I', rolename);
    RETURN 'ALL PERMISSIONS GRANTED TO ' || quote_ident(rolename);
END
$fn$;

-- One table (named as SQL text, as the real one takes it) and the sequences.
CREATE FUNCTION grant_all_on_table(rolename text, tablename text) RETURNS text
LANGUAGE plpgsql AS $fn$
BEGIN
    EXECUTE format('GRANT ALL ON TABLE %s TO %I', tablename, rolename);
    EXECUTE format('GRANT SELECT ON %s TO %I', tablename, rolename);
    EXECUTE format('GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO %I', rolename);
    RETURN 'ALL PERMISSIONS GRANTED TO ' || quote_ident(rolename);
END
$fn$;

-- The organisation's reporting schema, owned by its role. Identifiers are
-- put in double quotes without escaping, as avni-server does it.
CREATE FUNCTION create_implementation_schema(schema_name text, db_user text) RETURNS bigint
LANGUAGE plpgsql AS $fn$
BEGIN
    EXECUTE 'CREATE SCHEMA IF NOT EXISTS "' || schema_name || '" AUTHORIZATION "' || db_user || '"';
    EXECUTE 'GRANT ALL PRIVILEGES ON SCHEMA "' || schema_name || '" TO "' || db_user || '"';
    RETURN 1;
END
$fn$;

-- Manual recovery (avni-server's OrganisationService.deleteETLData calls it
-- with in_db_user = in_db_owner = organisation.db_user): as that role (a
-- session-level SET ROLE that outlives the call), drop the schema and
-- delete its ETL metadata, RLS applying to every delete. Arguments are
-- concatenated into literals unescaped, as in the real one.
CREATE FUNCTION delete_etl_metadata_for_schema(in_impl_schema text, in_db_user text, in_db_owner text)
RETURNS boolean LANGUAGE plpgsql AS $fn$
BEGIN
    EXECUTE 'set role "' || in_db_owner || '";';
    EXECUTE 'drop schema if exists "' || in_impl_schema || '" cascade;';
    EXECUTE 'delete from entity_sync_status where db_user = ''' || in_db_user || ''';';
    EXECUTE 'delete from entity_sync_status where schema_name = ''' || in_impl_schema || ''';';
    EXECUTE 'delete from index_metadata where table_metadata_id in '
         || '(select id from table_metadata where schema_name = ''' || in_impl_schema || ''');';
    EXECUTE 'delete from column_metadata where table_id in '
         || '(select id from table_metadata where schema_name = ''' || in_impl_schema || ''');';
    EXECUTE 'delete from table_metadata where schema_name = ''' || in_impl_schema || ''';';
    EXECUTE 'delete from post_etl_sync_status where db_user = ''' || in_db_user || ''';';
    RETURN true;
END
$fn$;

-- The same for an organisation group, as openchs (RLS bypassed), and the
-- schema must exist (no IF EXISTS).
CREATE FUNCTION delete_etl_metadata_for_org(in_impl_schema text, in_db_user text)
RETURNS boolean LANGUAGE plpgsql AS $fn$
BEGIN
    EXECUTE 'set role openchs;';
    EXECUTE 'drop schema "' || in_impl_schema || '" cascade;';
    EXECUTE 'delete from entity_sync_status where db_user = ''' || in_db_user || ''';';
    EXECUTE 'delete from entity_sync_status where schema_name = ''' || in_impl_schema || ''';';
    EXECUTE 'delete from index_metadata where table_metadata_id in '
         || '(select id from table_metadata where schema_name = ''' || in_impl_schema || ''');';
    EXECUTE 'delete from column_metadata where table_id in '
         || '(select id from table_metadata where schema_name = ''' || in_impl_schema || ''');';
    EXECUTE 'delete from table_metadata where schema_name = ''' || in_impl_schema || ''';';
    EXECUTE 'delete from post_etl_sync_status where db_user = ''' || in_db_user || ''';';
    RETURN true;
END
$fn$;

-- One reporting table and its metadata; `= (subquery)` fails when two
-- table_metadata rows match, as the real one does.
CREATE FUNCTION delete_etl_table_metadata(in_impl_schema text, in_db_owner text, in_table_name text)
RETURNS boolean LANGUAGE plpgsql AS $fn$
DECLARE
    one text := '(select id from table_metadata where name = ''' || in_table_name
             || ''' and schema_name = ''' || in_impl_schema || ''')';
BEGIN
    EXECUTE 'set role "' || in_db_owner || '";';
    EXECUTE 'delete from entity_sync_status where table_metadata_id = ' || one || ';';
    EXECUTE 'delete from index_metadata where table_metadata_id = ' || one || ';';
    EXECUTE 'delete from column_metadata where table_id = ' || one || ';';
    EXECUTE 'delete from table_metadata where name = ''' || in_table_name
         || ''' and schema_name = ''' || in_impl_schema || ''';';
    EXECUTE 'drop table if exists "' || in_impl_schema || '"."' || in_table_name || '"';
    RETURN true;
END
$fn$;

-- The audit trigger on (almost) every org table: a new row without
-- audit_id gets one and an audit row copied from its audit columns; an
-- update copies last_modified_* into its audit row. One NOTICE per row.
CREATE FUNCTION audit_table_trigger() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    new_audit integer;
BEGIN
    IF NEW.audit_id IS NULL THEN
        new_audit := nextval('audit_id_seq');
        NEW.audit_id := new_audit;
        RAISE NOTICE 'setting value of audit to %', NEW.audit_id;
        INSERT INTO audit (id, uuid, created_by_id, last_modified_by_id, created_date_time, last_modified_date_time)
        VALUES (new_audit, uuid_generate_v4(), NEW.created_by_id, NEW.last_modified_by_id,
                NEW.created_date_time, NEW.last_modified_date_time);
    ELSE
        UPDATE audit SET last_modified_date_time = NEW.last_modified_date_time,
                         last_modified_by_id = NEW.last_modified_by_id
         WHERE id = NEW.audit_id;
    END IF;
    RETURN NEW;
END
$fn$;

-- The sync_disabled CHECKs (NOT VALID on the tables): a child row's
-- sync_disabled must equal its subject's.
CREATE FUNCTION assert_subject_with_same_sync_disabled(syncdisabled boolean, subjectid bigint) RETURNS boolean
LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE NOTICE 'Checking sync disabled value: %, for subject id: %', syncdisabled, subjectid;
    IF EXISTS (SELECT 1 FROM public.individual s WHERE s.id = subjectid AND s.sync_disabled <> syncdisabled) THEN
        RAISE 'Sync disabled value cannot be different from individual. For individual id: %, sync disabled: %',
            subjectid, syncdisabled;
    END IF;
    RETURN true;
END
$fn$;

CREATE FUNCTION assert_one_of_subjects_with_sync_disabled(syncdisabled boolean, subjectid1 bigint, subjectid2 bigint)
RETURNS boolean LANGUAGE plpgsql AS $fn$
BEGIN
    IF (SELECT count(id) FROM public.individual s
         WHERE ((syncdisabled = false AND s.sync_disabled = false) OR syncdisabled)
           AND s.id IN (subjectid1, subjectid2)) < 2 THEN
        RAISE 'Sync can be enabled only if both the subjects have sync enabled. Subject ids: %, %. Sync disabled: %',
            subjectid1, subjectid2, syncdisabled;
    END IF;
    RETURN true;
END
$fn$;

CREATE FUNCTION program_encounter_sync_disabled_same_as_individual(syncdisabled boolean, programenrolmentid bigint)
RETURNS boolean LANGUAGE plpgsql AS $fn$
BEGIN
    IF EXISTS (SELECT 1 FROM public.individual s
                 JOIN public.program_enrolment pe ON pe.individual_id = s.id
                WHERE pe.id = programenrolmentid AND s.sync_disabled <> syncdisabled) THEN
        RAISE 'Sync disabled value cannot be different from individual. For program enrolment id: %, sync disabled: %',
            programenrolmentid, syncdisabled;
    END IF;
    RETURN true;
END
$fn$;
