//! Database roles. An organisation's role reads its own reporting schema and
//! nothing else: not the ETL's metadata, job and run tables, not the Avni
//! source tables, not the recovery functions, not the migrator's tables.
//! And both services run under a role that is not a superuser: LOGIN,
//! CREATEROLE (to create organisations' roles), owner of its database, with
//! SELECT on the Avni source tables, and nothing more.

use integration_tests::avni::{self, Size, Spec};
use integration_tests::etl::{EtlFixture, context, org_ref};
use integration_tests::fake_upstream::{Data, FakeUpstream, Generator};
use integration_tests::migrator::{source, wait_for};
use integration_tests::postgres::{DropRoles, TestDatabase, connect, server_url};
use integration_tests::services::start_migrator_on;
use service_kit::sql::{quote_ident, quote_qualified};
use std::time::Duration;
use tokio_postgres::Client;

/// The metadata tables (Avni's, in public) and the service's own state
/// (in etl_service).
const ETL_TABLES: [&str; 11] = [
    "public.table_metadata",
    "public.column_metadata",
    "public.index_metadata",
    "public.entity_sync_status",
    "etl_service.etl_job",
    "etl_service.etl_run",
    "etl_service.etl_run_event",
    "etl_service.watermark",
    "etl_service.table_metadata_ext",
    "etl_service.column_metadata_ext",
    "etl_service.__diesel_schema_migrations",
];

const SOURCE_TABLES: [&str; 8] = [
    "organisation",
    "users",
    "individual",
    "program_enrolment",
    "program_encounter",
    "encounter",
    "concept",
    "form_element",
];

const MIGRATOR_TABLES: [&str; 4] = [
    "migration_audit",
    "error_audit",
    "form_submission",
    "ec_registration",
];

