//! A running service sees a migration's new column (issue 17, item 3)
//! before its next batch, and reads the catalog again only when it changed.
//! One test in this file: the metrics recorder is process-wide.

use integration_tests::drishti_forms::element;
use integration_tests::fake_upstream::{Data, FakeUpstream};
use integration_tests::migrator::{PATIENCE, count, source, wait_for, watermark};
use integration_tests::services::TestMigrator;

const SV: i64 = 1_424_200_000_000;

fn anc_visit(n: i64, extra: &[(&str, &str)]) -> serde_json::Value {
    let mut fields = vec![
        ("id", "mother-1"),
        ("ancVisitNumber", "2"),
        ("ancVisitDate", "2015-2-3"),
    ];
    fields.extend_from_slice(extra);
    element(
        &format!("visit-{n}"),
        "anc_visit",
        SV + n,
        "mother",
        &fields,
        vec![],
    )
}

fn metric(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(n, _)| *n == name)
        .filter_map(|(_, v)| v.trim().parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_column_is_seen_before_the_next_batch_and_the_catalog_is_read_only_when_it_changed() {
    let upstream = FakeUpstream::start(Data::Elements(vec![anc_visit(1, &[])])).await;
    let settings = source("drishti", &upstream, 100, 0.1);
    let migrator = TestMigrator::start(|c| c.sources = vec![settings]).await;
    let db = migrator.db.client().await;
    wait_for("the first batch", PATIENCE, || async {
        watermark(&db, "drishti").await == SV + 1
    })
    .await;
    let loads = || async {
        metric(
            &migrator.service.scrape().await,
            "migrator_catalog_loads_total",
        )
    };
    let first = loads().await;
    assert_eq!(first, 1.0, "the catalog is read once for the first batch");

    // More batches, no migration: no catalog read.
    for n in 2..=4 {
        upstream.push_elements([anc_visit(n, &[])]);
        wait_for("the next batch", PATIENCE, || async {
            watermark(&db, "drishti").await == SV + n
        })
        .await;
    }
    assert_eq!(loads().await, 1.0, "three batches, the catalog unchanged");

    // A migration adds a column while the service runs; the next
    // submission that fills it is written with it, no restart, no
    // ReprocessErrors.
    db.batch_execute("ALTER TABLE anc_visit ADD COLUMN previous_bp_systolic integer")
        .await
        .expect("migration");
    upstream.push_elements([anc_visit(5, &[("previousBpSystolic", "128")])]);
    wait_for("the batch after the migration", PATIENCE, || async {
        watermark(&db, "drishti").await == SV + 5
    })
    .await;
    let value: Option<i32> = db
        .query_one(
            "SELECT previous_bp_systolic FROM anc_visit WHERE instance_id = 'visit-5'",
            &[],
        )
        .await
        .expect("the row")
        .get(0);
    assert_eq!(value, Some(128), "the new column is filled");
    assert_eq!(count(&db, "error_audit").await, 0);
    assert_eq!(loads().await, 2.0, "read again once, for the change");

    // A new table too.
    db.batch_execute(&format!(
        "CREATE TABLE tt ({}, mother_id text, tt_date date)",
        integration_tests::drishti_forms::ENVELOPE_DDL
    ))
    .await
    .expect("migration");
    upstream.push_elements([element(
        "tt-1",
        "tt",
        SV + 6,
        "mother",
        &[("id", "mother-1"), ("ttDate", "2015-3-4")],
        vec![],
    )]);
    wait_for("the tt batch", PATIENCE, || async {
        watermark(&db, "drishti").await == SV + 6
    })
    .await;
    assert_eq!(count(&db, "tt").await, 1);
    assert_eq!(count(&db, "error_audit").await, 0);
}
