//! The ETL's migrations on the databases it meets (issue #14 items 1 and
//! 6): an Avni database, whose `public` already holds avni-server's
//! metadata tables (RLS on, possibly avni-etl's rows) and recovery
//! functions; an empty one; and one the previous release migrated. The
//! service's own state lives in `etl_service`, which a role avni-server's
//! `create_db_user()` makes after `migrate` cannot read.
//!
//! The avni-server objects below are written from the facts in
//! docs/real-systems/avni-server-schema.md (§1 metadata tables, §2.3 their
//! policies, §3.1 `create_db_user` / `grant_all_on_all`, §3.2 the recovery
//! functions), not copied.

use etl_service::engine::{self, NoProgress, RunOptions, RunReport};
use integration_tests::avni::{self, Org, Size, Spec};
use integration_tests::etl::{context, org_ref};
use integration_tests::postgres::{DropRoles, TestDatabase};
use service_kit::sql::{quote_ident, quote_qualified};
use tokio_postgres::Client;

const SMALL: Size = Size {
    subjects_per_type: 3,
    encounters_per_enrolment: 1,
    encounters_per_subject: 1,
};

/// avni-server's metadata tables, their policies, and the functions the
/// ETL meets in `public` (after the source tables, which the policies read).
const AVNI_METADATA: &str = r#"
CREATE TABLE public.table_metadata (
    id serial PRIMARY KEY, name text, type text, schema_name text,
    subject_type_uuid varchar(255), program_uuid varchar(255), encounter_type_uuid varchar(255),
    form_uuid varchar(255), group_subject_type_uuid varchar(255), member_subject_type_uuid varchar(255),
    repeatable_question_group_concept_uuid varchar(255));
CREATE TABLE public.column_metadata (
    id serial PRIMARY KEY, table_id integer REFERENCES public.table_metadata (id), name text, type text,
    concept_id integer REFERENCES public.concept (id), concept_type text, concept_uuid varchar(255),
    schema_name text, parent_concept_uuid varchar(255), concept_voided boolean DEFAULT false);
CREATE INDEX table_metadata_table_id_idx ON public.column_metadata (table_id);
CREATE TABLE public.index_metadata (
    id serial PRIMARY KEY, table_metadata_id integer REFERENCES public.table_metadata (id),
    column_id integer REFERENCES public.column_metadata (id), name text);
CREATE TABLE public.entity_sync_status (
    id serial PRIMARY KEY, db_user text, table_metadata_id integer REFERENCES public.table_metadata (id),
    last_sync_time timestamptz(3), sync_status text, schema_name text NOT NULL);
CREATE TABLE public.post_etl_sync_status (
    id serial PRIMARY KEY, cutoff_datetime timestamptz NOT NULL, db_user text NOT NULL,
    CONSTRAINT post_etl_sync_status_db_user_key UNIQUE (db_user));

ALTER TABLE public.table_metadata ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.column_metadata ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.entity_sync_status ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.post_etl_sync_status ENABLE ROW LEVEL SECURITY;
CREATE POLICY table_metadata_rls_policy ON public.table_metadata
    USING (schema_name IN (SELECT s.schema_name FROM (SELECT db_user, schema_name FROM public.organisation
           UNION ALL SELECT db_user, schema_name FROM public.organisation_group) s WHERE s.db_user = current_user))
    WITH CHECK (schema_name IN (SELECT s.schema_name FROM (SELECT db_user, schema_name FROM public.organisation
           UNION ALL SELECT db_user, schema_name FROM public.organisation_group) s WHERE s.db_user = current_user));
CREATE POLICY column_metadata_rls_policy ON public.column_metadata
    USING (schema_name IN (SELECT s.schema_name FROM (SELECT db_user, schema_name FROM public.organisation
           UNION ALL SELECT db_user, schema_name FROM public.organisation_group) s WHERE s.db_user = current_user))
    WITH CHECK (schema_name IN (SELECT s.schema_name FROM (SELECT db_user, schema_name FROM public.organisation
           UNION ALL SELECT db_user, schema_name FROM public.organisation_group) s WHERE s.db_user = current_user));
CREATE POLICY entity_sync_status_rls_policy ON public.entity_sync_status
    USING (db_user = current_user) WITH CHECK (db_user = current_user);
CREATE POLICY post_etl_sync_status_rls_policy ON public.post_etl_sync_status
    USING (db_user = current_user) WITH CHECK (db_user = current_user);

-- The recovery functions: plain concatenation, a session-level SET ROLE.
CREATE FUNCTION public.delete_etl_metadata_for_schema(in_impl_schema text, in_db_user text, in_db_owner text)
    RETURNS bool LANGUAGE plpgsql AS $f$
