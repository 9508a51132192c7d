//! Statement and run timeouts (config): an ETL run past
//! `etl.run_timeout_seconds` is stopped with its statement cancelled in
//! PostgreSQL, recorded as failed, and leaves every table old or new; a
//! statement past `database.statement_timeout_ms` fails the run (ETL) or the
//! batch (migrator) with a clear error, the service stays up, and the next
//! attempt completes with nothing lost or doubled.

use avni_proto::migrator::v1 as pb;
use integration_tests::avni::{Org, Spec};
use integration_tests::etl::{EtlFixture, snapshot};
use integration_tests::etl_faults::{
    TableHold, assert_old_or_new, compare_with_fresh_build, counter, queue_run, run_backends_left,
    subject_table, wait_finished, wait_until, watermarks,
};
use integration_tests::fake_upstream::{Data, FakeUpstream, Generator};
use integration_tests::migrator::{
    PATIENCE, assert_generated_exactly_once, form_rows, source, watermark,
};
use integration_tests::services::{TestMigrator, start_etl_on};
use std::time::Duration;
use tokio_postgres::Client;

/// Changes every other row behind every transactional table.
async fn edit_everything(client: &Client, org: &Org, value: &str) {
    let weight = org.bundle.concept("weight").uuid.clone();
    for table in [
        "individual",
        "program_enrolment",
        "program_encounter",
        "encounter",
    ] {
        client
            .execute(
                &format!(
                    "UPDATE {table} SET observations = jsonb_set(coalesce(observations, '{{}}'), ARRAY[$1], $2::text::jsonb), \
                         last_modified_date_time = clock_timestamp() WHERE id % 2 = 0 AND organisation_id = $3"
                ),
                &[&weight, &value, &org.id],
            )
            .await
            .expect("edit");
    }
}

