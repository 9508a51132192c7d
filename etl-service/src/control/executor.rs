//! The scheduler's executor: a claimed run is an engine run of its entity,
//! waiting for the entity's lock if a run-once or RecreateSchema holds it,
//! with the engine's progress written to the run's history.

use crate::control::jobs::{RunRow, TableOutcome};
use crate::control::progress::{ProgressEvent, RunProgress};
use crate::control::scheduler::{RunExecutor, RunFailure};
use crate::engine::stop::RunStop;
use crate::engine::{self, EngineContext, LockMode, ProgressSink, RunOptions, TableReport};
use crate::error::Error;
use std::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// Runs claimed runs with the ETL engine.
pub struct EngineExecutor {
    ctx: EngineContext,
}

impl EngineExecutor {
    pub fn new(ctx: EngineContext) -> Self {
        Self { ctx }
    }
}

/// Forwards engine progress to the run's history and keeps the outcomes of
/// the tables finished so far (a failed run still reports those).
struct Forward<'a> {
    progress: &'a RunProgress,
    done: Mutex<Vec<TableOutcome>>,
}

impl Forward<'_> {
    fn done(&self) -> Vec<TableOutcome> {
        self.done.lock().map(|d| d.clone()).unwrap_or_default()
    }
}

impl ProgressSink for Forward<'_> {
    fn event(&self, event: engine::ProgressEvent) {
        match event {
            engine::ProgressEvent::Started { tables_total, .. } => {
                self.progress.report(ProgressEvent::Started);
                self.progress.report(ProgressEvent::Planned {
                    tables_total: i32::try_from(tables_total).unwrap_or(i32::MAX),
                });
            }
            engine::ProgressEvent::SchemaApplied { created, altered } => {
                self.progress.report(ProgressEvent::SchemaApplied {
                    created: i32::try_from(created).unwrap_or(i32::MAX),
                    altered: i32::try_from(altered).unwrap_or(i32::MAX),
                });
            }
            engine::ProgressEvent::TableStarted { name, .. } => {
                self.progress
                    .report(ProgressEvent::TableStarted { table: name });
            }
            engine::ProgressEvent::TableFinished { report, .. } => {
                let done = outcome(&report);
                self.progress.report(ProgressEvent::TableFinished {
                    table: report.name,
                    rows_upserted: done.rows_upserted,
                    rows_deleted: done.rows_deleted,
                });
                if let Ok(mut tables) = self.done.lock() {
                    tables.push(done);
                }
            }
        }
    }
}

/// A table's outcome as the run history stores it.
pub fn outcome(report: &TableReport) -> TableOutcome {
    TableOutcome {
        table_name: report.name.clone(),
        change: report.change.as_str().to_string(),
        rows_upserted: i64::try_from(report.rows_upserted).unwrap_or(i64::MAX),
        rows_deleted: i64::try_from(report.rows_deleted).unwrap_or(i64::MAX),
        duration_ms: i64::try_from(report.duration.as_millis()).unwrap_or(i64::MAX),
    }
}

/// The error's chain, for `error_detail`.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = format!("{e}");
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str("\ncaused by: ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[tonic::async_trait]
impl RunExecutor for EngineExecutor {
    async fn execute(
        &self,
        run: &RunRow,
        progress: &RunProgress,
        cancel: CancellationToken,
    ) -> Result<Vec<TableOutcome>, RunFailure> {
        let forward = Forward {
            progress,
            done: Mutex::new(Vec::new()),
        };
        let entity = run.entity().map_err(|e| RunFailure {
            message: e.to_string(),
            detail: chain(&e),
            tables: Vec::new(),
            cancelled: false,
        })?;
        // The engine stops itself (cancelling its statement in PostgreSQL)
        // rather than being dropped, so nothing of the run goes on in the
        // server once it is recorded as finished.
        let options = RunOptions {
            lock: LockMode::Wait,
            stop: RunStop::new(cancel, self.ctx.settings.run_timeout()),
            ..RunOptions::default()
        };
        let finished = engine::run_entity(&self.ctx, entity, &options, &forward).await;
        match finished {
            Ok(report) => Ok(report.tables.iter().map(outcome).collect()),
            // Each table commits its rows with its watermark, so stopping
            // leaves every table at its old or its new state.
            Err(e @ (Error::Cancelled(_) | Error::TimedOut(_))) => Err(RunFailure {
                message: e.to_string(),
                detail: format!(
                    "{e}; tables finished before the stop keep their new rows, the others keep their previous state"
                ),
                tables: forward.done(),
                cancelled: matches!(e, Error::Cancelled(_)),
            }),
            Err(e) => Err(RunFailure {
                message: service_kit::config::one_line(&e.to_string()),
                detail: chain(&e),
                tables: forward.done(),
                cancelled: false,
            }),
        }
    }
}
