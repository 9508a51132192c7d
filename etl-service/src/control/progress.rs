//! A run's progress, as the engine reports it: written to `etl_run` (live
//! progress for GetJob) and `etl_run_event` (the stream WatchJobRun follows,
//! from any replica). Reporting never blocks the engine: events go through a
//! channel to a writer task, which the scheduler drains before recording the
//! outcome, so `run_finished` is always the last event.

use crate::control::jobs;
use service_kit::db::Pool;
use std::sync::Mutex;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// One thing that happened in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgressEvent {
    /// The run holds its entity's lock and starts working.
    Started,
    /// The plan is made: `tables_total` tables will be synced.
    Planned {
        tables_total: i32,
    },
    /// The plan's DDL was applied.
    SchemaApplied {
        created: i32,
        altered: i32,
    },
    TableStarted {
        table: String,
    },
    TableFinished {
        table: String,
        rows_upserted: i64,
        rows_deleted: i64,
    },
}

#[derive(Debug, Default)]
struct Counters {
    tables_total: i32,
    tables_done: i32,
    rows_upserted: i64,
    rows_deleted: i64,
}

/// The progress reporter handed to the executor of one run.
pub struct RunProgress {
    run_id: i64,
    sender: Mutex<Option<mpsc::UnboundedSender<ProgressEvent>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl RunProgress {
    /// Starts the writer task of run `run_id`.
    pub fn start(pool: Pool, run_id: i64) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_events(pool, run_id, rx));
        Self {
            run_id,
            sender: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
        }
    }

    pub fn run_id(&self) -> i64 {
        self.run_id
    }

    /// Reports an event; never blocks, never fails the run.
    pub fn report(&self, event: ProgressEvent) {
        if let Ok(guard) = self.sender.lock()
            && let Some(tx) = guard.as_ref()
        {
            let _ = tx.send(event);
        }
    }

    /// Waits until every reported event is written.
    pub async fn finish(&self) {
        if let Ok(mut guard) = self.sender.lock() {
            guard.take();
        }
        let writer = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(writer) = writer {
            let _ = writer.await;
        }
    }
}

async fn write_events(pool: Pool, run_id: i64, mut rx: mpsc::UnboundedReceiver<ProgressEvent>) {
    let mut counters = Counters::default();
    while let Some(event) = rx.recv().await {
        let (kind, table, rows, message, current) = match &event {
            ProgressEvent::Started => ("run_started", None, 0, "started".to_string(), None),
            ProgressEvent::Planned { tables_total } => {
                counters.tables_total = *tables_total;
                ("", None, 0, String::new(), None)
            }
            ProgressEvent::SchemaApplied { created, altered } => (
                "schema_applied",
                None,
                0,
                format!(
                    "schema applied: {} tables, {created} created, {altered} altered",
                    counters.tables_total
                ),
                None,
            ),
            ProgressEvent::TableStarted { table } => (
                "table_started",
                Some(table.as_str()),
                0,
                format!("syncing {table}"),
                Some(table.as_str()),
            ),
            ProgressEvent::TableFinished {
                table,
                rows_upserted,
                rows_deleted,
            } => {
                counters.tables_done += 1;
                counters.rows_upserted += rows_upserted;
                counters.rows_deleted += rows_deleted;
                (
                    "table_finished",
                    Some(table.as_str()),
                    *rows_upserted,
                    format!("{table}: {rows_upserted} rows upserted, {rows_deleted} removed"),
                    None,
                )
            }
        };
        let written = async {
            let mut conn = pool.get().await?;
            if matches!(event, ProgressEvent::Started) {
                jobs::mark_started(&mut conn, run_id).await?;
            } else if !kind.is_empty() {
                jobs::append_event(&mut conn, run_id, kind, table, rows, Some(&message)).await?;
            }
            jobs::record_progress(
                &mut conn,
                run_id,
                counters.tables_total,
                counters.tables_done,
                current,
                counters.rows_upserted,
                counters.rows_deleted,
            )
            .await
        }
        .await;
        if let Err(e) = written {
            // Progress is advisory; the outcome is recorded separately.
            tracing::debug!(run = run_id, error = %e, "cannot record run progress");
        }
    }
}
