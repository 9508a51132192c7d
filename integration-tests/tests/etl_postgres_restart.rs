//! PostgreSQL stopped in the middle of an ETL run (a private cluster, so no
//! other test is disturbed): the service stays up and reports NOT_SERVING
//! while it is down; once it is back the interrupted run is recorded as
//! failed, the next scheduled run completes, and the schema equals a fresh
//! full build.

use integration_tests::avni::Spec;
use integration_tests::etl::{context, org_ref};
use integration_tests::etl_faults::{
    TableHold, compare_with_fresh_build, subject_table, wait_until,
};
use integration_tests::postgres::PrivateCluster;
use integration_tests::services::start_etl_on;
use std::time::Duration;

const SERVING: i32 = 1;
const NOT_SERVING: i32 = 2;

#[tokio::test(flavor = "multi_thread")]
async fn postgres_stopped_during_a_run_then_restarted_the_next_run_completes() {
    let (cluster, db) =
        PrivateCluster::with_migrated_database(etl_service::migrations::migrations()).await;
    let client = db.client().await;
    let world = integration_tests::avni::generate(
        &client,
        &Spec {
            seed: 61,
            ..Spec::default()
        },
    )
    .await;
    let org = world.organisations[0].clone();
    let ctx = context(&db.url);
    etl_service::engine::run_entity(
        &ctx,
        org_ref(&org),
        &Default::default(),
        &etl_service::engine::NoProgress,
    )
    .await
    .expect("first build");
    client
        .execute(
            "UPDATE individual SET observations = observations || '{\"x\": 1}', \
             last_modified_date_time = clock_timestamp() WHERE organisation_id = $1",
            &[&org.id],
        )
        .await
        .expect("edit");

    let service = start_etl_on(&db.url, |c| {
        c.etl.sync_offset_seconds = 0;
        c.etl.scheduler_poll_ms = 200;
        c.etl.lease_seconds = 3;
        c.etl.interval_seconds = Some(2);
        c.database.connect_timeout_seconds = 1;
    })
    .await;
    // The run is held at one table, so the stop lands in the middle of it.
    let table = subject_table(&client, &org).await;
    let hold = TableHold::take(db.client().await, &org.schema_name, &table).await;
    {
        let mut conn = ctx.pool.get().await.expect("pool");
        etl_service::control::jobs::enable(&mut conn, org_ref(&org), 2)
            .await
            .expect("enable");
    }
    let run: i64 = {
        let mut found = None;
        wait_until(
            "a scheduled run to wait on the held table",
            Duration::from_secs(60),
            || async {
                let waiting: i64 = client
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                         AND wait_event_type = 'Lock' AND state = 'active'",
                        &[],
                    )
                    .await
                    .expect("activity")
                    .get(0);
                waiting > 0
            },
        )
        .await;
        if let Some(row) = client
            .query_opt(
                "SELECT id FROM etl_service.etl_run WHERE status = 'running'",
                &[],
            )
            .await
            .expect("running run")
        {
            found = Some(row.get(0));
        }
        found.expect("a running run")
    };

    tokio::task::block_in_place(|| cluster.stop_server()).expect("stop PostgreSQL");
    drop(hold);
    drop(client);
    wait_until("health NOT_SERVING", Duration::from_secs(20), || async {
        service.health_status("").await.ok() == Some(NOT_SERVING)
    })
    .await;
    assert_eq!(
        service.health_status("avni.etl.v1.EtlService").await.ok(),
        Some(NOT_SERVING)
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        service.health_status("").await.ok(),
        Some(NOT_SERVING),
        "still up, still NOT_SERVING"
    );

    tokio::task::block_in_place(|| cluster.start_server()).expect("start PostgreSQL");
    wait_until("health SERVING", Duration::from_secs(30), || async {
        service.health_status("").await.ok() == Some(SERVING)
    })
    .await;
    let client = db.client().await;
    wait_until(
        "the interrupted run to be recorded failed",
        Duration::from_secs(60),
        || async {
            client
                .query_one(
                    "SELECT status FROM etl_service.etl_run WHERE id = $1",
                    &[&run],
                )
                .await
                .map(|r| r.get::<_, String>(0) == "failed")
                .unwrap_or(false)
        },
    )
    .await;
    let error: String = client
        .query_one(
            "SELECT error FROM etl_service.etl_run WHERE id = $1",
            &[&run],
        )
        .await
        .expect("error")
        .get(0);
    eprintln!("the interrupted run: {error}");
    wait_until(
        "a later scheduled run to succeed",
        Duration::from_secs(90),
        || async {
            client
                .query_one(
                    "SELECT count(*) FROM etl_service.etl_run WHERE id > $1 AND status = 'succeeded'",
                    &[&run],
                )
                .await
                .map(|r| r.get::<_, i64>(0) > 0)
                .unwrap_or(false)
        },
    )
    .await;
    {
        let mut conn = ctx.pool.get().await.expect("pool");
        etl_service::control::jobs::disable(&mut conn, org_ref(&org))
            .await
            .expect("disable");
    }
    wait_until("no run in progress", Duration::from_secs(60), || async {
        client
            .query_one(
                "SELECT count(*) FROM etl_service.etl_run WHERE status IN ('queued', 'running')",
                &[],
            )
            .await
            .map(|r| r.get::<_, i64>(0) == 0)
            .unwrap_or(false)
    })
    .await;
    let compared = compare_with_fresh_build(&client, &ctx, &org).await;
    assert!(compared.rows > 0);
    assert!(
        compared.differences.is_empty(),
        "{:?}",
        compared.differences
    );
    service.stop().await.expect("stops cleanly");
}
