//! Helpers for the ETL's fault tests (timeouts, kills, PostgreSQL
//! restarts): queueing runs behind the service's back, holding a reporting
//! table so a run stops there, reading what the run history recorded, and
//! checking a schema against a fresh full build of the same source.

use crate::avni::Org;
use crate::etl::{LiveTable, live_schema, org_ref, view_rows};
use etl_service::engine::{self, EngineContext, NoProgress, RunOptions};
use service_kit::sql::quote_qualified;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// A schema's rows: table name -> rows in key order.
pub type Snapshot = BTreeMap<String, Vec<serde_json::Value>>;

/// Polls `check` every 100 ms until it holds; panics naming `what` after
/// `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Queues a run of `org` as RunNow does (a row and a wake-up), and returns
/// its id; the active run's id when one is queued or running already.
pub async fn queue_run(client: &Client, org: &Org) -> i64 {
    let uuid: uuid::Uuid = org.uuid.parse().expect("organisation uuid");
    let active = client
        .query_opt(
            "SELECT id FROM etl_service.etl_run WHERE entity_uuid = $1 AND status IN ('queued', 'running')",
            &[&uuid],
        )
        .await
        .expect("active run");
    if let Some(row) = active {
        return row.get(0);
    }
    let id: i64 = client
        .query_one(
            "INSERT INTO etl_service.etl_run (entity_uuid, entity_type, trigger, status) \
             VALUES ($1, 'organisation', 'run_now', 'queued') RETURNING id",
            &[&uuid],
        )
        .await
        .expect("queue run")
        .get(0);
    client
        .batch_execute("NOTIFY etl_scheduler_wakeup")
        .await
        .expect("notify");
    id
}

/// A run's status and error as the history has them.
pub async fn run_status(client: &Client, run: i64) -> (String, Option<String>) {
    client
        .query_one(
            "SELECT status, error FROM etl_service.etl_run WHERE id = $1",
            &[&run],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap_or_else(|e| panic!("run {run}: {e}"))
}

/// Waits until run `run` is finished and returns its status and error.
pub async fn wait_finished(client: &Client, run: i64, limit: Duration) -> (String, Option<String>) {
    wait_until(&format!("run {run} to finish"), limit, || async {
        let (status, _) = run_status(client, run).await;
        !matches!(status.as_str(), "queued" | "running")
    })
    .await;
    run_status(client, run).await
}

/// Table name -> watermark (as text) of one schema.
pub async fn watermarks(client: &Client, schema: &str) -> BTreeMap<String, String> {
    client
        .query(
            "SELECT t.name, s.last_sync_time::text FROM table_metadata t \
             JOIN entity_sync_status s ON s.table_metadata_id = t.id WHERE t.schema_name = $1",
            &[&schema],
        )
        .await
        .expect("watermarks")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// The reporting table of `org`'s first subject type (`person` style), the
/// table a held lock stops a run at.
pub async fn subject_table(client: &Client, org: &Org) -> String {
    client
        .query_one(
            "SELECT name FROM table_metadata WHERE schema_name = $1 \
               AND type IN ('Person', 'Individual', 'Household', 'Group', 'User', 'Subject') \
             ORDER BY name LIMIT 1",
            &[&org.schema_name],
        )
        .await
        .unwrap_or_else(|e| panic!("no subject table in {}: {e}", org.schema_name))
        .get(0)
}

/// A connection holding `ACCESS EXCLUSIVE` on one reporting table until
/// [`TableHold::release`]: a run reaching the table waits there.
pub struct TableHold {
    client: Client,
    pub pid: i32,
}

impl TableHold {
    pub async fn take(client: Client, schema: &str, table: &str) -> Self {
        client.batch_execute("BEGIN").await.expect("begin");
        client
            .batch_execute(&format!(
                "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
                quote_qualified(schema, table)
            ))
            .await
            .expect("lock table");
        let pid = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .expect("pid")
            .get(0);
        Self { client, pid }
    }

    pub async fn release(self) {
        self.client
            .batch_execute("ROLLBACK")
            .await
            .expect("release");
    }
}

/// Backends other than `except` that wait for or hold a lock on
/// `schema.table`, and backends holding or awaiting an ETL entity lock, as
/// `pid locktype mode granted state query`: a run that has really stopped
/// leaves none.
pub async fn run_backends_left(
    client: &Client,
    schema: &str,
    table: &str,
    except: i32,
) -> Vec<String> {
    client
        .query(
            "SELECT l.pid, l.locktype, l.mode, l.granted, a.state, left(a.query, 80) \
             FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.pid <> $2 AND l.pid <> pg_backend_pid() \
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND ((l.locktype = 'relation' AND l.relation = to_regclass($1)) \
                 OR (l.locktype = 'advisory' AND l.classid = 1163152433::oid))",
            &[&quote_qualified(schema, table), &except],
        )
        .await
        .expect("locks")
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {} {:?} {:?}",
                r.get::<_, i32>(0),
                r.get::<_, String>(1),
                r.get::<_, String>(2),
                r.get::<_, bool>(3),
                r.get::<_, Option<String>>(4),
                r.get::<_, Option<String>>(5)
            )
        })
        .collect()
}

