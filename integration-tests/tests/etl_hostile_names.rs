//! Hostile names from a seeded generator (`avni::hostile`, 18 kinds:
//! quotes, backslashes, semicolon statements, SQL keywords, `$$`, comments,
//! Hindi, emoji, right-to-left, zero-width, combining, 200 bytes, leading
//! digits, empty after normalisation, whitespace only, NUL, mixtures) as the
//! names of subject types, programs, encounter types, concepts and answers,
//! and as organisations' `schema_name` and `db_user`.
//!
//! Every run either succeeds or fails with a validation error that says
//! what to fix; never a SQL error. Refused organisations go through
//! EnableAnalytics and `run-once`, so the refusal is also checked as the
//! RPC's status and as the run recorded in etl_run. Roles carry a per-run
//! marker, so each run creates its own whatever earlier runs left. No statement touches anything outside
//! the organisation's own schema: an event trigger logs every DDL command
//! and dropped object (all inside accepted schemas), and a catalog snapshot
//! of every other schema (relations, functions, privileges) and a checksum
//! of every Avni source table are equal before and after.

use etl_service::Error;
use etl_service::control::Control;
use etl_service::control::run_once;
use etl_service::engine::schema::name_check;
use etl_service::engine::schema::naming::MAX_IDENTIFIER_BYTES;
use etl_service::engine::{self, EngineContext, NoProgress, RunOptions};
use futures::stream::{self, StreamExt};
use integration_tests::avni::hostile::{self, KINDS};
use integration_tests::avni::{self, Bundle, Org, Size, Spec, bulk, bundle, metadata};
use integration_tests::etl::{assert_metadata_describes_schema, org_ref, test_settings};
use integration_tests::postgres::{DropRoles, TestDatabase};
use integration_tests::services::test_config;
use service_kit::config::DatabaseSettings;
use service_kit::sql::quote_ident;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
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

/// Whether the ETL should accept `role` as an organisation's `db_user`.
fn acceptable_role(role: &str) -> bool {
    !role.trim().is_empty()
        && role.len() <= MAX_IDENTIFIER_BYTES
        && role != "public"
        && role != "none"
        && !role.starts_with("pg_")
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
        && acceptable_role(role)
}

/// Roles are shared by the whole cluster: an acceptable role gets this
/// run's `marker` at its end (cut to fit 63 bytes), so every run creates
/// its roles afresh whatever earlier runs left behind. Refused ones stay
/// as generated (nothing creates them).
fn own_role(role: &str, marker: &str) -> String {
    if !acceptable_role(role) {
        return role.to_string();
    }
    let mut base = role.to_string();
    while base.len() + marker.len() > MAX_IDENTIFIER_BYTES {
        base.pop();
    }
    format!("{base}{marker}")
}

/// The organisations, set up on `WORKERS` connections at once: for each
/// index, its bundle (renamed for the first five), schema and role.
async fn set_up(db: &TestDatabase, spec: &Spec, plans: Vec<OrgPlan>) -> Vec<Org> {
    const WORKERS: usize = 4;
    let mut lanes: Vec<Vec<(usize, OrgPlan)>> = (0..WORKERS).map(|_| Vec::new()).collect();
    for (i, plan) in plans.into_iter().enumerate() {
        lanes[i % WORKERS].push((i, plan));
    }
    let done = futures::future::join_all(lanes.into_iter().map(|lane| async move {
        let client = db.client().await;
        let mut orgs = Vec::new();
        for (i, plan) in lane {
            let mut org =
                metadata::organisation(&client, spec, &format!("h{i}"), plan.bundle).await;
            client
                .execute(
                    "UPDATE organisation SET schema_name = $1, db_user = $2 WHERE id = $3",
                    &[&plan.schema, &plan.role, &org.id],
                )
                .await
                .unwrap_or_else(|e| panic!("org {i} schema {:?}: {e}", plan.schema));
            org.schema_name = plan.schema;
            org.db_user = plan.role;
            bulk::fill(&client, &org, plan.size).await;
            orgs.push((i, org));
        }
        orgs
    }))
    .await;
    let mut orgs: Vec<(usize, Org)> = done.into_iter().flatten().collect();
    orgs.sort_by_key(|(i, _)| *i);
    orgs.into_iter().map(|(_, o)| o).collect()
}

