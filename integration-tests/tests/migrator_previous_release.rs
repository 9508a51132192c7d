//! Form tables are the deployment's (issue 17, item 6): the service's
//! embedded migrations hold only its bookkeeping. A new repository gets no
//! form table from `migrate`; a repository made by the previous release
//! (whose embedded migrations built the demo tables ec_registration,
//! anc_registration, anc_visit, pnc_visit and child_pnc_visit) keeps its
//! tables, its rows and its migration history, `migrate` succeeds on it, and
//! the service goes on writing into those tables.

use integration_tests::binaries::{binary, run_binary};
use integration_tests::fake_upstream::{Data, FakeUpstream, Generator};
use integration_tests::migrator::{PATIENCE, count, scalar, source, wait_for, watermark};
use integration_tests::postgres::TestDatabase;
use integration_tests::services::start_migrator_on;

/// The previous release's embedded migrations as it applied them (its
/// history in public), copied from that release.
const PREVIOUS_RELEASE: [(&str, &str); 6] = [
    (
        "20261121000001",
        include_str!("../sql/migrator_previous_release/2026-11-21-000001_audits.sql"),
    ),
    (
        "20261121000002",
        include_str!("../sql/migrator_previous_release/2026-11-21-000002_forms.sql"),
    ),
    (
        "20261122000001",
        include_str!("../sql/migrator_previous_release/2026-11-22-000001_batch_cursor.sql"),
    ),
    (
        "20261125000001",
        include_str!("../sql/migrator_previous_release/2026-11-25-000001_source_totals.sql"),
    ),
    (
        "20261203000001",
        include_str!("../sql/migrator_previous_release/2026-12-03-000001_unmapped_field.sql"),
    ),
    (
        "20261203000002",
        include_str!("../sql/migrator_previous_release/2026-12-03-000002_form_migration.sql"),
    ),
];

const HISTORY: &str = "CREATE TABLE public.__diesel_schema_migrations ( \
     version VARCHAR(50) PRIMARY KEY NOT NULL, run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)";

/// The demo tables the previous release built into the binary.
const DEMO_TABLES: [&str; 5] = [
    "ec_registration",
    "anc_registration",
    "anc_visit",
    "pnc_visit",
    "child_pnc_visit",
];

/// `migrator-service migrate` (no config file) on `url`: success and stdout+stderr.
fn migrate(url: &str) -> (bool, String) {
    let out = run_binary(
        &binary("migrator-service", "migrator-service"),
        &["migrate"],
        &[("DATABASE_URL", url)],
    );
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn tables(sql: &tokio_postgres::Client) -> Vec<String> {
    sql.query(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
        &[],
    )
    .await
    .expect("tables")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_repository_gets_only_the_services_bookkeeping() {
    let db = TestDatabase::new().await;
    let (ok, out) = migrate(&db.url);
    assert!(ok, "{out}");
    let sql = db.client().await;
    assert_eq!(
        tables(&sql).await,
        [
            "__diesel_schema_migrations",
            "error_audit",
            "form_migration",
            "form_submission",
            "migration_audit",
            "source_totals",
            "unmapped_field",
        ],
        "no form table built into the binary"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repository_of_the_previous_release_keeps_its_tables_history_and_rows() {
    let db = TestDatabase::new().await;
    let sql = db.client().await;
    sql.batch_execute(HISTORY).await.expect("history table");
    for (version, text) in PREVIOUS_RELEASE {
        sql.batch_execute(text)
            .await
            .unwrap_or_else(|e| panic!("previous release's {version}: {e}"));
        sql.execute(
            "INSERT INTO __diesel_schema_migrations (version) VALUES ($1)",
            &[&version],
        )
        .await
        .expect("history row");
    }
    sql.batch_execute(
        "INSERT INTO ec_registration (instance_id, form_name, wife_name) \
         VALUES ('written-by-the-previous-release', 'ec_registration', 'Lakshmi')",
    )
    .await
    .expect("a row of the previous release");

    let (ok, out) = migrate(&db.url);
    assert!(ok, "migrate on the previous release's repository: {out}");
    assert!(out.contains("no pending migrations"), "{out}");
    let (ok, out) = migrate(&db.url);
    assert!(ok, "a second migrate: {out}");

    let present = tables(&sql).await;
    for table in DEMO_TABLES {
        assert!(
            present.iter().any(|t| t == table),
            "{table} kept: {present:?}"
        );
    }
    assert_eq!(
        scalar(
            &sql,
            "SELECT count(*) FROM __diesel_schema_migrations WHERE version = '20261121000002'"
        )
        .await,
        1,
        "the demo tables' history row kept"
    );
    assert_eq!(
        scalar(&sql, "SELECT count(*) FROM __diesel_schema_migrations").await,
        6
    );

    // The service writes into the previous release's tables as before.
    let generator = Generator::new(8);
    let upstream = FakeUpstream::start(Data::Generated(generator)).await;
    let _service = start_migrator_on(&db.url, |c| {
        c.sources = vec![source("drishti", &upstream, 5, 3600.0)];
    })
    .await;
    wait_for("the drain", PATIENCE, || async {
        watermark(&sql, "drishti").await == generator.server_version(7)
    })
    .await;
    assert_eq!(count(&sql, "error_audit").await, 0);
    assert_eq!(count(&sql, "ec_registration").await, 1 + 2);
    assert_eq!(count(&sql, "pnc_visit").await, 2);
    assert_eq!(count(&sql, "child_pnc_visit").await, 4);
    assert_eq!(
        scalar(
            &sql,
            "SELECT count(*) FROM ec_registration WHERE instance_id = 'written-by-the-previous-release'"
        )
        .await,
        1
    );
}
