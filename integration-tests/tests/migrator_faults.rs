//! The migrator when the upstream misbehaves (migrator.md §5): 500s, a
//! hang, 429 with Retry-After, a refusal, bodies that are not JSON.

use avni_proto::migrator::v1 as pb;
use integration_tests::fake_upstream::{Data, FakeUpstream, Fault, Generator};
use integration_tests::migrator::{
    PATIENCE, assert_generated_exactly_once, form_rows, source, wait_for, watermark,
};
use integration_tests::services::TestMigrator;
use migrator_service::config::Secret;
use std::time::Duration;

async fn status(migrator: &TestMigrator) -> pb::SourceStatus {
    migrator
        .client()
        .await
        .get_status(pb::GetStatusRequest::default())
        .await
        .expect("status")
        .into_inner()
        .sources
        .remove(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_and_a_hang_are_retried_then_the_batch_completes() {
    let upstream = FakeUpstream::start(Data::Generated(Generator::new(20))).await;
    upstream.fail_next([
        Fault::Status(500),
        Fault::Status(502),
        Fault::Hang(Duration::from_secs(3)),
    ]);
    let settings = source("drishti", &upstream, 50, 3600.0);
    let migrator = TestMigrator::start(|c| c.sources = vec![settings]).await;
    let db = migrator.db.client().await;
    wait_for("20 submissions", PATIENCE, || async {
        form_rows(&db).await.1 == 20
    })
    .await;
    assert_generated_exactly_once(&db, 20).await;
    // 3 failures, the page, then the empty page: one poll, retried in place.
    wait_for("the empty page", PATIENCE, || async {
        upstream.request_count() >= 5
    })
    .await;
    assert_eq!(upstream.request_count(), 5, "{:?}", upstream.requests());
    let s = status(&migrator).await;
    assert_eq!(s.last_error, "", "the poll succeeded in the end");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_with_retry_after_is_honoured() {
    let upstream = FakeUpstream::start(Data::Generated(Generator::new(8))).await;
    upstream.fail_next([Fault::RetryAfter(429, 1)]);
    let settings = source("drishti", &upstream, 50, 3600.0);
    let migrator = TestMigrator::start(|c| c.sources = vec![settings]).await;
    let db = migrator.db.client().await;
    wait_for("8 submissions", PATIENCE, || async {
        form_rows(&db).await.1 == 8
    })
    .await;
    assert_generated_exactly_once(&db, 8).await;
    let arrivals = upstream.arrivals();
    let waited = arrivals[1].duration_since(arrivals[0]);
    // The backoff alone would retry within 200 ms.
    assert!(
        waited >= Duration::from_millis(950),
        "waited only {waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_401_stops_the_source_with_a_clear_error_and_no_retry_storm() {
    let upstream = FakeUpstream::start(Data::Generated(Generator::new(8))).await;
    upstream.require_basic_auth("drishti-user", "right");
    let mut settings = source("drishti", &upstream, 50, 0.1);
    settings.username = Some("drishti-user".into());
    settings.password = Some(Secret::new("wrong"));
    let migrator = TestMigrator::start(|c| c.sources = vec![settings]).await;
    wait_for("the source to stop", PATIENCE, || async {
        status(&migrator).await.state == pb::SourceState::Stopped as i32
    })
    .await;
    let s = status(&migrator).await;
    assert!(s.last_error.contains("HTTP 401"), "{}", s.last_error);
    assert!(
        s.last_error.contains("username and password"),
        "{}",
        s.last_error
    );
    assert!(!s.last_error.contains("wrong"), "no password in errors");
    assert!(s.last_error_time.is_some());
    // With a 100 ms interval a retrying job would have asked ~10 more times.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(upstream.request_count(), 1, "one request, no retries");

    // RunNow tries once more (and stops again while the password is wrong).
    migrator
        .client()
        .await
        .run_now(pb::RunNowRequest::default())
        .await
        .expect("run now");
    wait_for("the second attempt", PATIENCE, || async {
        upstream.request_count() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(upstream.request_count(), 2);
    let db = migrator.db.client().await;
    assert_eq!(form_rows(&db).await.0, 0);
}

/// A 200 whose body is not JSON, or cut short, is fetched again with
/// backoff within the same poll, like a 5xx (it used to wait for the next
/// poll, a whole interval later).
#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_is_not_json_is_fetched_again_at_once_within_the_poll() {
    let upstream = FakeUpstream::start(Data::Generated(Generator::new(12))).await;
    upstream.fail_next([Fault::NotJson, Fault::Truncated]);
    let settings = source("drishti", &upstream, 50, 3600.0);
    let migrator = TestMigrator::start(|c| c.sources = vec![settings]).await;
    let db = migrator.db.client().await;
    wait_for("12 submissions", PATIENCE, || async {
        form_rows(&db).await.1 == 12
    })
    .await;
    assert_generated_exactly_once(&db, 12).await;
    wait_for("the empty page", PATIENCE, || async {
        upstream.request_count() >= 4
    })
    .await;
    assert_eq!(
        upstream.request_count(),
        4,
        "bad, truncated, good, empty: one poll with a 3600 s interval"
    );
    assert_eq!(status(&migrator).await.last_error, "");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_service_killed_mid_drain_resumes_and_writes_each_submission_once() {
    use integration_tests::binaries::{ServiceProcess, binary, free_addr};

    let generator = Generator::new(3000);
    let upstream = FakeUpstream::start(Data::Generated(generator)).await;
    let db = integration_tests::migrator::migrated_repository().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("migrator.yaml");
    std::fs::write(
        &config,
        format!(
            "sources:\n  - name: drishti\n    url: {}\n    batch_size: 25\n    poll_interval_seconds: 3600\n",
            upstream.url()
        ),
    )
    .expect("config");
    let exe = binary("migrator-service", "migrator-service");
    let config_arg = config.to_string_lossy().to_string();
    let start = || {
        let addr = free_addr();
        let listen = addr.to_string();
        ServiceProcess::start(
            &exe,
            &["--config", &config_arg, "serve"],
            &[
                ("DATABASE_URL", db.url.as_str()),
                ("GRPC_LISTEN", listen.as_str()),
            ],
            addr,
        )
    };
    let sql = db.client().await;
    let mut first = tokio::task::block_in_place(start);
    wait_for("part of the backlog", PATIENCE, || async {
        form_rows(&sql).await.1 >= 300
    })
    .await;
    first.kill();
    let written_before = form_rows(&sql).await.1;
    assert!(
        written_before < 3000,
        "killed before the end ({written_before})"
    );

    let second = tokio::task::block_in_place(start);
    wait_for("the whole backlog", Duration::from_secs(60), || async {
        watermark(&sql, "drishti").await == generator.server_version(2999)
    })
    .await;
    assert_generated_exactly_once(&sql, 3000).await;
    drop(second);
}
