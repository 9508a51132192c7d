//! What the migrator reports to Prometheus (served at `/metrics`):
//!
//! - `migrator_submissions_written_total{source,form}`
//! - `migrator_submissions_failed_total{source,form}`
//! - `migrator_batches_total{source}`
//! - `migrator_watermark_lag_ms{source}`: how far the committed watermark is
//!   behind the newest `serverVersion` seen from the source.
//! - `migrator_unmapped_field_values_total{source,form}`: values of
//!   fields with no column in written submissions (left out, recorded per
//!   field in `unmapped_field`, listed by ListUnmappedFields; the field is
//!   no label, so a feed of made-up names cannot grow the series).
//! - `migrator_catalog_loads_total`: how often the repository's catalog
//!   was read (once at the first batch, then once per schema change).

use crate::poll::batch::BatchReport;

/// Counts a committed batch.
pub fn record_batch(source: &str, report: &BatchReport) {
    metrics::counter!("migrator_batches_total", "source" => source.to_string()).increment(1);
    for (form, n) in &report.written_by_form {
        metrics::counter!(
            "migrator_submissions_written_total",
            "source" => source.to_string(),
            "form" => form.clone()
        )
        .increment(*n as u64);
    }
    for ((form, _field), n) in &report.unmapped_by_field {
        metrics::counter!(
            "migrator_unmapped_field_values_total",
            "source" => source.to_string(),
            "form" => form.clone()
        )
        .increment(*n as u64);
    }
    for (form, n) in &report.failed_by_form {
        metrics::counter!(
            "migrator_submissions_failed_total",
            "source" => source.to_string(),
            "form" => form.clone()
        )
        .increment(*n as u64);
    }
}

/// Sets the watermark lag of a source.
pub fn record_lag(source: &str, newest_seen: i64, watermark: i64) {
    metrics::gauge!("migrator_watermark_lag_ms", "source" => source.to_string())
        .set((newest_seen - watermark).max(0) as f64);
}

/// Counts a read of the repository's catalog.
pub fn record_catalog_load() {
    metrics::counter!("migrator_catalog_loads_total").increment(1);
}
