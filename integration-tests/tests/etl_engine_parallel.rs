//! A run syncs its tables on `etl.sync_connections` connections at once:
//! tables taken in the run's order, at most that many in progress, the
//! report in the run's order, and the same rows as on one connection.

use etl_service::engine::{self, ProgressEvent, ProgressSink, RunOptions};
use integration_tests::avni::Spec;
use integration_tests::etl::{EtlFixture, org_ref, snapshot};
use std::sync::Mutex;

/// Records the tables' start and end events in the order they came.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<(bool, usize)>>,
}

impl ProgressSink for Recorder {
    fn event(&self, event: ProgressEvent) {
        let entry = match event {
            ProgressEvent::TableStarted { index, .. } => (true, index),
            ProgressEvent::TableFinished { index, .. } => (false, index),
            _ => return,
        };
        self.events.lock().expect("events").push(entry);
    }
}

impl Recorder {
    /// The most tables in progress at once, and the order they started in.
    fn concurrency_and_starts(&self) -> (usize, Vec<usize>) {
        let events = self.events.lock().expect("events");
        let (mut now, mut most, mut starts) = (0usize, 0usize, Vec::new());
        for (started, index) in events.iter() {
            if *started {
                now += 1;
                most = most.max(now);
                starts.push(*index);
            } else {
                now -= 1;
            }
        }
        (most, starts)
    }
}

async fn run_on(
    f: &EtlFixture,
    org: &integration_tests::avni::Org,
    connections: usize,
) -> (engine::RunReport, Recorder) {
    let mut ctx = f.ctx.clone();
    ctx.settings.sync_connections = connections;
    let recorder = Recorder::default();
    let report = engine::run_entity(&ctx, org_ref(org), &RunOptions::default(), &recorder)
        .await
        .expect("run");
    (report, recorder)
}

#[tokio::test(flavor = "multi_thread")]
async fn tables_sync_on_two_connections_in_the_runs_order_with_the_same_rows() {
    let f = EtlFixture::new(&Spec {
        seed: 91,
        ..Spec::default()
    })
    .await;
    let org = f.org(0).clone();
    let s = org.schema_name.as_str();
    let (_, plan) = engine::plan_entity(&f.ctx, org_ref(&org))
        .await
        .expect("plan");
    let planned: Vec<String> = plan.tables.iter().map(|t| t.name.clone()).collect();

    let (report, recorder) = run_on(&f, &org, 2).await;
    let (most, starts) = recorder.concurrency_and_starts();
    assert_eq!(most, 2, "two tables in progress at once on two connections");
    assert_eq!(
        starts,
        (0..planned.len()).collect::<Vec<_>>(),
        "tables start in the run's order"
    );
    let reported: Vec<String> = report.tables.iter().map(|t| t.name.clone()).collect();
    assert_eq!(reported, planned, "the report lists the run's order");
    let parallel = snapshot(&f.client, s).await;

    // The same source loaded again on one connection gives the same rows.
    f.client
        .execute(
            "SELECT delete_etl_metadata_for_schema($1, $2, '')",
            &[&s, &org.db_user],
        )
        .await
        .expect("drop the schema and its metadata");
    let (_, recorder) = run_on(&f, &org, 1).await;
    assert_eq!(recorder.concurrency_and_starts().0, 1, "one at a time");
    assert_eq!(snapshot(&f.client, s).await, parallel);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_with_one_changed_table_uses_one_connection() {
    let f = EtlFixture::new(&Spec {
        seed: 92,
        ..Spec::default()
    })
    .await;
    let org = f.org(0).clone();
    run_on(&f, &org, 2).await;
    f.client
        .execute(
            "UPDATE address_level SET title = title || ' (renamed)', last_modified_date_time = clock_timestamp() \
             WHERE organisation_id = $1 AND parent_id IS NULL",
            &[&org.id],
        )
        .await
        .expect("rename states");
    let (report, recorder) = run_on(&f, &org, 2).await;
    assert!(report.rows_upserted() > 0, "the renamed levels are synced");
    assert_eq!(recorder.concurrency_and_starts().0, 1);
}
