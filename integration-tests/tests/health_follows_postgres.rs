//! Health follows PostgreSQL: each service reports NOT_SERVING within seconds
//! of its database going away and SERVING again when it is back, without a
//! restart. Each test runs on a private cluster, so stopping it disturbs no
//! other test.

use integration_tests::postgres::PrivateCluster;
use integration_tests::services::{RunningService, start_etl_on, start_migrator_on};
use std::time::{Duration, Instant};
use tonic_health::pb::health_check_response::ServingStatus;

async fn wait_for(
    service: &RunningService,
    name: &str,
    wanted: ServingStatus,
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        if let Ok(status) = service.health_status(name).await
            && status == wanted as i32
        {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "health of {name:?} did not become {wanted:?} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn stop_and_restart_postgres(
    cluster: &PrivateCluster,
    service: &RunningService,
    product: &str,
) {
    let limit = Duration::from_secs(10);
    for name in ["", product] {
        wait_for(service, name, ServingStatus::Serving, limit).await;
    }

    tokio::task::block_in_place(|| cluster.stop_server()).expect("stop PostgreSQL");
    for name in ["", product] {
        let took = wait_for(service, name, ServingStatus::NotServing, limit).await;
        eprintln!("{name:?}: NOT_SERVING {took:?} after PostgreSQL stopped");
    }

    tokio::task::block_in_place(|| cluster.start_server()).expect("start PostgreSQL");
    for name in ["", product] {
        let took = wait_for(service, name, ServingStatus::Serving, limit).await;
        eprintln!("{name:?}: SERVING {took:?} after PostgreSQL restarted");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn etl_health_follows_postgres() {
    let (cluster, db) =
        PrivateCluster::with_migrated_database(etl_service::migrations::migrations()).await;
    let service = start_etl_on(&db.url, |_| {}).await;
    stop_and_restart_postgres(&cluster, &service, "avni.etl.v1.EtlService").await;
    service.stop().await.expect("still stops cleanly");
}

#[tokio::test(flavor = "multi_thread")]
async fn migrator_health_follows_postgres() {
    let (cluster, db) =
        PrivateCluster::with_migrated_database(migrator_service::migrations::migrations()).await;
    let service = start_migrator_on(&db.url, |_| {}).await;
    stop_and_restart_postgres(&cluster, &service, "avni.migrator.v1.FormsMigrator").await;
    service.stop().await.expect("still stops cleanly");
}
