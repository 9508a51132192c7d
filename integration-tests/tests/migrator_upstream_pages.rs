//! What the migrator does with the pages a real deployment's upstream sends:
//! a runaway body (issue 18.6), a polling URL that carries its own
//! `timestamp` and `batch-size` (17.4), an upstream that ignores the
//! timestamp (17.4), and a page cut short by a proxy (17.7).

use avni_proto::migrator::v1 as pb;
use integration_tests::binaries::binary;
use integration_tests::fake_upstream::{Data, FakeUpstream, Fault, Generator};
use integration_tests::migrator::{
    PATIENCE, assert_generated_exactly_once, form_rows, source, wait_for, watermark,
};
use integration_tests::services::TestMigrator;
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

/// `poll-once` of the real binary under `/usr/bin/time`: its output and
/// its peak resident memory in KiB.
fn poll_once_measured(config: &str, database_url: &str) -> (bool, String, u64) {
    let exe = binary("migrator-service", "migrator-service");
    let out = std::process::Command::new("/usr/bin/time")
        .args(["-f", "peak-rss-kib %M"])
        .arg(&exe)
        .args(["--config", config, "poll-once"])
        .env_remove("RUST_LOG")
        .env("DATABASE_URL", database_url)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run poll-once under /usr/bin/time");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let peak = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("peak-rss-kib "))
        .filter_map(|v| v.trim().parse::<u64>().ok())
        .next_back()
        .unwrap_or_else(|| panic!("no peak RSS in: {stderr}"));
    (out.status.success(), stderr, peak)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_past_max_response_bytes_fails_naming_the_limit_and_memory_stays_flat() {
    let upstream = FakeUpstream::start(Data::Generated(Generator::new(3))).await;
    let db = integration_tests::migrator::migrated_repository().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("migrator.yaml");
    std::fs::write(
        &config,
        format!(
            "sources:\n  - name: drishti\n    url: {}\n    request_timeout_seconds: 20\n    max_response_bytes: 1048576\n",
            upstream.url()
        ),
    )
    .expect("config");
    let config = config.to_string_lossy().to_string();

    // A normal page first: the baseline of the process.
    let (ok, stderr, baseline) = tokio::task::spawn_blocking({
        let (config, url) = (config.clone(), db.url.clone());
        move || poll_once_measured(&config, &url)
    })
    .await
    .expect("join");
    assert!(ok, "the small page drains: {stderr}");

    // 64 MiB streamed with no Content-Length: the limit stops the read.
    const HUGE: usize = 64 * 1024 * 1024;
    upstream.fail_always(Some(Fault::Huge(HUGE)));
    let (ok, stderr, peak) = tokio::task::spawn_blocking({
        let (config, url) = (config.clone(), db.url.clone());
        move || poll_once_measured(&config, &url)
    })
    .await
    .expect("join");
    println!("peak RSS: {baseline} KiB for a small page, {peak} KiB for a 64 MiB body");
    assert!(!ok, "poll-once fails on a body past the limit");
    assert!(
        stderr.contains("max_response_bytes") && stderr.contains("1048576"),
        "the error names the limit: {stderr}"
    );
    // The old code held the whole body and more: 180 MiB for this one.
    assert!(
        peak < baseline + 32 * 1024,
        "memory stays flat: {peak} KiB against {baseline} KiB for a small page"
    );
    assert_eq!(
        upstream.request_count(),
        3,
        "not retried: a second read is as large (small page, empty page, huge page)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_source_past_max_response_bytes_stops_with_the_limit_in_its_status() {
    let upstream = FakeUpstream::start(Data::Generated(Generator::new(3))).await;
    upstream.fail_always(Some(Fault::Huge(8 * 1024 * 1024)));
    let mut settings = source("drishti", &upstream, 50, 0.1);
    settings.max_response_bytes = 64 * 1024;
    settings.request_timeout_seconds = 10.0;
    let migrator = TestMigrator::start(|c| c.sources = vec![settings]).await;
    wait_for("the source to stop", PATIENCE, || async {
        status(&migrator).await.state == pb::SourceState::Stopped as i32
    })
    .await;
    let s = status(&migrator).await;
    assert!(
        s.last_error.contains("max_response_bytes (65536 bytes)"),
        "{}",
        s.last_error
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(upstream.request_count(), 1, "stopped, not polled again");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_urls_own_timestamp_and_batch_size_are_replaced_and_its_other_parameters_kept() {
    let upstream = FakeUpstream::start(Data::Generated(Generator::new(250))).await;
    let mut settings = source("drishti", &upstream, 100, 3600.0);
    // The original migrator's configuration carried its own query; the
    // real server takes the first of a repeated parameter.
    settings.url = format!(
        "{}?timestamp=0&batch-size=100&district=north",
        upstream.url()
    );
    let migrator = TestMigrator::start(|c| c.sources = vec![settings]).await;
    let db = migrator.db.client().await;
    wait_for("250 submissions", PATIENCE, || async {
        form_rows(&db).await.1 == 250
    })
    .await;
    assert_generated_exactly_once(&db, 250).await;
    wait_for("the empty page", PATIENCE, || async {
        upstream.request_count() >= 4
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let queries = upstream.queries();
    assert_eq!(
        queries.len(),
        4,
        "three pages and the empty one: {queries:?}"
    );
    for q in &queries {
        assert_eq!(q.matches("timestamp=").count(), 1, "{q}");
        assert_eq!(q.matches("batch-size=").count(), 1, "{q}");
        assert!(q.contains("district=north"), "other parameters kept: {q}");
    }
    assert!(!queries[1].contains("timestamp=0&"), "{queries:?}");
    let s = status(&migrator).await;
    assert!(!s.url.contains("timestamp=0"), "{}", s.url);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_that_ignores_the_timestamp_stops_the_source_naming_the_cause() {
    let upstream = FakeUpstream::start(Data::Generated(Generator::new(50))).await;
    // Whatever is asked, the first page comes back (a proxy that drops
    // the query, a server that ignores it).
    upstream.fail_always(Some(Fault::RepeatLastPage));
    let settings = source("drishti", &upstream, 10, 0.1);
    let migrator = TestMigrator::start(|c| c.sources = vec![settings]).await;
    let db = migrator.db.client().await;
    wait_for("the source to stop", PATIENCE, || async {
        status(&migrator).await.state == pb::SourceState::Stopped as i32
    })
    .await;
    let s = status(&migrator).await;
    assert!(
        s.last_error.contains("ignores the timestamp"),
        "{}",
        s.last_error
    );
    let asked = upstream.request_count();
    assert!(
        asked < 20,
        "stopped after a few pages, not a storm: {asked}"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(upstream.request_count(), asked, "not polled again");
    assert_eq!(form_rows(&db).await.1, 10, "the one page written once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_garbled_page_is_fetched_again_with_backoff_then_the_poll_fails_naming_the_cause() {
    let upstream = FakeUpstream::start(Data::Generated(Generator::new(12))).await;
    upstream.fail_next([Fault::Truncated, Fault::NotJson]);
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
    let arrivals = upstream.arrivals();
    assert!(
        arrivals[1].duration_since(arrivals[0]) >= Duration::from_millis(30),
        "with backoff"
    );
    assert_eq!(
        upstream.request_count(),
        4,
        "two garbled, the page, the empty page: one poll"
    );
    assert_eq!(status(&migrator).await.last_error, "");

    // Garbled for good: 1 + max_retries (3) attempts, then the poll fails.
    upstream.fail_always(Some(Fault::Truncated));
    let before = upstream.request_count();
    migrator
        .client()
        .await
        .run_now(pb::RunNowRequest::default())
        .await
        .expect("run now");
    wait_for("the poll to fail", PATIENCE, || async {
        !status(&migrator).await.last_error.is_empty()
    })
    .await;
    let s = status(&migrator).await;
    assert!(
        s.last_error.contains("4 times") && s.last_error.contains("not a JSON array"),
        "{}",
        s.last_error
    );
    assert_eq!(upstream.request_count(), before + 4);
    assert_eq!(s.state, pb::SourceState::BackingOff as i32);
    let w = watermark(&db, "drishti").await;
    assert_eq!(w, Generator::new(12).server_version(11), "watermark kept");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sized_body_past_max_response_bytes_stops_the_source_too() {
    let upstream = FakeUpstream::start(Data::Generated(Generator::new(3))).await;
    // A sized body: the limit is checked against its Content-Length.
    upstream.fail_always(Some(Fault::Body(vec![b' '; 128 * 1024])));
    let mut settings = source("drishti", &upstream, 50, 0.1);
    settings.max_response_bytes = 64 * 1024;
    let migrator = TestMigrator::start(|c| c.sources = vec![settings]).await;
    wait_for("the source to stop", PATIENCE, || async {
        status(&migrator).await.state == pb::SourceState::Stopped as i32
    })
    .await;
    let s = status(&migrator).await;
    assert!(
        s.last_error
            .contains("sources[drishti].max_response_bytes (65536 bytes)"),
        "{}",
        s.last_error
    );
}
