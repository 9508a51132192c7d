//! A replica killed (SIGKILL) in the middle of a run: once its lease
//! expires another replica records the run as failed, and the next run
//! completes. The run is held mid-way by a lock the test takes on one
//! reporting table, so the kill lands while the run is working.

use integration_tests::avni::edit::{self, SourceTable};
use integration_tests::avni::{self, Spec};
use integration_tests::binaries::{ServiceProcess, binary, free_addr};
use integration_tests::postgres::TestDatabase;
use std::time::{Duration, Instant};

async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_replicas_run_is_failed_after_its_lease_and_the_next_run_completes() {
    let db = TestDatabase::migrated(etl_service::migrations::migrations()).await;
    let client = db.client().await;
    let world = avni::generate(&client, &Spec::default()).await;
    let org = &world.organisations[0];
    let bin = binary("etl-service", "etl-service");
    let config = tempfile::NamedTempFile::new().expect("config");
    std::fs::write(
        config.path(),
        "etl:\n  sync_offset_seconds: 0\n  scheduler_poll_ms: 200\n  lease_seconds: 3\n",
    )
    .expect("config");
    let config_path = config.path().to_string_lossy().to_string();
    let start = |addr: std::net::SocketAddr| {
        let listen = addr.to_string();
        ServiceProcess::start(
            &bin,
            &["--config", &config_path, "serve"],
            &[
                ("DATABASE_URL", db.url.as_str()),
                ("GRPC_LISTEN", listen.as_str()),
            ],
            addr,
        )
    };

    // A first full run through replica A.
    let mut replica_a = start(free_addr());
    let uuid: uuid::Uuid = org.uuid.parse().expect("uuid");
    let queue = |trigger: &'static str| {
        let client = &client;
        async move {
            client
                .execute(
                    "INSERT INTO etl_service.etl_run (entity_uuid, entity_type, trigger, status) \
                     VALUES ($1, 'organisation', $2, 'queued')",
                    &[&uuid, &trigger],
                )
                .await
                .expect("queue run");
            client
                .batch_execute("NOTIFY etl_scheduler_wakeup")
                .await
                .expect("notify");
        }
    };
    queue("run_now").await;
    let status_of_last = || async {
        client
            .query_one(
                "SELECT status FROM etl_service.etl_run ORDER BY id DESC LIMIT 1",
                &[],
            )
            .await
            .map(|r| r.get::<_, String>(0))
            .unwrap_or_default()
    };
    wait_until("the first run", Duration::from_secs(60), || async {
        status_of_last().await == "succeeded"
    })
    .await;

    // Change a subject, then hold its reporting table so the next run stops there.
    let subject: i64 = client
        .query_one(
            "SELECT id FROM individual WHERE organisation_id = $1 ORDER BY id LIMIT 1",
            &[&org.id],
        )
        .await
        .expect("subject")
        .get(0);
    edit::set_observations(
        &client,
        SourceTable::Individual,
        subject,
        &serde_json::json!({}),
    )
    .await;
    let table: String = client
        .query_one(
            "SELECT t.name FROM table_metadata t JOIN individual i ON i.subject_type_id = \
               (SELECT id FROM subject_type WHERE uuid = t.subject_type_uuid) \
             WHERE t.schema_name = $1 AND i.id = $2 AND t.program_uuid IS NULL \
               AND t.encounter_type_uuid IS NULL AND t.repeatable_question_group_concept_uuid IS NULL",
            &[&org.schema_name, &subject],
        )
        .await
        .expect("subject table")
        .get(0);
    let holder = db.client().await;
    holder.batch_execute("BEGIN").await.expect("begin");
    holder
        .batch_execute(&format!(
            "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
            service_kit::sql::quote_qualified(&org.schema_name, &table)
        ))
        .await
        .expect("lock table");

    queue("run_now").await;
    wait_until(
        "the run to block on the held table",
        Duration::from_secs(30),
        || async {
            client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND wait_event_type = 'Lock' AND state = 'active'",
                    &[],
                )
                .await
                .map(|r| r.get::<_, i64>(0) > 0)
                .unwrap_or(false)
        },
    )
    .await;
    let killed_run: (i64, String) = client
        .query_one(
            "SELECT id, status FROM etl_service.etl_run ORDER BY id DESC LIMIT 1",
            &[],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .expect("run");
    assert_eq!(killed_run.1, "running");
    replica_a.kill();
    holder
        .batch_execute("ROLLBACK")
        .await
        .expect("release table");
    drop(replica_a);

    // Replica B reaps the run once its lease (3 s) expires.
    let replica_b = start(free_addr());
    wait_until(
        "the killed run to be failed",
        Duration::from_secs(30),
        || async {
            client
                .query_one(
                    "SELECT status FROM etl_service.etl_run WHERE id = $1",
                    &[&killed_run.0],
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
            &[&killed_run.0],
        )
        .await
        .expect("error")
        .get(0);
    assert!(error.contains("lease expired"), "{error}");

    queue("run_now").await;
    wait_until("the next run", Duration::from_secs(60), || async {
        status_of_last().await == "succeeded"
    })
    .await;
    let upserted: i64 = client
        .query_one(
            "SELECT rows_upserted FROM etl_service.etl_run ORDER BY id DESC LIMIT 1",
            &[],
        )
        .await
        .expect("rows")
        .get(0);
    assert!(
        upserted >= 1,
        "the changed subject is synced by the next run"
    );
    let row_has_new_obs: bool = client
        .query_one(
            &format!(
                "SELECT count(*) = 1 FROM {} WHERE id = $1",
                service_kit::sql::quote_qualified(&org.schema_name, &table)
            ),
            &[&subject],
        )
        .await
        .expect("row")
        .get(0);
    assert!(row_has_new_obs);
    let status = replica_b.terminate();
    assert!(status.success());
}