BEGIN
    EXECUTE 'set role "' || in_db_owner || '";';
    EXECUTE 'drop schema if exists "' || in_impl_schema || '" cascade;';
    EXECUTE 'delete from entity_sync_status where db_user = ''' || in_db_user || ''';';
    EXECUTE 'delete from entity_sync_status where schema_name = ''' || in_impl_schema || ''';';
    EXECUTE 'delete from index_metadata where table_metadata_id in (select id from table_metadata where schema_name = ''' || in_impl_schema || ''');';
    EXECUTE 'delete from column_metadata where table_id in (select id from table_metadata where schema_name = ''' || in_impl_schema || ''');';
    EXECUTE 'delete from table_metadata where schema_name = ''' || in_impl_schema || ''';';
    EXECUTE 'delete from post_etl_sync_status where db_user = ''' || in_db_user || ''';';
    RETURN true;
END $f$;
CREATE FUNCTION public.delete_etl_metadata_for_org(in_impl_schema text, in_db_user text)
    RETURNS bool LANGUAGE plpgsql AS $f$
BEGIN
    EXECUTE 'set role openchs;';
    EXECUTE 'drop schema "' || in_impl_schema || '" cascade;';
    EXECUTE 'delete from entity_sync_status where db_user = ''' || in_db_user || ''';';
    RETURN true;
END $f$;

"#;

/// avni-server's `create_db_user` and `grant_all_on_all`.
const AVNI_ROLE_FUNCTIONS: &str = r#"
-- create_db_user: the role (NOINHERIT LOGIN), membership for the
-- application's role, and ALL on everything in public.
CREATE FUNCTION public.grant_all_on_all(rolename text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE t record;
BEGIN
    FOR t IN SELECT table_name FROM information_schema.tables
              WHERE table_schema = 'public' AND table_type = 'BASE TABLE' LOOP
        EXECUTE 'GRANT ALL ON TABLE public."' || t.table_name || '" TO "' || rolename || '"';
    END LOOP;
    EXECUTE 'GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO "' || rolename || '"';
    EXECUTE 'GRANT ALL ON ALL FUNCTIONS IN SCHEMA public TO "' || rolename || '"';
    RETURN 'ALL PERMISSIONS GRANTED TO ' || rolename;
END $f$;
CREATE FUNCTION public.create_db_user(inrolname text, inpassword text) RETURNS bigint LANGUAGE plpgsql AS $f$
BEGIN
    IF NOT EXISTS (SELECT rolname FROM pg_roles WHERE rolname = inrolname) THEN
        EXECUTE 'CREATE ROLE "' || inrolname || '" NOINHERIT LOGIN PASSWORD ''' || inpassword || '''';
    END IF;
    EXECUTE 'GRANT "' || inrolname || '" TO CURRENT_USER';
    PERFORM public.grant_all_on_all(inrolname);
    RETURN 1;
END $f$;
"#;

/// avni-etl's rows for a schema it built (its vocabulary: `bool`,
/// `timestampWithTimezone`, `SingleSelect`).
const AVNI_ETL_ROWS: &str = r#"
INSERT INTO public.table_metadata (name, type, schema_name, subject_type_uuid, form_uuid)
VALUES ('person', 'Person', 'legacy_org', 'st-legacy', 'form-legacy');
INSERT INTO public.column_metadata (table_id, name, type, concept_type, concept_uuid, schema_name)
SELECT id, 'is_voided', 'bool', NULL, NULL, 'legacy_org' FROM public.table_metadata WHERE schema_name = 'legacy_org'
UNION ALL
SELECT id, 'Blood group', 'text', 'SingleSelect', 'c-legacy', 'legacy_org' FROM public.table_metadata WHERE schema_name = 'legacy_org';
INSERT INTO public.index_metadata (table_metadata_id, column_id, name)
SELECT c.table_id, c.id, 'legacy_org_6f1c_idx' FROM public.column_metadata c WHERE c.name = 'is_voided';
INSERT INTO public.entity_sync_status (db_user, table_metadata_id, last_sync_time, sync_status, schema_name)
SELECT 'legacy_user', id, '2026-01-02 03:04:05.678+00', 'Success', 'legacy_org' FROM public.table_metadata WHERE schema_name = 'legacy_org';
"#;

async fn text_rows(client: &Client, sql: &str) -> Vec<String> {
    client
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{e}\n{sql}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Everything of avni-server's in `public` the ETL must leave as it is:
/// the metadata tables' columns, constraints, RLS and policies and grants,
/// the functions' text and grants, and avni-etl's rows.
async fn avni_objects(client: &Client) -> Vec<String> {
    text_rows(
        client,
        "SELECT x FROM ( \
           SELECT format('column %s.%s %s %s %s', table_name, column_name, data_type, is_nullable, \
                         coalesce(column_default, '')) AS x \
             FROM information_schema.columns WHERE table_schema = 'public' \
              AND table_name IN ('table_metadata', 'column_metadata', 'index_metadata', \
                                 'entity_sync_status', 'post_etl_sync_status') \
           UNION ALL \
           SELECT format('constraint %s %s %s', conrelid::regclass, conname, pg_get_constraintdef(oid)) \
             FROM pg_constraint WHERE connamespace = 'public'::regnamespace \
              AND conrelid::regclass::text IN ('table_metadata', 'column_metadata', 'index_metadata', \
                                               'entity_sync_status', 'post_etl_sync_status') \
           UNION ALL \
           SELECT format('relation %s rls=%s acl=%s', relname, relrowsecurity, coalesce(relacl::text, '')) \
             FROM pg_class WHERE relnamespace = 'public'::regnamespace \
              AND relname IN ('table_metadata', 'column_metadata', 'index_metadata', \
                              'entity_sync_status', 'post_etl_sync_status') \
           UNION ALL \
           SELECT format('policy %s %s %s %s', tablename, policyname, qual, with_check) FROM pg_policies \
            WHERE schemaname = 'public' \
           UNION ALL \
           SELECT format('function %s %s %s', p.oid::regprocedure, md5(pg_get_functiondef(p.oid)), \
                         coalesce(p.proacl::text, '')) \
             FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace \
           UNION ALL \
           SELECT format('row %s', t.*) FROM public.table_metadata t WHERE schema_name = 'legacy_org' \
           UNION ALL \
           SELECT format('row %s', c.*) FROM public.column_metadata c WHERE schema_name = 'legacy_org' \
           UNION ALL \
           SELECT format('row %s', s.*) FROM public.entity_sync_status s WHERE schema_name = 'legacy_org' \
           UNION ALL \
           SELECT format('row %s', i.*) FROM public.index_metadata i \
            WHERE i.table_metadata_id IN (SELECT id FROM public.table_metadata WHERE schema_name = 'legacy_org') \
         ) o ORDER BY x",
    )
    .await
}

async fn migrate(url: &str) -> Vec<String> {
    service_kit::db::run_pending_migrations(url, etl_service::migrations::migrations())
        .await
        .unwrap_or_else(|e| panic!("migrate: {e}"))
}

async fn run(url: &str, org: &Org) -> RunReport {
    engine::run_entity(
        &context(url),
        org_ref(org),
        &RunOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap_or_else(|e| panic!("run of {}: {e}", org.name))
}

/// A database as avni-server leaves it: the source, its metadata tables
/// with avni-etl's rows, its functions. Not migrated.
async fn avni_database(seed: u64) -> (TestDatabase, Client, Org) {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let world = avni::generate(
        &client,
        &Spec {
            seed,
            size: SMALL,
            ..Spec::default()
        },
    )
    .await;
    client
        .batch_execute(AVNI_METADATA)
        .await
        .expect("avni-server's metadata tables and functions");
    client
        .batch_execute(AVNI_ROLE_FUNCTIONS)
        .await
        .expect("avni-server's create_db_user");
    client
        .batch_execute(AVNI_ETL_ROWS)
        .await
        .expect("avni-etl's rows");
    let org = world.organisations[0].clone();
    (db, client, org)
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_on_an_avni_database_keeps_avnis_tables_functions_and_rows() {
    let (db, client, org) = avni_database(81).await;
    let before = avni_objects(&client).await;
    assert!(before.iter().any(|o| o.starts_with("policy")), "{before:?}");

    let first = migrate(&db.url).await;
    assert_eq!(
        first,
        [
            "2026-12-03-000001_service_state",
            "2026-12-03-000002_avni_metadata",
            "2026-12-03-000003_metadata_rls"
        ]
    );
    assert!(
        migrate(&db.url).await.is_empty(),
        "a second migrate does nothing"
    );
    assert_eq!(
        avni_objects(&client).await,
        before,
        "Avni's objects after migrate"
    );
    let history = text_rows(
        &client,
        "SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relname = '__diesel_schema_migrations'",
    )
    .await;
    assert_eq!(
        history,
        ["etl_service"],
        "the migration history is the service's"
    );

    // A run works on Avni's tables, in Avni's vocabulary, and leaves
    // avni-etl's rows and Avni's objects as they were.
    let report = run(&db.url, &org).await;
    assert!(report.rows_upserted() > 0);
    let types = text_rows(
        &client,
        &format!(
            "SELECT DISTINCT type FROM public.column_metadata WHERE schema_name = {} ORDER BY 1",
            service_kit::sql::quote_literal(&org.schema_name)
        ),
    )
    .await;
    let avni_etl_vocabulary = [
        "serial",
        "integer",
        "numeric",
        "date",
        "time",
        "text",
        "bool",
        "point",
        "timestamp",
        "timestampWithTimezone",
        "jsonb",
    ];
    for t in &types {
        assert!(
            avni_etl_vocabulary.contains(&t.as_str()),
            "type {t} in {types:?}"
        );
    }
    let coded = text_rows(
        &client,
        "SELECT DISTINCT concept_type FROM public.column_metadata WHERE concept_type = 'Coded'",
    )
    .await;
    assert!(coded.is_empty(), "coded questions are Single/MultiSelect");
    assert_eq!(
        avni_objects(&client).await,
        before,
        "Avni's objects after a run"
    );
    let person = quote_qualified(&org.schema_name, "person");
    let persons: i64 = client
        .query_one(&format!("SELECT count(*) FROM {person}"), &[])
        .await
        .expect("persons")
        .get(0);
    assert_eq!(persons, SMALL.subjects_per_type);
    assert_eq!(run(&db.url, &org).await.rows_upserted(), 0, "incremental");

    // Avni's own recovery function (deleting Avni's rows) clears what the
    // service keeps beside them; the next run rebuilds from scratch.
    client
        .execute(
            "SELECT public.delete_etl_metadata_for_schema($1, $2, current_user)",
            &[&org.schema_name, &org.db_user],
        )
        .await
        .expect("Avni's recovery function");
    client.batch_execute("RESET ROLE").await.expect("reset");
    let left = text_rows(
        &client,
        "SELECT format('%s %s %s', (SELECT count(*) FROM etl_service.table_metadata_ext), \
                (SELECT count(*) FROM etl_service.column_metadata_ext), \
                (SELECT count(*) FROM etl_service.watermark))",
    )
    .await;
    assert_eq!(left, ["0 0 0"], "the extension rows went with Avni's");
    let rebuilt = run(&db.url, &org).await;
    assert_eq!(
        rebuilt.rows_upserted(),
        report.rows_upserted(),
        "rebuilt in full"
    );
    assert_eq!(
        avni_objects(&client).await,
        before,
        "Avni's objects after the recovery"
    );
}

/// The project's test source without any metadata tables, then `migrate`
/// (twice) and a run.
#[tokio::test(flavor = "multi_thread")]
async fn migrate_on_the_test_source_then_run() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let world = avni::generate(
        &client,
        &Spec {
            seed: 85,
            size: SMALL,
            ..Spec::default()
        },
    )
    .await;
    assert_eq!(migrate(&db.url).await.len(), 3);
    assert!(migrate(&db.url).await.is_empty());
    let org = &world.organisations[0];
    assert!(run(&db.url, org).await.rows_upserted() > 0);
    assert_eq!(run(&db.url, org).await.rows_upserted(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_on_an_empty_database_twice() {
    let db = TestDatabase::new().await;
    assert_eq!(migrate(&db.url).await.len(), 3);
    assert!(migrate(&db.url).await.is_empty());
    let client = db.client().await;
    let public = text_rows(
        &client,
        "SELECT relname::text FROM pg_class WHERE relnamespace = 'public'::regnamespace \
         AND relkind = 'r' ORDER BY 1",
    )
    .await;
    assert_eq!(
        public,
        [
            "column_metadata",
            "entity_sync_status",
            "index_metadata",
            "table_metadata"
        ],
        "only Avni's metadata tables in public"
    );
}

/// A role avni-server's `create_db_user()` makes after `migrate` and a run
/// (ALL on every table of public, EXECUTE on its functions) reads, writes
/// and calls nothing of the service's state.
#[tokio::test(flavor = "multi_thread")]
async fn a_role_made_by_create_db_user_after_migrate_reads_nothing_of_the_service() {
    let (db, client, org) = avni_database(82).await;
    migrate(&db.url).await;
    run(&db.url, &org).await;
    client
        .batch_execute(
            "INSERT INTO etl_service.etl_job (entity_uuid, entity_type, interval_seconds) \
             VALUES (gen_random_uuid(), 'organisation', 60); \
             INSERT INTO etl_service.etl_run (entity_uuid, entity_type, trigger, status) \
             VALUES (gen_random_uuid(), 'organisation', 'run_now', 'succeeded')",
        )
        .await
        .expect("a job and a run");
    let role = format!("etl_test_late_org_{}", uuid::Uuid::new_v4().simple());
    let _drop = DropRoles {
        names: vec![role.clone()],
        ending_with: None,
    };
    client
        .execute("SELECT public.create_db_user($1, 'secret')", &[&role])
        .await
        .expect("create_db_user");

    let relations = text_rows(
        &client,
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'etl_service' AND c.relkind IN ('r', 'v', 'S') ORDER BY 1",
    )
    .await;
    assert!(relations.len() >= 8, "{relations:?}");
    let functions = text_rows(
        &client,
        "SELECT p.oid::regprocedure::text FROM pg_proc p \
         WHERE p.pronamespace = 'etl_service'::regnamespace ORDER BY 1",
    )
    .await;
    assert_eq!(functions.len(), 3, "{functions:?}");
    let mut statements: Vec<String> = relations
        .iter()
        .map(|r| format!("SELECT * FROM {r} LIMIT 1"))
        .collect();
    statements.extend([
        "DELETE FROM etl_service.etl_job".to_string(),
        "UPDATE etl_service.etl_run SET status = 'failed'".to_string(),
        "DELETE FROM etl_service.watermark".to_string(),
        "SELECT etl_service.etl_try_numeric('1')".to_string(),
    ]);
    client
        .batch_execute(&format!("SET ROLE {}", quote_ident(&role)))
        .await
        .expect("set role");
    let mut refused = Vec::new();
    for sql in &statements {
        match client.simple_query(sql).await {
            Ok(_) => refused.push(format!("ALLOWED: {sql}")),
            Err(e) => {
                let code = e.as_db_error().map(|d| d.code().clone());
                assert_eq!(
                    code,
                    Some(tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
                    "{sql}: {e}"
                );
            }
        }
    }
    client.batch_execute("RESET ROLE").await.expect("reset");
    assert!(refused.is_empty(), "{refused:?}");
    let usage: bool = client
        .query_one(
            "SELECT has_schema_privilege($1, 'etl_service', 'USAGE')",
            &[&role],
        )
        .await
        .expect("usage")
        .get(0);
    assert!(!usage, "no USAGE on etl_service");
    let in_public = text_rows(
        &client,
        "SELECT relname::text FROM pg_class WHERE relnamespace = 'public'::regnamespace \
         AND (relname LIKE 'etl\\_%' OR relname LIKE '%\\_ext' OR relname = 'watermark' \
              OR relname = '__diesel_schema_migrations')",
    )
    .await;
    assert!(
        in_public.is_empty(),
        "nothing of the service in public: {in_public:?}"
    );
    eprintln!(
        "{} statements on etl_service refused to a role create_db_user made",
        statements.len()
    );
}

/// The previous release's migrations, as it applied them (history in
/// public).
const PREVIOUS_RELEASE: [(&str, &str); 6] = [
    (
        "20261121000001",
        include_str!("../sql/etl_previous_release/2026-11-21-000001_metadata.sql"),
    ),
    (
        "20261121000002",
        include_str!("../sql/etl_previous_release/2026-11-21-000002_jobs.sql"),
    ),
    (
        "20261122000001",
        include_str!("../sql/etl_previous_release/2026-11-22-000001_engine.sql"),
    ),
    (
        "20261122000100",
        include_str!("../sql/etl_previous_release/2026-11-22-000100_run_events.sql"),
    ),
    (
        "20261123000001",
        include_str!("../sql/etl_previous_release/2026-11-23-000001_evolution.sql"),
    ),
    (
        "20261124000100",
        include_str!("../sql/etl_previous_release/2026-11-24-000100_revoke_public_functions.sql"),
    ),
];

const HISTORY: &str = "CREATE TABLE public.__diesel_schema_migrations ( \
     version VARCHAR(50) PRIMARY KEY NOT NULL, run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)";

/// The state a run of this release leaves, brought back to the previous
/// release's layout (its tables in public in its own shape, its history
/// in public): what a deployment of the previous release holds. The test
/// checks the layout equals the one the previous release's migrations make.
const TO_PREVIOUS_RELEASE: &str = r#"
ALTER TABLE etl_service.etl_job SET SCHEMA public;
ALTER TABLE etl_service.etl_run SET SCHEMA public;
ALTER TABLE etl_service.etl_run_event SET SCHEMA public;
ALTER FUNCTION etl_service.etl_try_timestamptz(text) SET SCHEMA public;
ALTER FUNCTION etl_service.etl_try_time(text) SET SCHEMA public;
ALTER FUNCTION etl_service.etl_try_numeric(text) SET SCHEMA public;
ALTER TABLE public.table_metadata
    ALTER COLUMN name SET NOT NULL, ALTER COLUMN type SET NOT NULL, ALTER COLUMN schema_name SET NOT NULL,
    ALTER COLUMN subject_type_uuid TYPE text, ALTER COLUMN program_uuid TYPE text,
    ALTER COLUMN encounter_type_uuid TYPE text, ALTER COLUMN form_uuid TYPE text,
    ALTER COLUMN repeatable_question_group_concept_uuid TYPE text,
    ALTER COLUMN group_subject_type_uuid TYPE text, ALTER COLUMN member_subject_type_uuid TYPE text,
    ADD COLUMN full_name text,
    ADD COLUMN is_voided boolean NOT NULL DEFAULT false,
    ADD COLUMN created_date_time timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN last_modified_date_time timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN parent_table_type text,
    ADD CONSTRAINT table_metadata_schema_name_unique UNIQUE (schema_name, name);
UPDATE public.table_metadata t
   SET full_name = x.full_name, is_voided = x.is_voided, parent_table_type = x.parent_table_type
  FROM etl_service.table_metadata_ext x WHERE x.table_metadata_id = t.id;
ALTER TABLE public.column_metadata
    DROP CONSTRAINT column_metadata_table_id_fkey,
    DROP COLUMN concept_id,
    ALTER COLUMN table_id SET NOT NULL, ALTER COLUMN name SET NOT NULL, ALTER COLUMN type SET NOT NULL,
    ALTER COLUMN schema_name SET NOT NULL, ALTER COLUMN concept_voided SET NOT NULL,
    ALTER COLUMN concept_uuid TYPE text, ALTER COLUMN parent_concept_uuid TYPE text,
    ADD COLUMN display_order integer NOT NULL DEFAULT 0,
    ADD COLUMN source_key text,
    ADD COLUMN base_name text,
    ADD CONSTRAINT column_metadata_table_id_fkey FOREIGN KEY (table_id)
        REFERENCES public.table_metadata (id) ON DELETE CASCADE,
    ADD CONSTRAINT column_metadata_table_name_unique UNIQUE (table_id, name);
UPDATE public.column_metadata c
   SET type = x.sql_type, concept_type = x.concept_type, display_order = x.display_order,
       source_key = x.source_key, base_name = x.base_name
  FROM etl_service.column_metadata_ext x WHERE x.column_metadata_id = c.id;
ALTER TABLE public.index_metadata
    DROP CONSTRAINT index_metadata_table_metadata_id_fkey,
    DROP CONSTRAINT index_metadata_column_id_fkey,
    ALTER COLUMN table_metadata_id SET NOT NULL,
    ALTER COLUMN name SET NOT NULL,
    ADD CONSTRAINT index_metadata_table_metadata_id_fkey FOREIGN KEY (table_metadata_id)
        REFERENCES public.table_metadata (id) ON DELETE CASCADE,
    ADD CONSTRAINT index_metadata_column_id_fkey FOREIGN KEY (column_id)
        REFERENCES public.column_metadata (id) ON DELETE CASCADE;
ALTER TABLE public.entity_sync_status
    DROP CONSTRAINT entity_sync_status_table_metadata_id_fkey,
    ALTER COLUMN db_user SET NOT NULL, ALTER COLUMN table_metadata_id SET NOT NULL,
    ALTER COLUMN last_sync_time TYPE timestamptz, ALTER COLUMN last_sync_time SET NOT NULL,
    ALTER COLUMN last_sync_time SET DEFAULT '1900-01-01 00:00:00+00',
    ALTER COLUMN sync_status SET NOT NULL, ALTER COLUMN sync_status SET DEFAULT 'Running',
    ADD CONSTRAINT entity_sync_status_table_metadata_id_fkey FOREIGN KEY (table_metadata_id)
        REFERENCES public.table_metadata (id) ON DELETE CASCADE,
    ADD CONSTRAINT entity_sync_status_table_user_unique UNIQUE (table_metadata_id, db_user);
DROP SCHEMA etl_service CASCADE;
"#;

/// The previous release's layout: its tables' columns and constraints.
async fn previous_layout(client: &Client) -> Vec<String> {
    text_rows(
        client,
        "SELECT x FROM ( \
           SELECT format('column %s.%s %s %s', table_name, column_name, data_type, is_nullable) AS x \
             FROM information_schema.columns WHERE table_schema = 'public' \
              AND table_name IN ('table_metadata', 'column_metadata', 'index_metadata', \
                   'entity_sync_status', 'etl_job', 'etl_run', 'etl_run_event', '__diesel_schema_migrations') \
           UNION ALL \
           SELECT format('constraint %s %s %s', conrelid::regclass, conname, pg_get_constraintdef(oid)) \
             FROM pg_constraint WHERE connamespace = 'public'::regnamespace \
              AND conrelid::regclass::text IN ('table_metadata', 'column_metadata', 'index_metadata', \
                   'entity_sync_status', 'etl_job', 'etl_run', 'etl_run_event', '__diesel_schema_migrations') \
         ) o ORDER BY x",
    )
    .await
}

/// A deployment of the previous release keeps working after `migrate`:
/// jobs, runs and events kept, every table's metadata and watermark kept
/// (the next run has nothing to do), edits synced as before.
#[tokio::test(flavor = "multi_thread")]
async fn a_previous_release_deployment_keeps_working_after_migrate() {
    // The previous release's layout, from its own migrations.
    let reference = TestDatabase::new().await;
    let rc = reference.client().await;
    rc.batch_execute(HISTORY).await.expect("history");
    for (version, sql) in PREVIOUS_RELEASE {
        rc.batch_execute(sql).await.expect(version);
        rc.execute(
            "INSERT INTO public.__diesel_schema_migrations (version) VALUES ($1)",
            &[&version],
        )
        .await
        .expect("history row");
    }
    let expected_layout = previous_layout(&rc).await;

    // A deployment of it: a reporting schema built, a job, runs, events.
    let db = TestDatabase::new().await;
    let client = db.client().await;
    migrate(&db.url).await;
    let world = avni::generate(
        &client,
        &Spec {
            seed: 83,
            size: SMALL,
            ..Spec::default()
        },
    )
    .await;
    let org = world.organisations[0].clone();
    let built = run(&db.url, &org).await;
    client
        .batch_execute(
            "INSERT INTO etl_service.etl_job (entity_uuid, entity_type, interval_seconds) \
             VALUES ('11111111-2222-3333-4444-555555555555', 'organisation', 600); \
             INSERT INTO etl_service.etl_run (entity_uuid, entity_type, trigger, status) \
             VALUES ('11111111-2222-3333-4444-555555555555', 'organisation', 'schedule', 'succeeded'); \
             INSERT INTO etl_service.etl_run_event (run_id, seq, kind) \
             SELECT id, 1, 'run_finished' FROM etl_service.etl_run",
        )
        .await
        .expect("job, run, event");
    client
        .batch_execute(TO_PREVIOUS_RELEASE)
        .await
        .expect("the previous release's layout");
    client.batch_execute(HISTORY).await.expect("history");
    for (version, _) in PREVIOUS_RELEASE {
        client
            .execute(
                "INSERT INTO public.__diesel_schema_migrations (version) VALUES ($1)",
                &[&version],
            )
            .await
            .expect("history row");
    }
    let layout = previous_layout(&client).await;
    assert_eq!(
        layout, expected_layout,
        "the deployment has the previous release's layout"
    );
    let watermarks_before = text_rows(
        &client,
        "SELECT t.name || ' ' || s.last_sync_time::text FROM public.entity_sync_status s \
         JOIN public.table_metadata t ON t.id = s.table_metadata_id ORDER BY 1",
    )
    .await;
    assert_eq!(watermarks_before.len(), built.tables.len());

    // The upgrade.
    let applied = migrate(&db.url).await;
    assert_eq!(applied.len(), 3, "{applied:?}");
    assert!(
        migrate(&db.url).await.is_empty(),
        "a second migrate does nothing"
    );
    let old_history: Option<String> = client
        .query_one(
            "SELECT to_regclass('public.__diesel_schema_migrations')::text",
            &[],
        )
        .await
        .expect("old history")
        .get(0);
    assert_eq!(
        old_history, None,
        "the previous release's history in public is gone"
    );
    let state = text_rows(
        &client,
        "SELECT format('%s %s %s', (SELECT count(*) FROM etl_service.etl_job), \
                (SELECT count(*) FROM etl_service.etl_run), (SELECT count(*) FROM etl_service.etl_run_event))",
    )
    .await;
    assert_eq!(state, ["1 1 1"], "jobs, runs and events kept");
    let in_public = text_rows(
        &client,
        "SELECT relname::text FROM pg_class WHERE relnamespace = 'public'::regnamespace \
         AND relname LIKE 'etl\\_%'",
    )
    .await;
    assert!(in_public.is_empty(), "{in_public:?}");
    let watermarks_after = text_rows(
        &client,
        "SELECT t.name || ' ' || s.last_sync_time::text FROM etl_service.watermark w \
         JOIN public.entity_sync_status s ON s.id = w.entity_sync_status_id \
         JOIN public.table_metadata t ON t.id = s.table_metadata_id ORDER BY 1",
    )
    .await;
    assert_eq!(
        watermarks_after, watermarks_before,
        "every window kept, now the organisation's"
    );

    // It keeps working: nothing to do, then an edit.
    let quiet = run(&db.url, &org).await;
    assert_eq!(quiet.rows_upserted(), 0, "nothing re-synced");
    assert!(
        quiet
            .tables
            .iter()
            .all(|t| t.change == etl_service::engine::schema::schema_diff::TableChange::Unchanged),
        "no table created or altered"
    );
    client
        .execute(
            "UPDATE individual SET first_name = 'After upgrade', last_modified_date_time = clock_timestamp() \
             WHERE id = (SELECT min(id) FROM individual WHERE organisation_id = $1 AND subject_type_id = $2)",
            &[&org.id, &org.subject_type_id("person")],
        )
        .await
        .expect("edit");
    let edited = run(&db.url, &org).await;
    let person = edited
        .tables
        .iter()
        .find(|t| t.name == "person")
        .expect("person");
    assert_eq!(person.rows_upserted, 1);
}

/// The README's minimum for a role that does not own Avni's tables (as on a
/// real Avni database, where `openchs` owns them and public has no CREATE
/// for others): `migrate` and a run work with exactly those grants.
#[tokio::test(flavor = "multi_thread")]
async fn a_role_that_does_not_own_avnis_tables_migrates_and_runs_with_the_readme_grants() {
    let role = format!("etl_test_service_{}", uuid::Uuid::new_v4().simple());
    let _drop = DropRoles {
        names: vec![role.clone()],
        ending_with: None,
    };
    let (db, client, org) = avni_database(84).await;
    let r = quote_ident(&role);
    client
        .batch_execute(&format!(
            "CREATE ROLE {r} LOGIN NOSUPERUSER NOCREATEDB CREATEROLE NOREPLICATION BYPASSRLS; \
             GRANT CREATE ON DATABASE {} TO {r}; \
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO {r}; \
             GRANT SELECT, INSERT, UPDATE, DELETE, REFERENCES ON public.table_metadata, \
                 public.column_metadata, public.index_metadata, public.entity_sync_status TO {r}; \
             GRANT USAGE ON SEQUENCE public.table_metadata_id_seq, public.column_metadata_id_seq, \
                 public.index_metadata_id_seq, public.entity_sync_status_id_seq TO {r};",
            quote_ident(&db.name)
        ))
        .await
        .expect("the README's grants");
    let can_create_in_public: bool = client
        .query_one(
            "SELECT has_schema_privilege($1, 'public', 'CREATE')",
            &[&role],
        )
        .await
        .expect("privilege")
        .get(0);
    assert!(
        !can_create_in_public,
        "as on PostgreSQL 15+: no CREATE on public"
    );
    let url = db.url.replacen("://postgres@", &format!("://{role}@"), 1);
    assert_ne!(url, db.url, "the test server URL names user postgres");
    assert_eq!(migrate(&url).await.len(), 3);
    assert!(migrate(&url).await.is_empty());
    let report = run(&url, &org).await;
    assert!(report.rows_upserted() > 0);
    assert_eq!(run(&url, &org).await.rows_upserted(), 0, "incremental");
}

/// What a role `create_db_user()` makes may do to `public.entity_sync_status`
/// (ALL, and no RLS where the service created the table) cannot move the
/// service's windows: the window is kept in etl_service, Avni's row is its
/// copy. Moved forward, Avni's copy would have made the next run skip every
/// change (silent loss); deleted, it still resets the window (Avni's
/// recovery), which costs a re-sync and loses nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_role_create_db_user_made_cannot_move_a_window_forward() {
    let f = integration_tests::etl::EtlFixture::new(&Spec {
        seed: 86,
        size: SMALL,
        ..Spec::default()
    })
    .await;
    let org = f.org(0).clone();
    let client = &f.client;
    f.run_org(&org).await;
    client
        .batch_execute(AVNI_ROLE_FUNCTIONS)
        .await
        .expect("create_db_user");
    let role = format!("etl_test_late_org_{}", uuid::Uuid::new_v4().simple());
    let _drop = DropRoles {
        names: vec![role.clone()],
        ending_with: None,
    };
    client
        .execute("SELECT public.create_db_user($1, 'secret')", &[&role])
        .await
        .expect("create_db_user");
    client
        .batch_execute(&format!(
            "SET ROLE {}; UPDATE public.entity_sync_status SET last_sync_time = '2100-01-01'; RESET ROLE",
            quote_ident(&role)
        ))
        .await
        .expect("Avni's grants allow the update");
    client
        .execute(
            "UPDATE individual SET first_name = 'Still synced', last_modified_date_time = clock_timestamp() \
             WHERE id = (SELECT min(id) FROM individual WHERE organisation_id = $1 AND subject_type_id = $2)",
            &[&org.id, &org.subject_type_id("person")],
        )
        .await
        .expect("edit");
    let report = f.run_org(&org).await;
    let person = report
        .tables
        .iter()
        .find(|t| t.name == "person")
        .expect("person");
    assert_eq!(person.rows_upserted, 1, "the edit is synced");
}

/// A DBA may make `etl_service` for the service's role instead of granting
/// it CREATE on the database: `migrate` then uses it as it is.
#[tokio::test(flavor = "multi_thread")]
async fn migrate_uses_an_etl_service_schema_a_dba_made() {
    let role = format!("etl_test_service_{}", uuid::Uuid::new_v4().simple());
    let _drop = DropRoles {
        names: vec![role.clone()],
        ending_with: None,
    };
    let (db, client, _org) = avni_database(87).await;
    let r = quote_ident(&role);
    client
        .batch_execute(&format!(
            "CREATE ROLE {r} LOGIN NOSUPERUSER; \
             CREATE SCHEMA etl_service AUTHORIZATION {r}; \
             GRANT SELECT, INSERT, UPDATE, DELETE, REFERENCES ON public.table_metadata, \
                 public.column_metadata, public.index_metadata, public.entity_sync_status TO {r};"
        ))
        .await
        .expect("the DBA's schema and grants");
    let can_create: bool = client
        .query_one(
            "SELECT has_database_privilege($1, current_database(), 'CREATE')",
            &[&role],
        )
        .await
        .expect("privilege")
        .get(0);
    assert!(!can_create);
    let url = db.url.replacen("://postgres@", &format!("://{role}@"), 1);
    assert_eq!(migrate(&url).await.len(), 3);
    assert!(migrate(&url).await.is_empty());
}
