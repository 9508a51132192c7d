//! Hostile names from a seeded generator (`avni::hostile`, 18 kinds:
//! quotes, backslashes, semicolon statements, SQL keywords, `$$`, comments,
//! Hindi, emoji, right-to-left, zero-width, combining, 200 bytes, leading
//! digits, empty after normalisation, whitespace only, NUL, mixtures) as the
//! names of subject types, programs, encounter types, concepts and answers,
//! and as organisations' `schema_name` and `db_user`.
//!
//! Every run either succeeds or fails with a validation error that says
//! what to fix; never a SQL error. No statement touches anything outside
//! the organisation's own schema: an event trigger logs every DDL command
//! and dropped object (all inside accepted schemas), and a catalog snapshot
//! of every other schema (relations, functions, privileges) and a checksum
//! of every Avni source table are equal before and after.

use etl_service::engine::{self, NoProgress, RunOptions};
use etl_service::naming::MAX_IDENTIFIER_BYTES;
use etl_service::{Error, name_check};
use integration_tests::avni::hostile::{self, KINDS};
use integration_tests::avni::{self, Size, Spec, bulk, bundle, metadata};
use integration_tests::etl::{assert_metadata_describes_schema, context, org_ref};
use integration_tests::postgres::TestDatabase;
use service_kit::sql::quote_ident;
use std::collections::{BTreeMap, BTreeSet};
use tokio_postgres::Client;

const SEED: u64 = 0x0405_711E;

/// Tiny data: a few rows of every kind, so values with hostile answer names
/// are synced too.
const TINY: Size = Size {
    subjects_per_type: 3,
    encounters_per_enrolment: 1,
    encounters_per_subject: 1,
};

/// The ETL's own tables in public (everything else there is Avni source).
const ETL_TABLES: [&str; 9] = [
    "table_metadata",
    "column_metadata",
    "index_metadata",
    "entity_sync_status",
    "etl_job",
    "etl_run",
    "etl_run_event",
    "__diesel_schema_migrations",
    "ddl_log",
];

const DDL_LOG: &str = r#"
CREATE TABLE public.ddl_log (tag text, object_type text, schema_name text, identity text);
CREATE FUNCTION public.log_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $f$
DECLARE r record;
BEGIN
  FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
    INSERT INTO public.ddl_log VALUES (r.command_tag, r.object_type, r.schema_name, r.object_identity);
  END LOOP;
END $f$;
CREATE FUNCTION public.log_drop() RETURNS event_trigger LANGUAGE plpgsql AS $f$
DECLARE r record;
BEGIN
  FOR r IN SELECT * FROM pg_event_trigger_dropped_objects() LOOP
    INSERT INTO public.ddl_log VALUES ('DROP', r.object_type, r.schema_name, r.object_identity);
  END LOOP;
END $f$;
CREATE EVENT TRIGGER etl_test_log_ddl ON ddl_command_end EXECUTE FUNCTION public.log_ddl();
CREATE EVENT TRIGGER etl_test_log_drop ON sql_drop EXECUTE FUNCTION public.log_drop();
"#;

/// Everything outside `mine` (the organisations' schemas): namespaces with
/// their privileges, relations with theirs, functions with theirs.
async fn outside(client: &Client, mine: &[String]) -> BTreeSet<String> {
    let rows = client
        .query(
            "SELECT format('ns %s %s', n.nspname, n.nspacl) FROM pg_namespace n \
              WHERE NOT n.nspname::text = ANY($1::text[]) AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast%' \
             UNION ALL \
             SELECT format('rel %s.%s %s %s', n.nspname, c.relname, c.relkind, c.relacl) FROM pg_class c \
               JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE NOT n.nspname::text = ANY($1::text[]) AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast%' \
             UNION ALL \
             SELECT format('fn %s.%s %s', n.nspname, p.proname, p.proacl) FROM pg_proc p \
               JOIN pg_namespace n ON n.oid = p.pronamespace WHERE NOT n.nspname::text = ANY($1::text[])",
            &[&mine],
        )
        .await
        .expect("catalog snapshot");
    rows.iter().map(|r| r.get(0)).collect()
}

