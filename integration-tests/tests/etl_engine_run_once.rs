//! `etl-service run-once`, the real binary: a summary for a real
//! organisation; for an unknown uuid a clear one-line error, a non-zero
//! exit, and nothing written.

use integration_tests::avni::{Size, Spec};
use integration_tests::binaries::{binary, run_binary};
use integration_tests::etl::EtlFixture;
use integration_tests::postgres::TestDatabase;
use std::process::Output;
use tokio_postgres::Client;

fn run_once(url: &str, args: &[&str]) -> Output {
    let mut all = vec!["run-once"];
    all.extend_from_slice(args);
    run_binary(
        &binary("etl-service", "etl-service"),
        &all,
        &[("DATABASE_URL", url), ("RUST_LOG", "warn")],
    )
}

fn last_stderr_line(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .to_string()
}

async fn written(client: &Client) -> (i64, i64, i64) {
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM table_metadata), (SELECT count(*) FROM entity_sync_status), \
                    (SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'org%')",
            &[],
        )
        .await
        .expect("count");
    (row.get(0), row.get(1), row.get(2))
}

#[tokio::test(flavor = "multi_thread")]
async fn run_once_reports_a_summary_or_a_clear_error() {
    let f = EtlFixture::new(&Spec {
        seed: 61,
        size: Size::SMALL,
        ..Spec::default()
    })
    .await;
    let org = f.org(0).clone();
    let url = f.db.url.clone();

    let unknown = "6f1c1a4e-3d5b-4f6e-9d2a-0b1c2d3e4f50";
    let output = run_once(&url, &["--organisation", unknown]);
    assert!(!output.status.success());
    assert_eq!(
        last_stderr_line(&output),
        format!("etl-service: organisation {unknown} does not exist")
    );
    let output = run_once(&url, &["--organisation-group", unknown]);
    assert!(!output.status.success());
    assert_eq!(
        last_stderr_line(&output),
        format!("etl-service: organisation group {unknown} does not exist")
    );
    assert_eq!(written(&f.client).await, (0, 0, 0), "nothing written");
    let runs: i64 = f
        .client
        .query_one("SELECT count(*) FROM etl_service.etl_run", &[])
        .await
        .expect("runs")
        .get(0);
    assert_eq!(runs, 0, "an unknown entity leaves no run history");

    let output = run_once(&url, &["--organisation", "not-a-uuid"]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "clap rejects a malformed uuid"
    );
    let output = run_once(&url, &[]);
    assert_eq!(output.status.code(), Some(2), "an entity is required");

    let output = run_once(&url, &["--organisation", &org.uuid]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "run-once failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.starts_with(&format!(
            "organisation {} (Org 0) -> schema org_0\n",
            org.uuid
        )),
        "{stdout}"
    );
    let person = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("person "))
        .unwrap_or_else(|| panic!("no line for table person: {stdout}"));
    let fields: Vec<&str> = person.split_whitespace().collect();
    assert_eq!(&fields[..4], &["person", "created", "12", "0"], "{person}");
    let (tables, windows, schemas) = written(&f.client).await;
    assert!(tables > 0 && windows == tables && schemas == 1);
    assert!(
        stdout.contains(&format!(
            "{tables} tables ({tables} created, 0 altered, 0 unchanged)"
        )),
        "{stdout}"
    );

    // The run is in the history, as a command-line run.
    let row = f
        .client
        .query_one(
            "SELECT trigger, status, rows_upserted > 0 FROM etl_service.etl_run WHERE entity_uuid = $1::text::uuid",
            &[&org.uuid],
        )
        .await
        .expect("run history");
    assert_eq!(
        (
            row.get::<_, String>(0),
            row.get::<_, String>(1),
            row.get::<_, bool>(2)
        ),
        ("command_line".to_string(), "succeeded".to_string(), true)
    );

    // A second run changes nothing and says so.
    let output = run_once(&url, &["--organisation", &org.uuid]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!(
            "{tables} tables (0 created, 0 altered, {tables} unchanged); 0 rows upserted, 0 deleted"
        )),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn run_once_refuses_pending_migrations() {
    let db = TestDatabase::new().await;
    let output = run_once(
        &db.url,
        &["--organisation", "6f1c1a4e-3d5b-4f6e-9d2a-0b1c2d3e4f50"],
    );
    assert!(!output.status.success());
    let line = last_stderr_line(&output);
    assert!(
        line.contains("migration(s) pending") && line.contains("etl-service migrate"),
        "{line}"
    );
}