/// Asserts each table of a schema is either at its old watermark with its
/// old rows, or at a newer one with the rows the completing run left.
pub fn assert_old_or_new(
    old: (&Snapshot, &BTreeMap<String, String>),
    mid: (&Snapshot, &BTreeMap<String, String>),
    new_rows: &Snapshot,
) -> (usize, usize) {
    let (mut kept, mut advanced) = (0, 0);
    for (table, rows) in mid.0 {
        if mid.1.get(table) == old.1.get(table) {
            assert_eq!(
                Some(rows),
                old.0.get(table),
                "{table}: old watermark, not its old rows"
            );
            kept += 1;
        } else {
            assert_eq!(
                Some(rows),
                new_rows.get(table),
                "{table}: new watermark, not its new rows"
            );
            advanced += 1;
        }
    }
    (kept, advanced)
}

/// The views every reporting schema has.
pub const VIEWS: [&str; 5] = [
    "subject_view",
    "enrolment_view",
    "completed_visits_view",
    "due_visits_view",
    "overdue_visits_view",
];

/// How a schema compared with a fresh full build of the same source.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    /// Live tables compared.
    pub tables: usize,
    /// Rows compared (tables and views).
    pub rows: usize,
    /// What differs: tables or views, with the first difference.
    pub differences: Vec<String>,
}

/// Compares `org`'s schema with a fresh full build of the same source, made
/// by a RecreateSchema run into `<schema>_fresh`: the same live tables, the
/// same live columns with the same types, the same rows, the same view rows.
/// Voided tables and columns are history a fresh build does not have, so
/// they are left out (as in the equivalence test).
pub async fn compare_with_fresh_build(
    client: &Client,
    ctx: &EngineContext,
    org: &Org,
) -> Comparison {
    let fresh = format!("{}_fresh", org.schema_name);
    let set_schema = |schema: String| async move {
        client
            .execute(
                "UPDATE organisation SET schema_name = $2 WHERE id = $1",
                &[&org.id, &schema],
            )
            .await
            .expect("schema name");
    };
    set_schema(fresh.clone()).await;
    let built = engine::run_entity(
        ctx,
        org_ref(org),
        &RunOptions {
            recreate: true,
            ..RunOptions::default()
        },
        &NoProgress,
    )
    .await;
    set_schema(org.schema_name.clone()).await;
    if let Err(e) = built {
        panic!("fresh build of {} failed: {e}", org.name);
    }
    let incremental = live_schema(client, &org.schema_name).await;
    let scratch = live_schema(client, &fresh).await;
    let mut out = Comparison {
        tables: incremental.len(),
        ..Comparison::default()
    };
    let names = |m: &BTreeMap<String, LiveTable>| m.keys().cloned().collect::<Vec<_>>();
    if names(&incremental) != names(&scratch) {
        out.differences.push(format!(
            "live tables: {:?} vs fresh {:?}",
            names(&incremental),
            names(&scratch)
        ));
    }
    for (table, (columns, rows)) in &incremental {
        out.rows += rows.len();
        let Some((fresh_columns, fresh_rows)) = scratch.get(table) else {
            continue;
        };
        if columns != fresh_columns {
            out.differences.push(format!(
                "columns of {table}: {columns:?} vs fresh {fresh_columns:?}"
            ));
        } else if rows != fresh_rows {
            let first = rows
                .iter()
                .zip(fresh_rows)
                .find(|(a, b)| a != b)
                .map(|(a, b)| format!("{a} vs fresh {b}"))
                .unwrap_or_else(|| format!("{} rows vs fresh {}", rows.len(), fresh_rows.len()));
            out.differences.push(format!("rows of {table}: {first}"));
        }
    }
    for view in VIEWS {
        let (a, b) = (
            view_rows(client, &org.schema_name, view).await,
            view_rows(client, &fresh, view).await,
        );
        out.rows += a.len();
        if a != b {
            out.differences
                .push(format!("{view}: {} rows vs fresh {}", a.len(), b.len()));
        }
    }
    out
}

/// The value of an unlabelled counter in a Prometheus scrape (0 if absent).
pub fn counter(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| {
            l.strip_prefix(name)
                .filter(|rest| rest.starts_with(' '))
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0.0)
}