/// Builds the schema once with the engine (no limits), then starts the
/// service with `tweak` and changes the source so its next run has work.
async fn built_and_edited(
    seed: u64,
    tweak: impl FnOnce(&mut etl_service::Config),
) -> (EtlFixture, integration_tests::services::RunningService) {
    let f = EtlFixture::new(&Spec {
        seed,
        ..Spec::default()
    })
    .await;
    let org = f.org(0).clone();
    f.run_org(&org).await;
    edit_everything(&f.client, &org, "4321.5").await;
    let service = start_etl_on(&f.db.url, |c| {
        c.etl.sync_offset_seconds = 0;
        c.etl.scheduler_poll_ms = 200;
        tweak(c);
    })
    .await;
    (f, service)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_past_its_timeout_is_cancelled_in_postgres_and_recorded_failed() {
    const LIMIT: u64 = 6;
    let (f, service) = built_and_edited(31, |c| c.etl.run_timeout_seconds = LIMIT).await;
    let org = f.org(0).clone();
    let client = &f.client;
    let s = org.schema_name.as_str();
    let old = (snapshot(client, s).await, watermarks(client, s).await);

    let table = subject_table(client, &org).await;
    let hold = TableHold::take(f.db.client().await, s, &table).await;
    let run = queue_run(client, &org).await;
    let (status, error) = wait_finished(client, run, Duration::from_secs(60)).await;
    assert_eq!(status, "failed");
    assert_eq!(
        error.as_deref(),
        Some(format!("run exceeded etl.run_timeout_seconds ({LIMIT} s)").as_str())
    );
    let finished: String = client
        .query_one(
            "SELECT message FROM etl_service.etl_run_event WHERE run_id = $1 AND kind = 'run_finished'",
            &[&run],
        )
        .await
        .expect("run_finished event")
        .get(0);
    assert!(
        finished.contains("run exceeded etl.run_timeout_seconds"),
        "{finished}"
    );

    // While the table is still held, nothing of the run waits for it any
    // more: its statement was cancelled, not merely abandoned.
    let mut left = Vec::new();
    for _ in 0..100 {
        left = run_backends_left(client, s, &table, hold.pid).await;
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(left.is_empty(), "the run's backends still there: {left:?}");
    hold.release().await;
    let mid = (snapshot(client, s).await, watermarks(client, s).await);
    assert_eq!(
        mid.1[&table], old.1[&table],
        "the held table kept its watermark"
    );

    let scrape = service.scrape().await;
    assert!(counter(&scrape, "etl_runs_failed_total") >= 1.0, "{scrape}");

    let next = queue_run(client, &org).await;
    let (status, error) = wait_finished(client, next, Duration::from_secs(60)).await;
    assert_eq!(status, "succeeded", "{error:?}");
    let new_rows = snapshot(client, s).await;
    let (kept, _) = assert_old_or_new((&old.0, &old.1), (&mid.0, &mid.1), &new_rows);
    assert!(kept >= 1);
    assert_ne!(old.0, new_rows, "the edits show after the next run");
    let compared = compare_with_fresh_build(client, &f.ctx, &org).await;
    assert!(compared.rows > 0);
    assert!(
        compared.differences.is_empty(),
        "{:?}",
        compared.differences
    );
    drop(service);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_statement_past_the_statement_timeout_fails_the_run_clearly_and_the_service_stays_up() {
    let (f, service) = built_and_edited(32, |c| {
        c.database.statement_timeout_ms = Some(500);
        c.etl.run_timeout_seconds = 0;
    })
    .await;
    let org = f.org(0).clone();
    let client = &f.client;
    let s = org.schema_name.as_str();
    let old = (snapshot(client, s).await, watermarks(client, s).await);
    let table = subject_table(client, &org).await;
    let hold = TableHold::take(f.db.client().await, s, &table).await;
    let run = queue_run(client, &org).await;
    let (status, error) = wait_finished(client, run, Duration::from_secs(60)).await;
    assert_eq!(status, "failed");
    let error = error.unwrap_or_default();
    assert!(
        error.contains("canceling statement due to statement timeout"),
        "{error}"
    );
    assert!(!error.contains('\n'), "one line: {error}");
    hold.release().await;
    let mid = (snapshot(client, s).await, watermarks(client, s).await);

    // Still serving, and the next run completes.
    assert_eq!(
        service
            .health_status("")
            .await
            .expect("health after the failed run"),
        1,
        "SERVING"
    );
    let next = queue_run(client, &org).await;
    let (status, error) = wait_finished(client, next, Duration::from_secs(60)).await;
    assert_eq!(status, "succeeded", "{error:?}");
    let new_rows = snapshot(client, s).await;
    assert_old_or_new((&old.0, &old.1), (&mid.0, &mid.1), &new_rows);
    let compared = compare_with_fresh_build(client, &f.ctx, &org).await;
    assert!(
        compared.differences.is_empty(),
        "{:?}",
        compared.differences
    );
    drop(service);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_migrator_batch_past_the_statement_timeout_is_retried_and_nothing_is_lost() {
    let upstream = FakeUpstream::start(Data::Generated(Generator::new(30))).await;
    let db_handle = integration_tests::migrator::migrated_repository().await;
    let db = db_handle.client().await;
    // A table every batch writes to is held: the batch's insert waits past
    // the statement timeout.
    let holder = db_handle.client().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE anc_visit IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("hold anc_visit");
    let settings = source("drishti", &upstream, 10, 0.2);
    let service = integration_tests::services::start_migrator_on(&db_handle.url, |c| {
        c.database.statement_timeout_ms = Some(300);
        c.sources = vec![settings];
    })
    .await;
    let migrator = TestMigrator {
        service,
        db: db_handle,
    };
    let mut client = migrator.client().await;
    let last_error = std::sync::Mutex::new(String::new());
    wait_until("a batch to fail on the statement timeout", PATIENCE, || {
        let mut client = client.clone();
        let last_error = &last_error;
        async move {
            let status = client
                .get_status(pb::GetStatusRequest::default())
                .await
                .expect("status")
                .into_inner();
            let error = status.sources[0].last_error.clone();
            let hit = error.contains("statement timeout");
            *last_error.lock().expect("lock") = error;
            hit
        }
    })
    .await;
    let last_error = last_error.into_inner().expect("lock");
    assert!(
        last_error.contains("canceling statement due to statement timeout"),
        "{last_error}"
    );
    assert_eq!(watermark(&db, "drishti").await, 0, "no batch committed");
    holder.batch_execute("ROLLBACK").await.expect("release");

    wait_until("30 submissions", PATIENCE, || async {
        form_rows(&db).await.1 == 30
    })
    .await;
    wait_until("the drain to finish", PATIENCE, || async {
        watermark(&db, "drishti").await == Generator::new(30).server_version(29)
    })
    .await;
    assert_generated_exactly_once(&db, 30).await;
    let status = client
        .get_status(pb::GetStatusRequest::default())
        .await
        .expect("status")
        .into_inner();
    assert!(
        status.sources[0].last_error.is_empty(),
        "{:?}",
        status.sources[0]
    );
}
