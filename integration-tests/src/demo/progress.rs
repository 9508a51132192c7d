//! Following both services while they work: the ETL run's tables done out of
//! tables total (from `GetJob`'s live progress) and the submissions the
//! migrator has written or failed (from `GetStatus`), as two progress bars
//! on a terminal.

use super::{EtlClient, MigratorClient, SOURCE_NAME};
use anyhow::{Context, anyhow, bail};
use avni_proto::etl::v1 as etl_pb;
use avni_proto::migrator::v1 as mig_pb;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::time::{Duration, Instant};

/// How often both services are asked.
const POLL: Duration = Duration::from_millis(250);

/// What the services had done when both finished.
pub struct Work {
    /// The ETL run that finished (succeeded or not).
    pub run: etl_pb::JobRun,
    /// The migrator's source after it drained the upstream.
    pub source: mig_pb::SourceStatus,
}

/// Waits until the organisation's first run has ended and the migrator's
/// watermark has reached `newest` (the upstream's newest `serverVersion`),
/// showing progress; fails after `limit`.
pub async fn follow(
    etl: &mut EtlClient,
    migrator: &mut MigratorClient,
    entity: &etl_pb::Entity,
    newest: i64,
    total_submissions: u64,
    limit: Duration,
) -> anyhow::Result<Work> {
    let bars = MultiProgress::new();
    let etl_bar = bars.add(bar("ETL     tables     ", 0));
    etl_bar.set_message("waiting for the scheduler to start the run");
    let migrator_bar = bars.add(bar("forms   submissions", total_submissions));
    let deadline = Instant::now() + limit;
    let (run, source) = tokio::join!(
        follow_etl(etl, entity, &etl_bar, deadline),
        follow_migrator(migrator, newest, total_submissions, &migrator_bar, deadline),
    );
    let (run, source) = (run?, source?);
    let _ = bars.clear();
    println!(
        "ETL: run #{} {} ({} of {} tables)",
        run.id,
        status_name(run.status),
        run.tables.len(),
        run.progress
            .as_ref()
            .map(|p| p.tables_total)
            .unwrap_or(run.tables.len() as i32),
    );
    println!(
        "Forms migrator: {} submissions written, {} failed, watermark {}",
        source.total_written, source.total_failed, source.watermark
    );
    Ok(Work { run, source })
}

fn bar(prefix: &str, length: u64) -> ProgressBar {
    let bar = ProgressBar::new(length);
    if let Ok(style) = ProgressStyle::with_template(
        "{prefix} [{elapsed_precise}] {bar:32.cyan/blue} {pos:>5}/{len:<5} {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(prefix.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn finished(status: i32) -> bool {
    matches!(
        etl_pb::RunStatus::try_from(status),
        Ok(etl_pb::RunStatus::Succeeded | etl_pb::RunStatus::Failed | etl_pb::RunStatus::Cancelled)
    )
}

/// `RUN_STATUS_SUCCEEDED` -> `succeeded`.
pub fn status_name(status: i32) -> String {
    etl_pb::RunStatus::try_from(status)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("RUN_STATUS_")
                .to_lowercase()
        })
        .unwrap_or_else(|_| format!("status {status}"))
}

async fn follow_etl(
    etl: &mut EtlClient,
    entity: &etl_pb::Entity,
    bar: &ProgressBar,
    deadline: Instant,
) -> anyhow::Result<etl_pb::JobRun> {
    loop {
        let job = etl
            .get_job(etl_pb::GetJobRequest {
                entity: Some(entity.clone()),
            })
            .await
            .context("GetJob failed")?
            .into_inner()
            .job
            .ok_or_else(|| anyhow!("GetJob answered without a job"))?;
        if let Some(run) = &job.current_run {
            if let Some(p) = &run.progress {
                bar.set_length(p.tables_total.max(0) as u64);
                bar.set_position(p.tables_done.max(0) as u64);
                bar.set_message(p.current_table.clone());
            }
        } else if let Some(run) = job.last_run
            && finished(run.status)
        {
            let done = run.tables.len() as u64;
            bar.set_length(done);
            bar.set_position(done);
            bar.finish_with_message(status_name(run.status));
            return Ok(run);
        }
        if Instant::now() > deadline {
            bail!("the ETL run did not finish in time");
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn follow_migrator(
    migrator: &mut MigratorClient,
    newest: i64,
    total: u64,
    bar: &ProgressBar,
    deadline: Instant,
) -> anyhow::Result<mig_pb::SourceStatus> {
    loop {
        let source = migrator
            .get_status(mig_pb::GetStatusRequest {
                source: SOURCE_NAME.to_string(),
            })
            .await
            .context("GetStatus failed")?
            .into_inner()
            .sources
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("GetStatus does not know the source {SOURCE_NAME}"))?;
        let done = (source.total_written + source.total_failed).max(0) as u64;
        bar.set_position(done.min(total));
        bar.set_message(format!("{} failed", source.total_failed));
        if source.watermark >= newest && source.batch_in_progress == 0 {
            bar.finish_with_message(format!("{} failed: drained", source.total_failed));
            return Ok(source);
        }
        if source.state == mig_pb::SourceState::Stopped as i32 {
            bail!("the migrator stopped polling: {}", source.last_error);
        }
        if Instant::now() > deadline {
            bail!(
                "the migrator did not drain the upstream in time (watermark {} of {newest}; last error: {})",
                source.watermark,
                source.last_error
            );
        }
        tokio::time::sleep(POLL).await;
    }
}