struct OrgPlan {
    bundle: Bundle,
    schema: String,
    role: String,
    size: Size,
}

/// What one organisation's runs came to.
enum Outcome {
    Accepted,
    Refused(String),
    Failed(String),
}

/// Runs an organisation the ETL should accept (twice for those with
/// hostile entity names: the second run must find nothing to change).
async fn run_accepted(ctx: &EngineContext, org: &Org, twice: bool) -> Outcome {
    match engine::run_entity(ctx, org_ref(org), &RunOptions::default(), &NoProgress).await {
        Ok(report) if report.tables.is_empty() => Outcome::Failed("no tables".into()),
        Ok(_) if twice => {
            match engine::run_entity(ctx, org_ref(org), &RunOptions::default(), &NoProgress).await {
                Ok(_) => Outcome::Accepted,
                Err(e) => Outcome::Failed(format!("second run failed: {e}")),
            }
        }
        Ok(_) => Outcome::Accepted,
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

/// An organisation the ETL should refuse, through the paths operators
/// use: EnableAnalytics answers FAILED_PRECONDITION, and `run-once`
/// refuses and records a failed run in etl_run. Each message is one line
/// naming the field to fix.
async fn run_refused(
    ctx: &EngineContext,
    config: &etl_service::Config,
    client: &Client,
    org: &Org,
) -> Outcome {
    let clear = |m: &str| {
        !m.contains('\n')
            && !m.contains('\r')
            && (m.contains("schema_name") || m.contains("db_user"))
    };
    let control = Control::new(ctx.clone(), Duration::from_secs(3600));
    let status = match control.enable(org_ref(org)).await {
        Ok(_) => return Outcome::Failed("EnableAnalytics accepted it".into()),
        Err(e) => tonic::Status::from(e),
    };
    if status.code() != tonic::Code::FailedPrecondition || !clear(status.message()) {
        return Outcome::Failed(format!("EnableAnalytics: {status:?}"));
    }
    match run_once::run_once(config, org_ref(org)).await {
        Ok(_) => return Outcome::Failed("run-once accepted it".into()),
        Err(Error::FailedPrecondition(_)) => {}
        Err(e) => return Outcome::Failed(format!("run-once: {e}")),
    }
    let recorded = client
        .query_one(
            "SELECT status, trigger, coalesce(error, '') FROM etl_service.etl_run \
              WHERE entity_uuid = $1::text::uuid ORDER BY id DESC LIMIT 1",
            &[&org.uuid],
        )
        .await;
    match recorded {
        Ok(row) => {
            let (status, trigger, error): (String, String, String) =
                (row.get(0), row.get(1), row.get(2));
            if status == "failed" && trigger == "command_line" && clear(&error) {
                Outcome::Refused(error)
            } else {
                Outcome::Failed(format!("recorded run: {status} {trigger} {error:?}"))
            }
        }
        Err(e) => Outcome::Failed(format!("no recorded run: {e}")),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_names_run_cleanly_or_fail_validation_inside_their_own_schema() {
    let setup = Instant::now();
    let run_tag = uuid::Uuid::new_v4().simple().to_string();
    let marker = format!(" #hn-{}", &run_tag[..8]);
    // Before the database: dropped after it, with what the roles own.
    let _drop_roles = DropRoles {
        names: Vec::new(),
        ending_with: Some(marker.clone()),
    };
    let db = TestDatabase::migrated(etl_service::migrations::migrations()).await;
    let client = db.client().await;
    // Durability is beside the point here: without a WAL flush per
    // statement, setup and runs take a fraction of the time.
    client
        .batch_execute(&format!(
            "ALTER DATABASE {} SET synchronous_commit = off",
            quote_ident(&db.name)
        ))
        .await
        .expect("synchronous_commit");
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
    let spec = Spec {
        seed: SEED,
        ..Spec::default()
    };
    let total_orgs = 5 + schemas.len() + 3;
    let mut plans = Vec::new();
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
        plans.push(OrgPlan {
            bundle: b,
            schema,
            role: own_role(&role, &marker),
            size: if i < 5 { TINY } else { Size::EMPTY },
        });
    }
    let orgs = set_up(&db, &spec, plans).await;
    let names_used = per_org * 5;
    let run_roles: BTreeSet<String> = orgs
        .iter()
        .filter(|o| acceptable(&o.schema_name, &o.db_user))
        .map(|o| o.db_user.clone())
        .collect();

    let roles_before: BTreeSet<String> = client
        .query("SELECT rolname::text FROM pg_roles", &[])
        .await
        .expect("roles")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        run_roles.is_disjoint(&roles_before),
        "this run's roles exist before it"
    );
    let all_schemas: Vec<String> = orgs.iter().map(|o| o.schema_name.clone()).collect();
    let catalog_before = outside(&client, &all_schemas).await;
    let sources_before = source_checksums(&client).await;
    client.batch_execute(DDL_LOG).await.expect("event triggers");

    eprintln!("setup took {:?}", setup.elapsed());
    let started = Instant::now();
    let ctx = EngineContext {
        pool: service_kit::db::build_pool(&DatabaseSettings {
            url: db.url.clone(),
            pool_size: 8,
            ..DatabaseSettings::default()
        }),
        database_url: db.url.clone(),
        settings: test_settings(),
    };
    let config: etl_service::Config = test_config(&db.url);
    // Three organisations at a time: each run holds its own lock and
    // touches only its own schema.
    let outcomes: Vec<(usize, Outcome)> = stream::iter(orgs.iter().enumerate())
        .map(|(i, org)| {
            let (ctx, config, client) = (&ctx, &config, &client);
            async move {
                let outcome = if acceptable(&org.schema_name, &org.db_user) {
                    run_accepted(ctx, org, i < 5).await
                } else {
                    run_refused(ctx, config, client, org).await
                };
                (i, outcome)
            }
        })
        .buffer_unordered(3)
        .collect()
        .await;
    let mut accepted: Vec<String> = Vec::new();
    let mut refusals: Vec<String> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for (i, outcome) in outcomes {
        let org = &orgs[i];
        let what = format!(
            "org {i} schema {:?} role {:?}",
            org.schema_name, org.db_user
        );
        match outcome {
            Outcome::Accepted => accepted.push(org.schema_name.clone()),
            Outcome::Refused(message) => refusals.push(message),
            Outcome::Failed(message) => failures.push(format!("{what}: {message}")),
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
        match run_refused(&ctx, &config, &client, org).await {
            Outcome::Refused(e) if e.contains("also the schema of") => refusals.push(e),
            Outcome::Refused(e) | Outcome::Failed(e) => {
                failures.push(format!("{} sharing a schema: {e}", org.name))
            }
            Outcome::Accepted => failures.push(format!("{} sharing a schema: accepted", org.name)),
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

    // Every accepted organisation's role was created by this run, and no
    // other; leave the cluster's roles as they were.
    let created: BTreeSet<String> = client
        .query("SELECT rolname::text FROM pg_roles", &[])
        .await
        .expect("roles")
        .iter()
        .map(|r| r.get::<_, String>(0))
        .filter(|r| !roles_before.contains(r))
        .collect();
    assert_eq!(created, run_roles, "roles created");
    for role in &created {
        let role = quote_ident(role);
        client
            .batch_execute(&format!("DROP OWNED BY {role} CASCADE; DROP ROLE {role}"))
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