/// A checksum of every Avni source table's rows.
async fn source_checksums(client: &Client) -> BTreeMap<String, String> {
    let tables: Vec<String> = client
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
            &[],
        )
        .await
        .expect("tables")
        .iter()
        .map(|r| r.get(0))
        .filter(|t: &String| !ETL_TABLES.contains(&t.as_str()))
        .collect();
    let mut sums = BTreeMap::new();
    for t in tables {
        let sum: Option<String> = client
            .query_one(
                &format!(
                    "SELECT md5(string_agg(x::text, '|' ORDER BY x::text)) FROM public.{} x",
                    quote_ident(&t)
                ),
                &[],
            )
            .await
            .expect("checksum")
            .get(0);
        sums.insert(t, sum.unwrap_or_default());
    }
    sums
}

/// Whether the ETL should accept an organisation with this schema and role
/// (design: a schema and a role of its own, nameable in PostgreSQL).
fn acceptable(schema: &str, role: &str) -> bool {
    let lower = schema.to_lowercase();
    !schema.trim().is_empty()
        && schema.len() <= MAX_IDENTIFIER_BYTES
        && lower != "public"
        && lower != "information_schema"
        && !lower.starts_with("pg_")
        && !role.trim().is_empty()
        && role.len() <= MAX_IDENTIFIER_BYTES
        && role != "public"
        && role != "none"
        && !role.starts_with("pg_")
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_names_run_cleanly_or_fail_validation_inside_their_own_schema() {
    let setup = std::time::Instant::now();
    let db = TestDatabase::migrated(etl_service::migrations::migrations).await;
    let client = db.client().await;
    avni::create_source_tables(&client).await;

    // NUL: PostgreSQL text cannot hold it, so no source row can carry one
    // (ValidateNames refuses it: grpc_input_validation).
    let nul = client
        .execute(
            "INSERT INTO concept (uuid, name, data_type, organisation_id) VALUES ('nul-test', $1, 'Text', 1)",
            &[&"a\0b"],
        )
        .await
        .expect_err("PostgreSQL refuses NUL in text");
    assert_eq!(
        nul.as_db_error().map(|e| e.code().code()),
        Some("22021"),
        "{nul}"
    );

    // The names of entities, concepts and answers: five organisations'
    // worth, NUL ones left out (they cannot be stored).
    let per_org = hostile::names_needed(&bundle(0, false, 0));
    let generated = hostile::hostile_names(SEED, per_org * 5 + 20);
    let entity_names: Vec<String> = generated
        .iter()
        .filter(|n| !n.contains('\0'))
        .cloned()
        .collect();
    assert!(entity_names.len() >= 200, "{}", entity_names.len());
    // Schemas and roles: the five carrying entity names get acceptable
    // hostile ones; then one organisation per generated schema name (one
    // of every kind), each with a generated role.
    let mut seen_schemas = BTreeSet::new();
    let mut seen_roles = BTreeSet::new();
    let schemas: Vec<String> = hostile::hostile_names(SEED + 1, KINDS.len())
        .into_iter()
        .filter(|s| !s.contains('\0') && seen_schemas.insert(s.clone()))
        .collect();
    let roles: Vec<String> = hostile::hostile_names(SEED + 2, KINDS.len())
        .into_iter()
        .map(|r| r.replace('\0', ""))
        .map(|r| {
            if seen_roles.insert(r.clone()) {
                r
            } else {
                format!("{r} dup")
            }
        })
        .collect();
    let mut names = entity_names.into_iter();
    let mut orgs = Vec::new();
    let spec = Spec {
        seed: SEED,
        ..Spec::default()
    };
    let total_orgs = 5 + schemas.len() + 3;
    for i in 0..total_orgs {
        let mut b = bundle(SEED + i as u64, false, 0);
        let (schema, role) = match i {
            0..5 => {
                hostile::rename(&mut b, &mut names);
                (
                    format!("org {i} \"x\"; DROP SCHEMA public; -- हिन्दी $$"),
                    format!("role {i}'; DROP ROLE postgres; --"),
                )
            }
            _ if i - 5 < schemas.len() => {
                (schemas[i - 5].clone(), roles[(i - 5) % roles.len()].clone())
            }
            // Roles PostgreSQL reads otherwise.
            _ => match i - 5 - schemas.len() {
                0 => ("role_public".to_string(), "public".to_string()),
                1 => ("role_pg".to_string(), "pg_monitor".to_string()),
                _ => ("role_long".to_string(), "r".repeat(64)),
            },
        };
        let mut org = metadata::organisation(&client, &spec, &format!("h{i}"), b).await;
        client
            .execute(
                "UPDATE organisation SET schema_name = $1, db_user = $2 WHERE id = $3",
                &[&schema, &role, &org.id],
            )
            .await
            .unwrap_or_else(|e| panic!("org {i} schema {schema:?}: {e}"));
        org.schema_name = schema;
        org.db_user = role;
        bulk::fill(&client, &org, if i < 5 { TINY } else { Size::EMPTY }).await;
        orgs.push(org);
    }
    let names_used = per_org * 5;

    let roles_before: BTreeSet<String> = client
        .query("SELECT rolname::text FROM pg_roles", &[])
        .await
        .expect("roles")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let all_schemas: Vec<String> = orgs.iter().map(|o| o.schema_name.clone()).collect();
    let catalog_before = outside(&client, &all_schemas).await;
    let sources_before = source_checksums(&client).await;
    client.batch_execute(DDL_LOG).await.expect("event triggers");

    eprintln!("setup took {:?}", setup.elapsed());
    let started = std::time::Instant::now();
    let ctx = context(&db.url);
    let mut accepted: Vec<String> = Vec::new();
    let mut refusals: Vec<String> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for (i, org) in orgs.iter().enumerate() {
        let expect_ok = acceptable(&org.schema_name, &org.db_user);
        let what = format!(
            "org {i} schema {:?} role {:?}",
            org.schema_name, org.db_user
        );
        let outcome =
            engine::run_entity(&ctx, org_ref(org), &RunOptions::default(), &NoProgress).await;
        match (outcome, expect_ok) {
            (Ok(report), true) => {
                if report.tables.is_empty() {
                    failures.push(format!("{what}: no tables"));
                }
                // A second run: same names, nothing to change.
                if i < 5
                    && let Err(e) =
                        engine::run_entity(&ctx, org_ref(org), &RunOptions::default(), &NoProgress)
                            .await
                {
                    failures.push(format!("{what}: second run failed: {e}"));
                }
                accepted.push(org.schema_name.clone());
            }
            (Err(e @ Error::FailedPrecondition(_)), false) => {
                let message = e.to_string();
                if !message.contains("schema_name") && !message.contains("db_user") {
                    failures.push(format!("{what}: unclear refusal: {message}"));
                }
                refusals.push(message);
            }
            (Ok(_), false) => failures.push(format!("{what}: accepted, expected a refusal")),
            (Err(e), _) => failures.push(format!("{what}: {e}")),
        }
    }
    let runs_took = started.elapsed();
    let sources_after = source_checksums(&client).await;
    // A second organisation claiming organisation 0's schema: both are
    // refused from then on (either would write into the other's tables).
    let mut twin =
        metadata::organisation(&client, &spec, "twin", bundle(SEED + 999, false, 0)).await;
    twin.schema_name = orgs[0].schema_name.clone();
    client
        .execute(
            "UPDATE organisation SET schema_name = $1 WHERE id = $2",
            &[&twin.schema_name, &twin.id],
        )
        .await
        .expect("twin");
    for org in [&twin, &orgs[0]] {
        match engine::run_entity(&ctx, org_ref(org), &RunOptions::default(), &NoProgress).await {
            Err(e @ Error::FailedPrecondition(_))
                if e.to_string().contains("also the schema of") =>
            {
                refusals.push(e.to_string())
            }
            other => failures.push(format!(
                "{} sharing a schema: {:?}",
                org.name,
                other.map(|r| r.tables.len())
            )),
        }
    }
    client
        .execute(
            "UPDATE organisation SET is_voided = true WHERE id = $1",
            &[&twin.id],
        )
        .await
        .expect("void twin");
    assert!(
        failures.is_empty(),
        "{} of {} organisations:\n{}",
        failures.len(),
        orgs.len(),
        failures.join("\n")
    );
    assert_eq!(accepted.len() + refusals.len(), orgs.len() + 2);
    assert!(
        accepted.len() >= 15 && refusals.len() >= 6,
        "{accepted:?} {refusals:#?}"
    );

    // The reporting schemas hold what their metadata says.
    for schema in &accepted {
        assert_metadata_describes_schema(&client, schema).await;
    }
    let described: BTreeSet<String> = client
        .query("SELECT DISTINCT schema_name FROM table_metadata", &[])
        .await
        .expect("metadata")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(described, accepted.iter().cloned().collect());

    // Nothing outside the accepted schemas: every DDL command and dropped
    // object was inside one, every schema created is one.
    client
        .batch_execute("DROP EVENT TRIGGER etl_test_log_ddl; DROP EVENT TRIGGER etl_test_log_drop")
        .await
        .expect("drop event triggers");
    let quoted: BTreeSet<String> = accepted.iter().map(|s| quote_ident(s)).collect();
    let log = client
        .query(
            "SELECT tag, object_type, schema_name, identity FROM public.ddl_log",
            &[],
        )
        .await
        .expect("ddl log");
    let mut ddl_commands = 0;
    for r in &log {
        let (tag, kind, schema, identity): (String, String, Option<String>, Option<String>) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        ddl_commands += 1;
        match (kind.as_str(), schema) {
            ("schema", _) => {
                // PostgreSQL quotes only where needed; compare unquoted.
                let id = identity.unwrap_or_default();
                assert!(
                    accepted.contains(&id) || quoted.contains(&id),
                    "{tag} on schema {id}"
                );
            }
            (_, Some(s)) => assert!(accepted.contains(&s), "{tag} {kind} {identity:?} in {s:?}"),
            // GRANT and ALTER DEFAULT PRIVILEGES carry no schema: the
            // privilege snapshot below covers them.
            (_, None) => assert!(
                ["GRANT", "REVOKE", "ALTER DEFAULT PRIVILEGES"].contains(&tag.as_str()),
                "{tag} {kind} {identity:?} has no schema"
            ),
        }
    }
    assert!(ddl_commands > 100, "{ddl_commands}");
    let mut catalog_after = outside(&client, &all_schemas).await;
    catalog_after.retain(|e| !e.contains("ddl_log") && !e.contains("log_d"));
    assert_eq!(
        catalog_after, catalog_before,
        "catalog outside the organisations' schemas"
    );
    assert_eq!(sources_after, sources_before, "source tables");
    let schemas_now: BTreeSet<String> = client
        .query(
            "SELECT nspname::text FROM pg_namespace WHERE nspname::text = ANY($1::text[])",
            &[&all_schemas],
        )
        .await
        .expect("schemas")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        schemas_now,
        accepted.iter().cloned().collect(),
        "schemas created"
    );

    // ValidateNames over every generated name at once: each planned, every
    // table name distinct and within 63 bytes.
    let proposed = name_check::ProposedSchema {
        subject_types: generated
            .iter()
            .filter(|n| !n.contains('\0'))
            .cloned()
            .collect(),
        ..Default::default()
    };
    let report = name_check::check_proposed(&proposed);
    let table_names: BTreeSet<&str> = report.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(table_names.len(), report.tables.len());
    assert!(
        report
            .tables
            .iter()
            .all(|t| t.name.len() <= MAX_IDENTIFIER_BYTES)
    );

    // Leave the cluster's roles as they were.
    let created: Vec<String> = client
        .query("SELECT rolname::text FROM pg_roles", &[])
        .await
        .expect("roles")
        .iter()
        .map(|r| r.get::<_, String>(0))
        .filter(|r| !roles_before.contains(r))
        .collect();
    for role in &created {
        let role = quote_ident(role);
        client
            .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
            .await
            .unwrap_or_else(|e| panic!("drop role {role}: {e}"));
    }
    eprintln!(
        "{names_used} entity/concept/answer names in 5 organisations, {} organisations in all: \
         {} accepted, {} refused with a validation error, {ddl_commands} DDL commands all inside \
         accepted schemas, {} roles created; runs took {:?}",
        orgs.len(),
        accepted.len(),
        refusals.len(),
        created.len(),
        runs_took
    );
}
