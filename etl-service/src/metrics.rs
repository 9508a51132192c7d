//! What the ETL reports to Prometheus (served at `/metrics`):
//!
//! - `etl_runs_started_total`, `etl_runs_succeeded_total`,
//!   `etl_runs_failed_total` (cancelled runs count as failed, with
//!   `etl_runs_cancelled_total` beside them)
//! - `etl_run_duration_seconds` (histogram of finished runs)
//! - `etl_rows_upserted_total`, `etl_rows_deleted_total`
//! - `etl_organisations_enabled`: enabled jobs (organisations and groups)
//! - `etl_scheduler_queue_depth`: runs queued and waiting for a worker

use crate::control::jobs::{RunStatus, TableOutcome};
use std::time::Duration;

pub fn run_started() {
    metrics::counter!("etl_runs_started_total").increment(1);
}

pub fn run_finished(status: RunStatus, duration: Duration, tables: &[TableOutcome]) {
    match status {
        RunStatus::Succeeded => metrics::counter!("etl_runs_succeeded_total").increment(1),
        RunStatus::Cancelled => {
            metrics::counter!("etl_runs_cancelled_total").increment(1);
            metrics::counter!("etl_runs_failed_total").increment(1);
        }
        _ => metrics::counter!("etl_runs_failed_total").increment(1),
    }
    metrics::histogram!("etl_run_duration_seconds").record(duration.as_secs_f64());
    let (upserted, deleted) = tables.iter().fold((0i64, 0i64), |(u, d), t| {
        (u + t.rows_upserted, d + t.rows_deleted)
    });
    metrics::counter!("etl_rows_upserted_total").increment(upserted.max(0) as u64);
    metrics::counter!("etl_rows_deleted_total").increment(deleted.max(0) as u64);
}

pub fn scheduler_state(enabled: i64, queued: i64) {
    metrics::gauge!("etl_organisations_enabled").set(enabled as f64);
    metrics::gauge!("etl_scheduler_queue_depth").set(queued as f64);
}
