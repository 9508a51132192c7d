//! PostgreSQL stopped under a polling migrator: health NOT_SERVING, the
//! service stays up; started again: the job resumes from the watermark and
//! nothing is lost or doubled. Uses a private cluster so other tests keep
//! their server.

use avni_proto::migrator::v1 as pb;
use avni_proto::migrator::v1::forms_migrator_client::FormsMigratorClient;
use integration_tests::fake_upstream::{Data, FakeUpstream, Generator};
use integration_tests::migrator::{
    PATIENCE, assert_generated_exactly_once, form_rows, source, wait_for, watermark,
};
use integration_tests::postgres::{PrivateCluster, TestDatabase, connect};
use integration_tests::services::{Bearer, RunningService, TEST_TOKEN, start_migrator_on};
use std::time::Duration;

const SERVING: i32 = 1;
const NOT_SERVING: i32 = 2;

#[tokio::test(flavor = "multi_thread")]
async fn postgres_stopped_during_polling_then_restarted_loses_and_doubles_nothing() {
    let (cluster, db) =
        PrivateCluster::with_migrated_database(migrator_service::migrations::migrations()).await;
    integration_tests::migrator::apply_form_migrations(
        &db.url,
        &integration_tests::migrator::demo_forms_dir(),
    )
    .await;

    let generator = Generator::new(40);
    let upstream = FakeUpstream::start(Data::Generated(generator)).await;
    // Polls every 300 ms, so it is polling when PostgreSQL goes away.
    let settings = source("drishti", &upstream, 10, 0.3);
    let service = start_migrator_on(&db.url, |c| {
        c.sources = vec![settings];
        c.database.connect_timeout_seconds = 1;
    })
    .await;
    let mut client = FormsMigratorClient::with_interceptor(
        service.channel().await,
        Bearer::new(Some(TEST_TOKEN)),
    );
    {
        let sql = connect(&db.url).await.expect("connect");
        wait_for("the first 40", PATIENCE, || async {
            form_rows(&sql).await.1 == 40
        })
        .await;
    }

    cluster.stop_server().expect("stop PostgreSQL");
    // New submissions arrive upstream while the repository is down.
    let grown = Generator::new(100);
    upstream.set_data(Data::Generated(grown));
    wait_for("health NOT_SERVING", PATIENCE, || async {
        service.health_status("").await.ok() == Some(NOT_SERVING)
    })
    .await;
    assert_eq!(
        service
            .health_status("avni.migrator.v1.FormsMigrator")
            .await
            .ok(),
        Some(NOT_SERVING)
    );
    let requests_when_down = upstream.request_count();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Still answering, and saying why it waits.
    let status = client
        .get_status(pb::GetStatusRequest::default())
        .await
        .expect("GetStatus answers while PostgreSQL is down")
        .into_inner();
    let s = &status.sources[0];
    assert_eq!(s.state, pb::SourceState::BackingOff as i32, "{s:?}");
    assert!(!s.last_error.is_empty());
    assert!(
        upstream.request_count() <= requests_when_down + 2,
        "the job pauses instead of polling an upstream it cannot store"
    );
    let listing = client
        .list_audits(pb::ListAuditsRequest::default())
        .await
        .expect_err("no repository");
    assert_eq!(listing.code(), tonic::Code::Unavailable);

    let restart = restart_and_expect_each_once(cluster, &service, &db, &grown, 100).await;
    let status = client
        .get_status(pb::GetStatusRequest::default())
        .await
        .expect("status")
        .into_inner();
    assert_eq!(status.sources[0].watermark, grown.server_version(99));
    drop(service);
    drop(db);
    drop(restart);
}

/// The stop lands in the middle of a batch: the batch's transaction has
/// written some of its rows and waits on a table held by the test when
/// PostgreSQL goes away. The batch is lost with its transaction and fetched
/// again after the restart; each submission ends up written once.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_stopped_in_the_middle_of_a_batch_loses_and_doubles_nothing() {
    let (cluster, db) =
        PrivateCluster::with_migrated_database(migrator_service::migrations::migrations()).await;
    integration_tests::migrator::apply_form_migrations(
        &db.url,
        &integration_tests::migrator::demo_forms_dir(),
    )
    .await;
    // Every batch writes anc_visit; holding it stops the first batch there,
    // inside its transaction.
    let holder = connect(&db.url).await.expect("connect");
    holder
        .batch_execute("BEGIN; LOCK TABLE anc_visit IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("hold anc_visit");
    let generator = Generator::new(40);
    let upstream = FakeUpstream::start(Data::Generated(generator)).await;
    let settings = source("drishti", &upstream, 10, 0.3);
    let service = start_migrator_on(&db.url, |c| {
        c.sources = vec![settings];
        c.database.connect_timeout_seconds = 1;
    })
    .await;
    {
        let sql = connect(&db.url).await.expect("connect");
        wait_for(
            "a batch to wait inside its transaction",
            PATIENCE,
            || async {
                sql.query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND wait_event_type = 'Lock' AND state = 'active' AND query ILIKE '%anc_visit%'",
                    &[],
                )
                .await
                .map(|r| r.get::<_, i64>(0) > 0)
                .unwrap_or(false)
            },
        )
        .await;
        assert_eq!(
            watermark(&sql, "drishti").await,
            0,
            "no batch committed yet"
        );
    }

    tokio::task::block_in_place(|| cluster.stop_server()).expect("stop PostgreSQL");
    drop(holder);
    wait_for("health NOT_SERVING", PATIENCE, || async {
        service.health_status("").await.ok() == Some(NOT_SERVING)
    })
    .await;
    let restart = restart_and_expect_each_once(cluster, &service, &db, &generator, 40).await;
    drop(service);
    drop(db);
    drop(restart);
}

/// Starts PostgreSQL again and waits until the service is SERVING and has
/// written all `count` generated submissions, each exactly once, up to the
/// last one's watermark. Returns the cluster, to be dropped last.
async fn restart_and_expect_each_once(
    cluster: PrivateCluster,
    service: &RunningService,
    db: &TestDatabase,
    generator: &Generator,
    count: usize,
) -> PrivateCluster {
    let cluster = tokio::task::spawn_blocking(move || cluster.start_server().map(|()| cluster))
        .await
        .expect("join")
        .expect("start PostgreSQL again");
    wait_for("health SERVING", PATIENCE, || async {
        service.health_status("").await.ok() == Some(SERVING)
    })
    .await;
    let sql = connect(&db.url).await.expect("connect");
    wait_for(&format!("all {count}"), PATIENCE, || async {
        form_rows(&sql).await.1 == count as i64
    })
    .await;
    wait_for("the final watermark", PATIENCE, || async {
        watermark(&sql, "drishti").await == generator.server_version(count - 1)
    })
    .await;
    assert_generated_exactly_once(&sql, count).await;
    cluster
}
