//! Server-side call limits (`server.request_timeout_seconds`,
//! `server.max_concurrent_calls`): a call past the deadline ends with
//! DEADLINE_EXCEEDED while the work it handed to the background goes on; a
//! call over the cap is refused at once with RESOURCE_EXHAUSTED; health
//! checks answer either way. The slow call is a RecreateSchema waiting for an
//! organisation's lock, held here as a run in another process would.

use avni_proto::etl::v1 as pb;
use etl_service::engine::lock::EntityLock;
use integration_tests::avni::{self, Spec};
use integration_tests::services::TestEtl;
use service_kit::config::ServiceConfig;
use std::time::{Duration, Instant};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

fn org_entity(uuid: &str) -> pb::Entity {
    pb::Entity {
        uuid: uuid.to_string(),
        r#type: pb::EntityType::Organisation as i32,
    }
}

fn recreate(uuid: &str) -> pb::RecreateSchemaRequest {
    pb::RecreateSchemaRequest {
        entity: Some(org_entity(uuid)),
        skip_rebuild: true,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_past_the_deadline_ends_and_its_work_goes_on() {
    let etl = TestEtl::start(|c| {
        c.etl.scheduler_enabled = false;
        c.etl.recreate_lock_wait_seconds = 20;
        c.server_mut().request_timeout_seconds = 1;
    })
    .await;
    let db = etl.db.client().await;
    let world = avni::generate(&db, &Spec::default()).await;
    let org = &world.organisations[0];
    assert!(
        !schema_exists(&db, &org.schema_name).await,
        "no run yet: the reporting schema is not there"
    );
    let mut client = etl.client().await;
    let lock = EntityLock::acquire(&etl.db.url, &org.schema_name)
        .await
        .expect("lock");

    let started = Instant::now();
    let ended = client
        .recreate_schema(recreate(&org.uuid))
        .await
        .expect_err("the lock is held for longer than the deadline");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "answered after {:?}, not at the 1 s deadline",
        started.elapsed()
    );
    assert_eq!(ended.code(), Code::DeadlineExceeded, "{}", ended.message());
    assert!(
        ended.message().contains("RecreateSchema")
            && ended.message().contains("server.request_timeout_seconds"),
        "{}",
        ended.message()
    );

    // The recreate was handed to a task of its own: once the lock is free it
    // runs and the schema appears.
    lock.release().await.expect("release");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !schema_exists(&db, &org.schema_name).await {
        assert!(
            Instant::now() < deadline,
            "the background RecreateSchema never made the schema"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The service is still answering in time.
    client
        .get_job(pb::GetJobRequest {
            entity: Some(org_entity(&org.uuid)),
        })
        .await
        .expect("a quick call answers");
}

async fn schema_exists(db: &tokio_postgres::Client, schema: &str) -> bool {
    db.query_one(
        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
        &[&schema],
    )
    .await
    .expect("pg_namespace")
    .get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_over_the_cap_is_refused_at_once_and_health_still_answers() {
    let etl = TestEtl::start(|c| {
        c.etl.scheduler_enabled = false;
        c.etl.recreate_lock_wait_seconds = 20;
        c.server_mut().max_concurrent_calls = 1;
    })
    .await;
    let db = etl.db.client().await;
    let world = avni::generate(&db, &Spec::default()).await;
    let org = world.organisations[0].clone();
    let lock = EntityLock::acquire(&etl.db.url, &org.schema_name)
        .await
        .expect("lock");

    // The one permitted call: a RecreateSchema waiting for the lock.
    let mut slow_client = etl.client().await;
    let uuid = org.uuid.clone();
    let slow = tokio::spawn(async move { slow_client.recreate_schema(recreate(&uuid)).await });
    let mut client = etl.client().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let refused = loop {
        let started = Instant::now();
        match client
            .get_job(pb::GetJobRequest {
                entity: Some(org_entity(&org.uuid)),
            })
            .await
        {
            Err(status) => {
                assert!(
                    started.elapsed() < Duration::from_secs(2),
                    "refused after {:?}: over the cap is refused at once, not queued",
                    started.elapsed()
                );
                break status;
            }
            // The slow call may not have reached the server yet.
            Ok(_) => {
                assert!(
                    Instant::now() < deadline,
                    "a second call was never refused while one ran"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(
        refused.code(),
        Code::ResourceExhausted,
        "{}",
        refused.message()
    );
    assert!(
        refused.message().contains("server.max_concurrent_calls")
            && refused.message().contains("GetJob"),
        "{}",
        refused.message()
    );

    let health = etl
        .service
        .health()
        .await
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health is exempt from the cap")
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);

    lock.release().await.expect("release");
    slow.await
        .expect("task")
        .expect("the permitted RecreateSchema finishes once the lock is free");
    client
        .get_job(pb::GetJobRequest {
            entity: Some(org_entity(&org.uuid)),
        })
        .await
        .expect("with the slot free again, a call answers");
}
