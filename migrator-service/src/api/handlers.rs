//! The gRPC handlers of `avni.migrator.v1.FormsMigrator`: thin, they check
//! input, call the domain and map its errors to status codes.

use crate::api::request;
use crate::error::Error;
use crate::poll::poller::{Migrator, Source, State};
use crate::poll::refill::refill;
use crate::poll::reprocess::{ReprocessFilter, reprocess};
use crate::repository::audits::{self, AuditRow, ErrorRow, Totals};
use crate::repository::unmapped::{self, UnmappedFilter, UnmappedRow};
use avni_proto::migrator::v1 as pb;
use avni_proto::migrator::v1::forms_migrator_server::FormsMigrator;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use service_kit::db::Pool;
use service_kit::fresh_reads::FreshReads;
use std::sync::Arc;
use std::time::SystemTime;
use tonic::{Request, Response, Status};

/// Shared state of the handlers.
#[derive(Clone)]
pub struct MigratorApi {
    migrator: Arc<Migrator>,
    /// The handlers' own pool, apart from the batch jobs' (the migrator's).
    pool: Pool,
    /// GetStatus's repository reads by source: callers asking at once share
    /// one read that starts after they all arrived (see [`FreshReads`]).
    /// `None` while PostgreSQL cannot answer.
    totals: FreshReads<String, Option<Totals>>,
}

impl MigratorApi {
    pub fn new(migrator: Arc<Migrator>, pool: Pool) -> Self {
        let reader = pool.clone();
        let totals = FreshReads::new(
            "get_status",
            Arc::new(move |source: String| {
                let pool = reader.clone();
                async move {
                    // Best effort: while PostgreSQL is down the live state
                    // (and its last error) is what an operator needs.
                    let conn = pool.get().await.ok()?;
                    audits::totals(&conn, &source).await.ok()
                }
                .boxed()
            }),
        );
        Self {
            migrator,
            pool,
            totals,
        }
    }

    fn configured(&self) -> Vec<&str> {
        self.migrator.sources().iter().map(|s| s.name()).collect()
    }

    /// The named sources, or all of them for an empty name.
    fn select(&self, name: &str) -> Result<Vec<Arc<Source>>, Error> {
        match request::source(name, &self.configured())? {
            None => Ok(self.migrator.sources().to_vec()),
            Some(name) => Ok(self.migrator.source(name).into_iter().cloned().collect()),
        }
    }

    /// `Some(name)` for a configured source, `None` for "every source".
    fn source_filter<'a>(&self, name: &'a str) -> Result<Option<&'a str>, Error> {
        request::source(name, &self.configured())
    }
}

/// The token of the page after `rows` (read with one extra row).
fn next_token<T>(rows: &mut Vec<T>, limit: i64, id: impl Fn(&T) -> i64) -> String {
    if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| id(r).to_string()).unwrap_or_default()
    } else {
        String::new()
    }
}

fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

fn system_timestamp(t: SystemTime) -> prost_types::Timestamp {
    timestamp(DateTime::<Utc>::from(t))
}

fn millis_timestamp(ms: i64) -> Option<prost_types::Timestamp> {
    DateTime::<Utc>::from_timestamp_millis(ms).map(timestamp)
}

fn audit(row: AuditRow) -> pb::MigrationAudit {
    pb::MigrationAudit {
        id: row.id,
        source: row.source,
        last_polled_timestamp: row.last_polled_timestamp,
        total_no_of_form_entries: row.total_no_of_form_entries,
        successfully_processed_form_entries: row.successfully_processed_form_entries,
        created_time: Some(timestamp(row.created_timestamp)),
        duplicate_form_entries: row.duplicate_form_entries,
        failed_form_entries: row.failed_form_entries,
    }
}

fn error_audit(row: ErrorRow) -> pb::ErrorAudit {
    pb::ErrorAudit {
        id: row.id,
        source: row.source,
        instance_id: row.instance_id.unwrap_or_default(),
        form_name: row.form_name.unwrap_or_default(),
        failure_reason: row.failure_reason,
        detailed_reason: row.detailed_reason,
        created_time: Some(timestamp(row.created_timestamp)),
        resolved_time: row.resolved_at.map(timestamp),
        raw_payload: row.raw_payload.unwrap_or_default(),
        server_version: row.server_version.unwrap_or_default(),
    }
}

