//! The entity lock: a second run of one organisation waits (or, in try
//! mode, gives up) while another holds its lock.

use etl_service::Error;
use etl_service::engine::lock::EntityLock;
use etl_service::engine::{LockMode, RunOptions};
use integration_tests::avni::{Size, Spec};
use integration_tests::etl::{EtlFixture, org_ref};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn a_run_waits_for_or_skips_a_locked_organisation() {
    let f = EtlFixture::new(&Spec {
        seed: 51,
        size: Size::EMPTY,
        ..Spec::default()
    })
    .await;
    let org = f.org(0).clone();
    let held = EntityLock::acquire(&f.db.url, &org.schema_name)
        .await
        .expect("take the lock as another replica would");

    let tried = f
        .run(
            org_ref(&org),
            &RunOptions {
                lock: LockMode::Try,
                ..RunOptions::default()
            },
        )
        .await;
    match tried {
        Err(Error::AlreadyRunning(message)) => {
            assert!(message.contains("already running"), "{message}")
        }
        other => panic!("expected AlreadyRunning, got {other:?}"),
    }
    assert!(
        EntityLock::try_acquire(&f.db.url, &org.schema_name)
            .await
            .expect("try")
            .is_none()
    );

    let ctx = f.ctx.clone();
    let entity = org_ref(&org);
    let waiting = tokio::spawn(async move {
        etl_service::engine::run_entity(
            &ctx,
            entity,
            &RunOptions::default(),
            &etl_service::engine::NoProgress,
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "the run waits for the lock");
    let tables: i64 = f
        .client
        .query_one("SELECT count(*) FROM table_metadata", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(tables, 0, "nothing written while waiting");

    held.release().await.expect("release");
    let report = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("the run finishes once the lock is free")
        .expect("join")
        .expect("run");
    assert!(!report.tables.is_empty());
    let again = EntityLock::try_acquire(&f.db.url, &org.schema_name)
        .await
        .expect("try")
        .expect("free after the run");
    again.release().await.expect("release");
}
