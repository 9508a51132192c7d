//! `etl-service run-once`: one run of one organisation or group from the
//! command line, with a progress bar on a terminal and a summary at the end.

use crate::config::Config;
use crate::control::executor;
use crate::control::jobs::{self, RunStatus, Trigger};
use crate::engine::entity::EntityRef;
use crate::engine::schema::schema_diff::TableChange;
use crate::engine::{self, EngineContext, ProgressEvent, ProgressSink, RunOptions, RunReport};
use crate::error::Error;
use indicatif::{ProgressBar, ProgressStyle};
use std::fmt::Write;
use std::time::Duration;

/// Like `serve`: waits for PostgreSQL and refuses to run with migrations
/// pending (naming them) unless `migrations.apply_on_start`; then runs the
/// entity once, waiting for its lock if another run holds it.
pub async fn run_once(config: &Config, entity: EntityRef) -> Result<RunReport, Error> {
    let database = &config.database;
    service_kit::db::wait_for_database(database).await?;
    service_kit::base::settle_migrations(config, crate::migrations::migrations()).await?;
    let ctx = EngineContext {
        pool: service_kit::db::build_pool(database),
        database_url: database.url.clone(),
        settings: config.etl.clone(),
    };
    crate::engine::source::indexes::warn_if_missing(&ctx.pool).await;
    let progress = TerminalProgress::new();
    let started_at = chrono::Utc::now();
    let options = RunOptions {
        stop: crate::engine::stop::RunStop::new(
            tokio_util::sync::CancellationToken::new(),
            config.etl.run_timeout(),
        ),
        ..RunOptions::default()
    };
    let result = engine::run_entity(&ctx, entity, &options, &progress).await;
    progress.bar.finish_and_clear();
    record(&ctx, entity, started_at, &result).await;
    result
}

/// Adds the run to the entity's history (trigger `command_line`), unless the
/// entity does not exist: then nothing at all is written.
async fn record(
    ctx: &EngineContext,
    entity: EntityRef,
    started_at: chrono::DateTime<chrono::Utc>,
    result: &Result<RunReport, Error>,
) {
    let (status, error, detail, tables) = match result {
        Ok(report) => (
            RunStatus::Succeeded,
            None,
            None,
            report
                .tables
                .iter()
                .map(executor::outcome)
                .collect::<Vec<_>>(),
        ),
        Err(Error::NotFound(_) | Error::InvalidArgument(_)) => return,
        Err(e) => (
            RunStatus::Failed,
            Some(service_kit::config::one_line(&e.to_string())),
            Some(executor::chain(e)),
            Vec::new(),
        ),
    };
    let worker = format!("run-once:{}", std::process::id());
    let recorded = async {
        let mut conn = ctx.pool.get().await?;
        jobs::record_finished_run(
            &mut conn,
            entity,
            Trigger::CommandLine,
            &worker,
            started_at,
            status,
            error.as_deref(),
            detail.as_deref(),
            &tables,
        )
        .await
    }
    .await;
    if let Err(e) = recorded {
        tracing::warn!(error = %e, "the run is not in the run history");
    }
}

/// A progress bar on stderr; indicatif draws nothing when stderr is not a
/// terminal, so logs and pipes stay clean.
struct TerminalProgress {
    bar: ProgressBar,
}

impl TerminalProgress {
    fn new() -> Self {
        let bar = ProgressBar::new(0);
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
        {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        Self { bar }
    }
}

impl ProgressSink for TerminalProgress {
    fn event(&self, event: ProgressEvent) {
        match event {
            ProgressEvent::Started {
                schema_name,
                tables_total,
            } => {
                self.bar.set_length(tables_total as u64);
                self.bar
                    .set_message(format!("planning schema {schema_name}"));
            }
            ProgressEvent::SchemaApplied { created, altered } => self.bar.set_message(format!(
                "schema applied: {created} created, {altered} altered"
            )),
            ProgressEvent::TableStarted { name, .. } => self.bar.set_message(name),
            ProgressEvent::TableFinished { report, .. } => {
                self.bar.inc(1);
                self.bar.println(format!(
                    "{:<40} {:>9} {:>9} rows {:>6} ms",
                    report.name,
                    report.change.as_str(),
                    report.rows_upserted,
                    report.duration.as_millis()
                ));
            }
        }
    }
}

/// The summary printed after a run: one line per table, then the totals.
pub fn summary(report: &RunReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ({}) -> schema {}",
        report.entity, report.name, report.schema_name
    );
    let width = report
        .tables
        .iter()
        .map(|t| t.name.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    let _ = writeln!(
        out,
        "  {:<width$}  {:<9}  {:>10}  {:>8}  {:>9}",
        "table", "change", "upserted", "deleted", "time"
    );
    for t in &report.tables {
        let _ = writeln!(
            out,
            "  {:<width$}  {:<9}  {:>10}  {:>8}  {:>7}ms",
            t.name,
            t.change.as_str(),
            t.rows_upserted,
            t.rows_deleted,
            t.duration.as_millis()
        );
    }
    let _ = writeln!(
        out,
        "{} tables ({} created, {} altered, {} unchanged); {} rows upserted, {} deleted; {:.2}s",
        report.tables.len(),
        report.count(TableChange::Created),
        report.count(TableChange::Altered),
        report.count(TableChange::Unchanged),
        report.rows_upserted(),
        report.rows_deleted(),
        report.duration.as_secs_f64()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::TableReport;
    use crate::engine::entity::EntityKind;
    use crate::engine::schema::layout::TableKind;

    #[test]
    fn summary_lists_tables_and_totals() {
        let report = RunReport {
            entity: EntityRef {
                uuid: uuid::Uuid::nil(),
                kind: EntityKind::Organisation,
            },
            name: "Org".into(),
            schema_name: "org".into(),
            tables_dropped: 0,
            tables: vec![
                TableReport {
                    name: "person".into(),
                    kind: TableKind::Subject,
                    change: TableChange::Created,
                    rows_upserted: 12,
                    rows_deleted: 0,
                    duration: Duration::from_millis(5),
                },
                TableReport {
                    name: "person_pregnancy_anc_cancel".into(),
                    kind: TableKind::ProgramEncounterCancel,
                    change: TableChange::Unchanged,
                    rows_upserted: 1,
                    rows_deleted: 2,
                    duration: Duration::from_millis(7),
                },
            ],
            duration: Duration::from_millis(1500),
        };
        let text = summary(&report);
        assert!(text.starts_with(
            "organisation 00000000-0000-0000-0000-000000000000 (Org) -> schema org\n"
        ));
        assert!(
            text.contains(
                "  person                       created            12         0        5ms\n"
            ),
            "{text}"
        );
        assert!(text.ends_with(
            "2 tables (1 created, 0 altered, 1 unchanged); 13 rows upserted, 2 deleted; 1.50s\n"
        ));
    }
}