fn unmapped_field(row: UnmappedRow) -> pb::UnmappedField {
    pb::UnmappedField {
        source: row.source,
        form_name: row.form_name,
        sub_form_name: row.sub_form_name,
        field_name: row.field_name,
        table_name: row.table_name,
        column_name: row.column_name,
        submissions: row.submissions,
        first_seen: Some(timestamp(row.first_seen)),
        last_seen: Some(timestamp(row.last_seen)),
        example_instance_id: row.example_instance_id,
        resolved_time: row.resolved_at.map(timestamp),
    }
}

fn state(s: State) -> pb::SourceState {
    match s {
        State::Idle => pb::SourceState::Idle,
        State::Polling => pb::SourceState::Polling,
        State::BackingOff => pb::SourceState::BackingOff,
        State::Stopped => pb::SourceState::Stopped,
    }
}

impl MigratorApi {
    async fn status_of(&self, source: &Source) -> pb::SourceStatus {
        let live = source.live();
        let totals = self
            .totals
            .get(source.name().to_string())
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        let watermark = totals
            .last_batch
            .as_ref()
            .map(|b| b.last_polled_timestamp)
            .unwrap_or(live.watermark);
        let (last_error, last_error_time) = match live.last_error {
            Some((message, at)) => (message, Some(system_timestamp(at))),
            None => (String::new(), None),
        };
        pb::SourceStatus {
            name: source.name().to_string(),
            url: source.url(),
            state: state(live.state).into(),
            watermark,
            watermark_time: if watermark > 0 {
                millis_timestamp(watermark)
            } else {
                None
            },
            last_batch: totals.last_batch.map(audit),
            total_written: totals.written,
            total_failed: totals.failed,
            unresolved_errors: totals.unresolved,
            last_error,
            last_error_time,
            last_poll_time: live.last_poll.map(system_timestamp),
            next_poll_time: live.next_poll.map(system_timestamp),
            lag_millis: (live.newest_seen - watermark).max(0),
            batch_in_progress: i32::try_from(live.batch_in_progress).unwrap_or(i32::MAX),
            unmapped_fields: totals.unmapped_fields,
        }
    }
}

#[tonic::async_trait]
impl FormsMigrator for MigratorApi {
    async fn get_status(
        &self,
        request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        let sources = self.select(&request.get_ref().source)?;
        let mut out = Vec::with_capacity(sources.len());
        for source in sources {
            out.push(self.status_of(&source).await);
        }
        Ok(Response::new(pb::GetStatusResponse { sources: out }))
    }

    async fn run_now(
        &self,
        request: Request<pb::RunNowRequest>,
    ) -> Result<Response<pb::RunNowResponse>, Status> {
        let sources = self.select(&request.get_ref().source)?;
        for source in &sources {
            tracing::info!(source = source.name(), "RunNow");
            source.run_now();
        }
        Ok(Response::new(pb::RunNowResponse {
            sources: sources.iter().map(|s| s.name().to_string()).collect(),
        }))
    }

    async fn list_audits(
        &self,
        request: Request<pb::ListAuditsRequest>,
    ) -> Result<Response<pb::ListAuditsResponse>, Status> {
        let r = request.into_inner();
        let source = self.source_filter(&r.source)?;
        let page = request::page(r.page_size, &r.page_token)?;
        let conn = self.pool.get().await.map_err(Error::from)?;
        let mut rows = audits::list_audits(&conn, source, page).await?;
        let next_page_token = next_token(&mut rows, page.limit, |r| r.id);
        Ok(Response::new(pb::ListAuditsResponse {
            audits: rows.into_iter().map(audit).collect(),
            next_page_token,
        }))
    }

