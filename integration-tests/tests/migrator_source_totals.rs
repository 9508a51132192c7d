//! GetStatus's totals come from `source_totals`, kept by triggers with the
//! audit rows (migration 2026-11-25-000001_source_totals) instead of summing
//! every `migration_audit` row on each read. After every kind of change to
//! the audit tables the running totals must equal a direct count, for every
//! source; the migration's backfill must count the rows already there; and
//! the read GetStatus makes (`audits::totals`) must give the same numbers.

use diesel_async::{AsyncConnection, AsyncPgConnection};
use migrator_service::repository::audits;

const UP: &str = include_str!("../../migrations/migrator/2026-11-25-000001_source_totals/up.sql");
const DOWN: &str =
    include_str!("../../migrations/migrator/2026-11-25-000001_source_totals/down.sql");

/// (source, written, failed, unresolved) counted directly, every source.
async fn counted(db: &tokio_postgres::Client) -> Vec<(String, i64, i64, i64)> {
    db.query(
        "SELECT s.source, \
           COALESCE((SELECT sum(successfully_processed_form_entries) FROM migration_audit m WHERE m.source = s.source), 0)::int8 \
           + (SELECT count(*) FROM error_audit e WHERE e.source = s.source AND resolved_at IS NOT NULL), \
           (SELECT count(*) FROM error_audit e WHERE e.source = s.source), \
           (SELECT count(*) FROM error_audit e WHERE e.source = s.source AND resolved_at IS NULL) \
         FROM (SELECT source FROM migration_audit UNION SELECT source FROM error_audit \
               UNION SELECT source FROM source_totals) s ORDER BY 1",
        &[],
    )
    .await
    .expect("direct count")
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect()
}

/// The same, as GetStatus reads it.
async fn read(conn: &AsyncPgConnection, sources: &[String]) -> Vec<(String, i64, i64, i64)> {
    let mut out = Vec::new();
    for s in sources {
        let t = audits::totals(conn, s).await.expect("totals");
        out.push((s.clone(), t.written, t.failed, t.unresolved));
    }
    out
}

async fn check(db: &tokio_postgres::Client, conn: &AsyncPgConnection, step: &str) {
    let expected = counted(db).await;
    let sources: Vec<String> = expected.iter().map(|e| e.0.clone()).collect();
    assert_eq!(read(conn, &sources).await, expected, "after {step}");
}

async fn audit(db: &tokio_postgres::Client, source: &str, processed: i32) {
    db.execute(
        "INSERT INTO migration_audit (source, last_polled_timestamp, total_no_of_form_entries, \
         successfully_processed_form_entries) VALUES ($1, 1, $2, $2)",
        &[&source, &processed],
    )
    .await
    .expect("migration_audit row");
}

async fn error(db: &tokio_postgres::Client, source: &str, resolved: bool) {
    db.execute(
        "INSERT INTO error_audit (source, failure_reason, detailed_reason, raw_payload, resolved_at) \
         VALUES ($1, 'bad', 'bad', '{}', CASE WHEN $2 THEN now() END)",
        &[&source, &resolved],
    )
    .await
    .expect("error_audit row");
}

#[tokio::test]
async fn running_totals_equal_a_direct_count_after_every_kind_of_change() {
    let repo = integration_tests::migrator::migrated_repository().await;
    let db = repo.client().await;
    let conn = AsyncPgConnection::establish(&repo.url)
        .await
        .expect("connect");
    check(&db, &conn, "nothing yet").await;
    assert_eq!(
        read(&conn, &["never-seen".to_string()]).await,
        vec![("never-seen".to_string(), 0, 0, 0)],
        "a source with no rows reads as zeros"
    );

    for (i, source) in ["north", "south", "north", "east"].iter().enumerate() {
        audit(&db, source, 100 + i as i32).await;
    }
    check(&db, &conn, "batches").await;
    for (source, resolved) in [
        ("north", false),
        ("north", true),
        ("south", false),
        ("west", false),
    ] {
        error(&db, source, resolved).await;
    }
    check(&db, &conn, "failures").await;

    let steps = [
        (
            "a failure resolved",
            "UPDATE error_audit SET resolved_at = now() WHERE source = 'south'",
        ),
        (
            "a reason rewritten",
            "UPDATE error_audit SET failure_reason = 'worse' WHERE source = 'north'",
        ),
        (
            "a resolution taken back",
            "UPDATE error_audit SET resolved_at = NULL WHERE source = 'north'",
        ),
        (
            "a failure moved to another source",
            "UPDATE error_audit SET source = 'east' WHERE source = 'west'",
        ),
        (
            "a batch recounted",
            "UPDATE migration_audit SET successfully_processed_form_entries = 7 WHERE source = 'east'",
        ),
        (
            "a batch moved",
            "UPDATE migration_audit SET source = 'south' WHERE id = (SELECT min(id) FROM migration_audit)",
        ),
        (
            "a batch deleted",
            "DELETE FROM migration_audit WHERE source = 'east'",
        ),
        (
            "a failure deleted",
            "DELETE FROM error_audit WHERE source = 'east'",
        ),
        (
            "several rows at once",
            "INSERT INTO migration_audit (source, last_polled_timestamp, total_no_of_form_entries, \
             successfully_processed_form_entries) SELECT 'bulk', g, 10, g FROM generate_series(1, 500) g",
        ),
    ];
    for (step, sql) in steps {
        db.batch_execute(sql).await.expect(step);
        check(&db, &conn, step).await;
    }
    // Rolled back with its transaction, like a batch that failed.
    db.batch_execute(
        "BEGIN; INSERT INTO migration_audit (source, last_polled_timestamp, total_no_of_form_entries, \
         successfully_processed_form_entries) VALUES ('north', 1, 999, 999); ROLLBACK",
    )
    .await
    .expect("rolled back batch");
    check(&db, &conn, "a rolled-back batch").await;

    // The migration's backfill counts the rows already there.
    db.batch_execute(DOWN).await.expect("down");
    audit(&db, "late", 42).await;
    error(&db, "late", true).await;
    db.batch_execute(UP).await.expect("up again");
    check(&db, &conn, "the backfill").await;
    let late = read(&conn, &["late".to_string()]).await;
    assert_eq!(late, vec![("late".to_string(), 43, 1, 0)]);
}
