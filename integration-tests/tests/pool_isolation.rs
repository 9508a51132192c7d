//! Background work has a connection pool of its own: with every connection
//! of the gRPC handlers' pool taken (as 200 callers at once take them), ETL
//! runs and migrator batches still go on. Before the pools were split, runs
//! wrote their progress and outcome through the handlers' pool and stalled
//! behind the callers (see RELIABILITY.md, load).

use integration_tests::avni::{self, Spec};
use integration_tests::fake_upstream::{Data, FakeUpstream, Generator};
use integration_tests::migrator::{PATIENCE, assert_generated_exactly_once, source, wait_for};
use integration_tests::postgres::TestDatabase;
use integration_tests::services::test_config;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn an_etl_run_finishes_while_every_api_connection_is_taken() {
    let db = TestDatabase::migrated(etl_service::migrations::migrations()).await;
    let client = db.client().await;
    let world = avni::generate(&client, &Spec::default()).await;
    let mut config: etl_service::Config = test_config(&db.url);
    config.database.pool_size = 1;
    config.etl.scheduler_poll_ms = 200;
    config.etl.sync_offset_seconds = 0;
    let app = etl_service::App::build(config).await.expect("app");
    // Take the handlers' only connection and keep it.
    let held = app.pool().get_owned().await.expect("api connection");
    let shutdown = app.shutdown_token();
    let running = tokio::spawn(app.run_until_stopped());

    let uuid: uuid::Uuid = world.organisations[0].uuid.parse().expect("uuid");
    client
        .execute(
            "INSERT INTO etl_service.etl_run (entity_uuid, entity_type, trigger, status) \
             VALUES ($1, 'organisation', 'run_now', 'queued')",
            &[&uuid],
        )
        .await
        .expect("queue a run");
    client
        .batch_execute("NOTIFY etl_scheduler_wakeup")
        .await
        .expect("notify");
    wait_for("the run to succeed", Duration::from_secs(60), || async {
        client
            .query_one(
                "SELECT status FROM etl_service.etl_run ORDER BY id DESC LIMIT 1",
                &[],
            )
            .await
            .map(|r| r.get::<_, String>(0) == "succeeded")
            .unwrap_or(false)
    })
    .await;
    let events: i64 = client
        .query_one("SELECT count(*) FROM etl_service.etl_run_event", &[])
        .await
        .expect("events")
        .get(0);
    assert!(
        events > 3,
        "the run's progress was written: {events} events"
    );

    drop(held);
    shutdown.cancel();
    running.await.expect("join").expect("stops cleanly");
}

#[tokio::test(flavor = "multi_thread")]
async fn migrator_batches_are_written_while_every_api_connection_is_taken() {
    let db = integration_tests::migrator::migrated_repository().await;
    let upstream = FakeUpstream::start(Data::Generated(Generator::new(300))).await;
    let mut config: migrator_service::Config = test_config(&db.url);
    config.database.pool_size = 1;
    config.sources = vec![source("drishti", &upstream, 50, 3600.0)];
    let app = migrator_service::App::build(config).await.expect("app");
    let held = app.pool().get_owned().await.expect("api connection");
    let shutdown = app.shutdown_token();
    let running = tokio::spawn(app.run_until_stopped());

    let client = db.client().await;
    wait_for("300 submissions", PATIENCE, || async {
        integration_tests::migrator::form_rows(&client).await.1 == 300
    })
    .await;
    assert_generated_exactly_once(&client, 300).await;

    drop(held);
    shutdown.cancel();
    running.await.expect("join").expect("stops cleanly");
}