/// Runs `sql` as `role` and expects "permission denied".
async fn denied(client: &Client, role: &str, sql: &str) {
    client
        .batch_execute(&format!("SET ROLE {}", quote_ident(role)))
        .await
        .expect("set role");
    let result = client.simple_query(sql).await;
    client
        .batch_execute("RESET ROLE")
        .await
        .expect("reset role");
    let e = result.map(drop).expect_err(&format!("{role} ran {sql}"));
    let db = e.as_db_error().unwrap_or_else(|| panic!("{sql}: {e}"));
    assert_eq!(
        db.code(),
        &tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE,
        "{sql}: {}",
        db.message()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_organisations_role_reads_only_its_own_schema() {
    let f = EtlFixture::new(&Spec {
        seed: 43,
        organisations: 2,
        size: Size {
            subjects_per_type: 2,
            encounters_per_enrolment: 1,
            encounters_per_subject: 1,
        },
        ..Spec::default()
    })
    .await;
    let (a, b) = (f.org(0).clone(), f.org(1).clone());
    f.run_org(&a).await;
    f.run_org(&b).await;
    let c = &f.client;

    // Its own tables and views: readable.
    c.batch_execute(&format!("SET ROLE {}", quote_ident(&a.db_user)))
        .await
        .expect("set role");
    for relation in ["person", "subject_view", "enrolment_view"] {
        c.simple_query(&format!(
            "SELECT count(*) FROM {}",
            quote_qualified(&a.schema_name, relation)
        ))
        .await
        .unwrap_or_else(|e| panic!("{relation}: {e}"));
    }
    // Its own schema is its own, as Avni makes it (issue 14.7): it may
    // create its own objects there.
    c.batch_execute(&format!(
        "CREATE TABLE {} (x int)",
        quote_qualified(&a.schema_name, "mine")
    ))
    .await
    .expect("an organisation's role creates a table in its own schema");
    c.batch_execute("RESET ROLE").await.expect("reset");

    let mut checked = 0;
    let source_tables = SOURCE_TABLES.iter().map(|t| format!("public.{t}"));
    for table in ETL_TABLES
        .iter()
        .map(|t| t.to_string())
        .chain(source_tables)
    {
        denied(c, &a.db_user, &format!("SELECT * FROM {table} LIMIT 1")).await;
        checked += 1;
    }
    for write in [
        "DELETE FROM etl_service.etl_job",
        "INSERT INTO etl_service.etl_job DEFAULT VALUES",
        "UPDATE public.entity_sync_status SET last_sync_time = now()",
    ] {
        denied(c, &a.db_user, write).await;
        checked += 1;
    }
    // The other organisation's schema and views, and the recovery
    // functions (EXECUTE revoked from PUBLIC by a migration).
    for sql in [
        format!(
            "SELECT * FROM {} LIMIT 1",
            quote_qualified(&b.schema_name, "person")
        ),
        format!(
            "SELECT * FROM {} LIMIT 1",
            quote_qualified(&b.schema_name, "subject_view")
        ),
        format!(
            "SELECT delete_etl_metadata_for_schema({}, 'x', 'y')",
            service_kit::sql::quote_literal(&b.schema_name)
        ),
        "SELECT delete_etl_metadata_for_org('x', 'y')".to_string(),
        "CREATE TABLE public.mine (x int)".to_string(),
    ] {
        denied(c, &a.db_user, &sql).await;
        checked += 1;
    }

    // The migrator's repository on the same server.
    let repo = integration_tests::migrator::migrated_repository().await;
    let rc = repo.client().await;
    for table in MIGRATOR_TABLES {
        denied(
            &rc,
            &a.db_user,
            &format!("SELECT * FROM public.{table} LIMIT 1"),
        )
        .await;
        checked += 1;
    }
    eprintln!("{checked} statements refused to an organisation's role");
}

/// `url` with `role` as its user.
fn as_role(url: &str, role: &str) -> String {
    let changed = url.replacen("://postgres@", &format!("://{role}@"), 1);
    assert_ne!(
        changed, url,
        "the test server URL names user postgres: {url}"
    );
    changed
}

#[tokio::test(flavor = "multi_thread")]
async fn both_services_run_under_a_role_that_is_not_a_superuser() {
    let role = format!("etl_service_{}", uuid::Uuid::new_v4().simple());
    let org_role = format!("etl_test_org_role_{}", uuid::Uuid::new_v4().simple());
    // Before the databases: dropped after them, if the test fails midway.
    let _drop_roles = DropRoles {
        names: vec![role.clone(), org_role.clone()],
        ending_with: None,
    };
    let admin = connect(server_url().await).await.expect("admin");
    // The minimum: LOGIN, and CREATEROLE for organisations' roles; INHERIT
    // (the default) so owning the database gives CREATE on its public
    // schema through pg_database_owner.
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB CREATEROLE NOREPLICATION NOBYPASSRLS"
        ))
        .await
        .expect("create role");

    // The ETL: a database it owns; the Avni source tables owned by someone
    // else (as in a real Avni database), SELECT granted.
    let etl_db = TestDatabase::new().await;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} OWNER TO {role}",
            quote_ident(&etl_db.name)
        ))
        .await
        .expect("owner");
    let etl_url = as_role(&etl_db.url, &role);
    service_kit::db::run_pending_migrations(&etl_url, etl_service::migrations::migrations())
        .await
        .expect("the ETL's migrations run as a non-superuser");
    let pg = etl_db.client().await;
    let world = avni::generate(
        &pg,
        &Spec {
            seed: 44,
            size: Size {
                subjects_per_type: 3,
                encounters_per_enrolment: 1,
                encounters_per_subject: 1,
            },
            ..Spec::default()
        },
    )
    .await;
    for table in avni_source_tables(&pg).await {
        pg.batch_execute(&format!(
            "GRANT SELECT ON public.{} TO {role}",
            quote_ident(&table)
        ))
        .await
        .expect("grant");
    }
    // The organisation's role: new to the cluster, so the ETL must create
    // it (CREATEROLE), not find one an earlier test left.
    let mut org = world.organisations[0].clone();
    org.db_user = org_role.clone();
    pg.execute(
        "UPDATE organisation SET db_user = $1 WHERE id = $2",
        &[&org.db_user, &org.id],
    )
    .await
    .expect("db_user");
    assert!(!role_exists(&admin, &org.db_user).await, "{}", org.db_user);
    let org = &org;
    let ctx = context(&etl_url);
    let report = etl_service::engine::run_entity(
        &ctx,
        org_ref(org),
        &etl_service::engine::RunOptions::default(),
        &etl_service::engine::NoProgress,
    )
    .await
    .expect("an ETL run as a non-superuser");
    assert!(report.tables.len() > 5, "{}", report.tables.len());
    let rows: i64 = pg
        .query_one(
            &format!(
                "SELECT count(*) FROM {}",
                quote_qualified(&org.schema_name, "individual")
            ),
            &[],
        )
        .await
        .expect("rows")
        .get(0);
    assert_eq!(rows, 3);
    let owner: String = pg
        .query_one(
            "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = $1",
            &[&org.schema_name],
        )
        .await
        .expect("schema owner")
        .get(0);
    assert_eq!(
        owner, org.db_user,
        "owned by the organisation's role, as Avni makes it"
    );
    assert!(
        role_exists(&admin, &org.db_user).await,
        "the ETL created {}",
        org.db_user
    );
    let reads: bool = pg
        .query_one(
            "SELECT has_schema_privilege($1, $2, 'USAGE')",
            &[&org.db_user, &org.schema_name],
        )
        .await
        .expect("privilege")
        .get(0);
    assert!(reads, "{} reads its schema", org.db_user);

    // The migrator: a repository database it owns, a batch drained.
    let repo = TestDatabase::new().await;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} OWNER TO {role}",
            quote_ident(&repo.name)
        ))
        .await
        .expect("owner");
    let repo_url = as_role(&repo.url, &role);
    service_kit::db::run_pending_migrations(&repo_url, migrator_service::migrations::migrations())
        .await
        .expect("the migrator's migrations run as a non-superuser");
    integration_tests::migrator::apply_form_migrations(
        &repo_url,
        &integration_tests::migrator::demo_forms_dir(),
    )
    .await;
    let upstream = FakeUpstream::start(Data::Generated(Generator::new(25))).await;
    let service = start_migrator_on(&repo_url, |c| {
        c.sources = vec![source("alpha", &upstream, 10, 3600.0)];
    })
    .await;
    let rc = repo.client().await;
    wait_for("25 submissions written", Duration::from_secs(60), || async {
        rc.query_one(
            "SELECT coalesce(sum(successfully_processed_form_entries + failed_form_entries), 0)::bigint FROM migration_audit",
            &[],
        )
        .await
        .map(|r| r.get::<_, i64>(0) >= 25)
        .unwrap_or(false)
    })
    .await;
    service.stop().await.expect("stops");

    // Clean up the roles: the databases go first.
    drop(etl_db);
    drop(repo);
    drop(rc);
    drop(pg);
    for r in [quote_ident(&org_role), role] {
        let mut dropped = false;
        for _ in 0..50 {
            if admin
                .batch_execute(&format!("DROP ROLE IF EXISTS {r}"))
                .await
                .is_ok()
            {
                dropped = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(dropped, "role {r} dropped");
    }
}

async fn role_exists(client: &Client, role: &str) -> bool {
    client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)",
            &[&role],
        )
        .await
        .expect("pg_roles")
        .get(0)
}

/// The Avni tables in public: everything the ETL's migrations did not make.
async fn avni_source_tables(client: &Client) -> Vec<String> {
    client
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' \
              AND tableowner <> (SELECT datdba::regrole::text FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .await
        .expect("tables")
        .iter()
        .map(|r| r.get(0))
        .collect()
}
