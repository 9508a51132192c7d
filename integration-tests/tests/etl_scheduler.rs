//! The scheduler's queue on a real PostgreSQL: one active run per entity,
//! due jobs queued once, claims that two replicas never share, expired
//! leases reaped, and two schedulers (replicas) on one database never running
//! an entity twice at once. The executor here only sleeps and records: these
//! tests are about when and where runs happen; the engine's own tests cover
//! what a run does.

use chrono::{DateTime, Utc};
use etl_service::control::jobs::{self, RunRow, TableOutcome, Trigger};
use etl_service::control::progress::{ProgressEvent, RunProgress};
use etl_service::control::scheduler::{RunExecutor, RunFailure, Scheduler, SchedulerSettings};
use etl_service::engine::entity::{EntityKind, EntityRef};
use integration_tests::postgres::TestDatabase;
use service_kit::config::DatabaseSettings;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

async fn setup() -> (TestDatabase, service_kit::db::Pool) {
    let db = TestDatabase::migrated(etl_service::migrations::migrations()).await;
    let settings = DatabaseSettings {
        url: db.url.clone(),
        pool_size: 8,
        ..DatabaseSettings::default()
    };
    let pool = service_kit::db::build_pool(&settings);
    (db, pool)
}

fn org(n: u128) -> EntityRef {
    EntityRef {
        uuid: uuid::Uuid::from_u128(0x1000 + n),
        kind: EntityKind::Organisation,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn run_now_during_an_active_run_returns_that_run() {
    let (_db, pool) = setup().await;
    let mut conn = pool.get().await.expect("conn");
    let (first, existed) = jobs::queue_run(&mut conn, org(1), Trigger::RunNow)
        .await
        .expect("queue");
    assert!(!existed);
    let (second, existed) = jobs::queue_run(&mut conn, org(1), Trigger::RunNow)
        .await
        .expect("queue");
    assert!(existed);
    assert_eq!(first.id, second.id);
    // Another entity gets its own run.
    let (other, existed) = jobs::queue_run(&mut conn, org(2), Trigger::RunNow)
        .await
        .expect("queue");
    assert!(!existed);
    assert_ne!(other.id, first.id);
}

#[tokio::test(flavor = "multi_thread")]
async fn due_jobs_are_queued_once_and_catch_up_with_one_run() {
    let (db, pool) = setup().await;
    let mut conn = pool.get().await.expect("conn");
    let (job, created) = jobs::enable(&mut conn, org(1), 3600).await.expect("enable");
    assert!(created);
    let (again, created) = jobs::enable(&mut conn, org(1), 3600)
        .await
        .expect("enable again");
    assert!(!created);
    assert_eq!(again.id, job.id);

    // Pretend the service was down for a day: one run catches up.
    let client = db.client().await;
    client
        .execute(
            "UPDATE etl_service.etl_job SET next_run_at = now() - interval '1 day'",
            &[],
        )
        .await
        .expect("backdate");
    assert_eq!(jobs::queue_due_jobs(&mut conn).await.expect("queue"), 1);
    assert_eq!(jobs::queue_due_jobs(&mut conn).await.expect("queue"), 0);
    let next: DateTime<Utc> = client
        .query_one("SELECT next_run_at FROM etl_service.etl_job", &[])
        .await
        .expect("next")
        .get(0);
    let ahead = next - Utc::now();
    assert!(ahead > chrono::Duration::minutes(59), "next run in {ahead}");

    assert!(jobs::disable(&mut conn, org(1)).await.expect("disable"));
    assert!(
        !jobs::disable(&mut conn, org(1))
            .await
            .expect("disable twice")
    );
    let queued: i64 = client
        .query_one(
            "SELECT count(*) FROM etl_service.etl_run WHERE status = 'queued'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(queued, 0, "disabling cancels the queued scheduled run");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_never_claim_the_same_run_and_expired_leases_are_reaped() {
    let (db, pool) = setup().await;
    let mut a = pool.get().await.expect("conn");
    let mut b = pool.get().await.expect("conn");
    for n in 0..6 {
        jobs::queue_run(&mut a, org(n), Trigger::RunNow)
            .await
            .expect("queue");
    }
    let (got_a, got_b) = tokio::join!(
        jobs::claim_runs(&mut a, "replica-a", 4, 1),
        jobs::claim_runs(&mut b, "replica-b", 4, 1)
    );
    let (got_a, got_b) = (got_a.expect("claim a"), got_b.expect("claim b"));
    assert_eq!(got_a.len() + got_b.len(), 6);
    for run in &got_a {
        assert!(
            !got_b.iter().any(|r| r.id == run.id),
            "run {} claimed twice",
            run.id
        );
    }

    // replica-a keeps its leases, replica-b stops renewing.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let ids: Vec<i64> = got_a.iter().map(|r| r.id).collect();
    let lost = jobs::renew_leases(&mut a, "replica-a", &ids, 30)
        .await
        .expect("renew");
    assert!(lost.is_empty());
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let reaped = jobs::reap_expired(&mut a).await.expect("reap");
    let mut expected: Vec<i64> = got_b.iter().map(|r| r.id).collect();
    expected.sort();
    let mut reaped_sorted = reaped.clone();
    reaped_sorted.sort();
    assert_eq!(reaped_sorted, expected);

    let row = db
        .client()
        .await
        .query_one(
            "SELECT status, error FROM etl_service.etl_run WHERE id = $1",
            &[&expected[0]],
        )
        .await
        .expect("row");
    assert_eq!(row.get::<_, String>(0), "failed");
    assert!(row.get::<_, String>(1).contains("replica-b"));
    // A reaped run cannot be finished by its old worker.
    let finished = jobs::finish_run(
        &mut b,
        expected[0],
        "replica-b",
        jobs::RunStatus::Succeeded,
        None,
        None,
        &[],
    )
    .await
    .expect("finish");
    assert!(!finished);
}

/// Sleeps for a while per run and records nothing itself: the run history
/// in the database is what the test checks.
struct SleepyExecutor(Duration);

#[tonic::async_trait]
impl RunExecutor for SleepyExecutor {
    async fn execute(
        &self,
        _run: &RunRow,
        progress: &RunProgress,
        cancel: CancellationToken,
    ) -> Result<Vec<TableOutcome>, RunFailure> {
        progress.report(ProgressEvent::Started);
        progress.report(ProgressEvent::Planned { tables_total: 1 });
        tokio::select! {
            () = tokio::time::sleep(self.0) => {}
            () = cancel.cancelled() => return Err(RunFailure {
                message: "cancelled".into(), detail: String::new(), tables: vec![], cancelled: true,
            }),
        }
        progress.report(ProgressEvent::TableFinished {
            table: "t".into(),
            rows_upserted: 1,
            rows_deleted: 0,
        });
        Ok(vec![TableOutcome {
            table_name: "t".into(),
            change: "unchanged".into(),
            rows_upserted: 1,
            rows_deleted: 0,
            duration_ms: 1,
        }])
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_run_every_entity_and_never_one_entity_twice_at_once() {
    let (db, pool) = setup().await;
    let mut conn = pool.get().await.expect("conn");
    for n in 0..20 {
        jobs::enable(&mut conn, org(n), 1).await.expect("enable");
    }
    drop(conn);
    let settings = SchedulerSettings {
        max_concurrent_runs: 3,
        lease: Duration::from_secs(5),
        poll_interval: Duration::from_millis(200),
    };
    let shutdown = CancellationToken::new();
    let executor = Arc::new(SleepyExecutor(Duration::from_millis(150)));
    let a = Scheduler::new(
        pool.clone(),
        db.url.clone(),
        settings.clone(),
        executor.clone(),
    );
    let b = Scheduler::new(pool.clone(), db.url.clone(), settings, executor);
    let (worker_a, worker_b) = (a.worker().to_string(), b.worker().to_string());
    let handles = [a.spawn(shutdown.clone()), b.spawn(shutdown.clone())];
    tokio::time::sleep(Duration::from_secs(5)).await;
    shutdown.cancel();
    for h in handles {
        h.await.expect("scheduler ends");
    }

    let client = db.client().await;
    let overlaps = integration_tests::etl::overlapping_runs(&client).await;
    assert_eq!(overlaps, 0, "an entity ran twice at once");
    let ran: i64 = client
        .query_one(
            "SELECT count(DISTINCT entity_uuid) FROM etl_service.etl_run WHERE status = 'succeeded'",
            &[],
        )
        .await
        .expect("ran")
        .get(0);
    assert_eq!(ran, 20, "every entity must have run");
    let per_worker: Vec<(String, i64)> = client
        .query(
            "SELECT worker, count(*) FROM etl_service.etl_run WHERE status = 'succeeded' GROUP BY worker",
            &[],
        )
        .await
        .expect("per worker")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(
        per_worker.iter().any(|(w, _)| *w == worker_a)
            && per_worker.iter().any(|(w, _)| *w == worker_b),
        "both replicas should have worked: {per_worker:?}"
    );
    // Runs are queued every second, so entities ran more than once.
    let total: i64 = client
        .query_one(
            "SELECT count(*) FROM etl_service.etl_run WHERE status = 'succeeded'",
            &[],
        )
        .await
        .expect("total")
        .get(0);
    assert!(total > 20, "only {total} runs in 5s with a 1s interval");
    // Every finished run ended with a run_finished event, the last of its events.
    let bad_streams: i64 = client
        .query_one(
            "SELECT count(*) FROM etl_service.etl_run r WHERE r.finished_at IS NOT NULL AND
               (SELECT kind FROM etl_service.etl_run_event e WHERE e.run_id = r.id ORDER BY seq DESC LIMIT 1)
               IS DISTINCT FROM 'run_finished'",
            &[],
        )
        .await
        .expect("events")
        .get(0);
    assert_eq!(bad_streams, 0);
}