    async fn list_errors(
        &self,
        request: Request<pb::ListErrorsRequest>,
    ) -> Result<Response<pb::ListErrorsResponse>, Status> {
        let r = request.into_inner();
        let source = self.source_filter(&r.source)?;
        let page = request::page(r.page_size, &r.page_token)?;
        let form_name = request::name_filter("form_name", &r.form_name)?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let mut rows = audits::list_errors(
            &mut conn,
            source,
            form_name,
            r.include_resolved,
            r.include_payload,
            page,
        )
        .await?;
        let next_page_token = next_token(&mut rows, page.limit, |r| r.id);
        Ok(Response::new(pb::ListErrorsResponse {
            errors: rows.into_iter().map(error_audit).collect(),
            next_page_token,
        }))
    }

    async fn reprocess_errors(
        &self,
        request: Request<pb::ReprocessErrorsRequest>,
    ) -> Result<Response<pb::ReprocessErrorsResponse>, Status> {
        let r = request.into_inner();
        let source = self.source_filter(&r.source)?.map(str::to_string);
        let form_name = request::name_filter("form_name", &r.form_name)?.map(str::to_string);
        let filter = ReprocessFilter {
            source,
            form_name,
            ids: request::error_ids(r.error_ids)?,
            strict_sources: self
                .migrator
                .sources()
                .iter()
                .filter(|s| s.settings.strict)
                .map(|s| s.name().to_string())
                .collect(),
        };
        // In a task of its own: a client that goes away must not cancel
        // the work half done.
        let migrator = self.migrator.clone();
        let pool = self.pool.clone();
        let report =
            tokio::spawn(async move { reprocess(&pool, &migrator.catalog, &filter).await })
                .await
                .map_err(|e| Status::internal(format!("reprocessing failed: {e}")))??;
        let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        Ok(Response::new(pb::ReprocessErrorsResponse {
            attempted: count(report.attempted),
            resolved: count(report.resolved_ids.len()),
            still_failing: count(report.still_failing),
            resolved_ids: report.resolved_ids,
        }))
    }

    async fn list_unmapped_fields(
        &self,
        request: Request<pb::ListUnmappedFieldsRequest>,
    ) -> Result<Response<pb::ListUnmappedFieldsResponse>, Status> {
        let r = request.into_inner();
        let filter = self.unmapped_filter(&r.source, &r.form_name, r.include_resolved)?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let rows = unmapped::list(&mut conn, &filter).await?;
        Ok(Response::new(pb::ListUnmappedFieldsResponse {
            fields: rows.into_iter().map(unmapped_field).collect(),
        }))
    }

    async fn refill_columns(
        &self,
        request: Request<pb::RefillColumnsRequest>,
    ) -> Result<Response<pb::RefillColumnsResponse>, Status> {
        let r = request.into_inner();
        let filter = self.unmapped_filter(&r.source, &r.form_name, false)?;
        // In a task of its own, like ReprocessErrors: a client that goes
        // away must not cancel the work half done.
        let migrator = self.migrator.clone();
        let pool = self.pool.clone();
        let report = tokio::spawn(async move {
            let mut conn = pool.get().await?;
            let catalog = migrator.catalog.refresh(&mut conn).await?;
            refill(&mut conn, &catalog, &filter).await
        })
        .await
        .map_err(|e| Status::internal(format!("refilling failed: {e}")))??;
        Ok(Response::new(pb::RefillColumnsResponse {
            resolved: report.resolved.into_iter().map(unmapped_field).collect(),
            rows_updated: report.rows_updated,
            values_failed: report.values_failed,
            still_unmapped: report.still_unmapped,
        }))
    }
}

impl MigratorApi {
    /// The unmapped-field filter of a request's `source` and `form_name`.
    fn unmapped_filter(
        &self,
        source: &str,
        form_name: &str,
        include_resolved: bool,
    ) -> Result<UnmappedFilter, Error> {
        Ok(UnmappedFilter {
            source: self.source_filter(source)?.map(str::to_string),
            form_name: request::name_filter("form_name", form_name)?.map(str::to_string),
            include_resolved,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_token_is_the_last_id_when_more_rows_follow() {
        let mut rows = vec![9, 8, 7];
        assert_eq!(next_token(&mut rows, 2, |r| *r), "8");
        assert_eq!(rows, vec![9, 8]);
        let mut rows = vec![9, 8];
        assert_eq!(next_token(&mut rows, 2, |r| *r), "");
    }
}
