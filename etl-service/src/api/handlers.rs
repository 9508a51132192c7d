//! The gRPC handlers of `avni.etl.v1.EtlService`: thin, they check input,
//! call the domain ([`Control`]) and map rows and errors to the contract.

use crate::api::request;
use crate::control::Control;
use crate::control::jobs::{self, RunEventRow, RunRow, RunStatus, Trigger};
use crate::control::service::JobView;
use crate::engine::entity::{EntityKind, EntityRef};
use crate::engine::schema::layout::TableKind;
use crate::engine::schema::name_check;
use crate::error::Error;
use avni_proto::etl::v1 as pb;
use avni_proto::etl::v1::etl_service_server::EtlService;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use service_kit::fresh_reads::FreshReads;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// Shared state of the handlers.
#[derive(Clone)]
pub struct EtlApi {
    control: Control,
    /// GetJob's reads: callers polling the same job at once share one read
    /// that starts after they all arrived (see [`FreshReads`]), and the
    /// message built from it.
    jobs: FreshReads<EntityRef, Result<Arc<pb::Job>, Status>>,
}

impl EtlApi {
    pub fn new(control: Control) -> Self {
        let reader = control.clone();
        let jobs = FreshReads::new(
            "get_job",
            Arc::new(move |entity| {
                let control = reader.clone();
                async move {
                    let view = control.job(entity).await.map_err(Status::from)?;
                    Ok(Arc::new(job_message(&view)))
                }
                .boxed()
            }),
        );
        Self { control, jobs }
    }
}

fn table_type(kind: TableKind) -> pb::TableType {
    match kind {
        TableKind::Subject => pb::TableType::Subject,
        TableKind::ProgramEnrolment => pb::TableType::ProgramEnrolment,
        TableKind::ProgramExit => pb::TableType::ProgramExit,
        TableKind::ProgramEncounter => pb::TableType::ProgramEncounter,
        TableKind::ProgramEncounterCancel => pb::TableType::ProgramEncounterCancel,
        TableKind::Encounter => pb::TableType::Encounter,
        TableKind::EncounterCancel => pb::TableType::EncounterCancel,
        TableKind::RepeatableQuestionGroup => pb::TableType::RepeatableQuestionGroup,
        TableKind::Address => pb::TableType::Address,
    }
}

fn name_report_message(
    report: &name_check::NameReport,
    schema_name: String,
) -> pb::ValidateNamesResponse {
    use name_check::{ProblemKind as K, Severity as S};
    pb::ValidateNamesResponse {
        tables: report
            .tables
            .iter()
            .map(|t| pb::PlannedTable {
                name: t.name.clone(),
                r#type: table_type(t.identity.kind) as i32,
                full_name: t.full_name.clone(),
                shortened: t.shortened,
                subject_type_name: t.subject_type_name.clone().unwrap_or_default(),
                program_name: t.program_name.clone().unwrap_or_default(),
                encounter_type_name: t.encounter_type_name.clone().unwrap_or_default(),
                reference_name: t.reference_name.clone(),
            })
            .collect(),
        problems: report
            .problems
            .iter()
            .map(|p| pb::NameProblem {
                severity: match p.severity {
                    S::Error => pb::Severity::Error,
                    S::Warning => pb::Severity::Warning,
                    S::Notice => pb::Severity::Notice,
                } as i32,
                kind: match p.kind {
                    K::Collision => pb::ProblemKind::Collision,
                    K::Shortened => pb::ProblemKind::Shortened,
                    K::EmptyAfterNormalisation => pb::ProblemKind::EmptyAfterNormalisation,
                    K::ReferenceCollision => pb::ProblemKind::ReferenceCollision,
                    K::ReferenceNonAscii => pb::ProblemKind::ReferenceNonAscii,
                    K::MissingName => pb::ProblemKind::MissingName,
                    K::UnknownReference => pb::ProblemKind::UnknownReference,
                } as i32,
                message: p.message.clone(),
                table_name: p.table_name.clone(),
                names: p.names.clone(),
            })
            .collect(),
        valid: report.valid(),
        schema_name,
    }
}

fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

fn entity_message(entity: EntityRef) -> pb::Entity {
    pb::Entity {
        uuid: entity.uuid.to_string(),
        r#type: match entity.kind {
            EntityKind::Organisation => pb::EntityType::Organisation,
            EntityKind::OrganisationGroup => pb::EntityType::OrganisationGroup,
        } as i32,
    }
}

fn run_message(run: &RunRow) -> pb::JobRun {
    let status = match run.status() {
        RunStatus::Queued => pb::RunStatus::Queued,
        RunStatus::Running if run.started_at.is_none() => pb::RunStatus::Queued,
        RunStatus::Running => pb::RunStatus::Running,
        RunStatus::Succeeded => pb::RunStatus::Succeeded,
        RunStatus::Failed => pb::RunStatus::Failed,
        RunStatus::Cancelled => pb::RunStatus::Cancelled,
    };
    let trigger = match Trigger::parse(&run.trigger) {
        Some(Trigger::Schedule) => pb::RunTrigger::Schedule,
        Some(Trigger::RunNow) => pb::RunTrigger::RunNow,
        Some(Trigger::Recreate) => pb::RunTrigger::Recreate,
        Some(Trigger::CommandLine) => pb::RunTrigger::CommandLine,
        None => pb::RunTrigger::Unspecified,
    };
    pb::JobRun {
        id: run.id,
        entity: run.entity().ok().map(entity_message),
        trigger: trigger as i32,
        status: status as i32,
        queued_time: Some(timestamp(run.queued_at)),
        start_time: run.started_at.map(timestamp),
        end_time: run.finished_at.map(timestamp),
        error: run.error.clone().unwrap_or_default(),
        error_detail: run.error_detail.clone().unwrap_or_default(),
        progress: Some(pb::RunProgress {
            tables_total: run.tables_total,
            tables_done: run.tables_done,
            current_table: run.current_table.clone().unwrap_or_default(),
            rows_upserted: run.rows_upserted,
            rows_deleted: run.rows_deleted,
        }),
        tables: run
            .tables()
            .into_iter()
            .map(|t| pb::TableResult {
                change: match t.change.as_str() {
                    "created" => pb::TableChange::Created,
                    "altered" => pb::TableChange::Altered,
                    "unchanged" => pb::TableChange::Unchanged,
                    _ => pb::TableChange::Unspecified,
                } as i32,
                table_name: t.table_name,
                rows_upserted: t.rows_upserted,
                rows_deleted: t.rows_deleted,
                duration: Some(prost_types::Duration {
                    seconds: t.duration_ms / 1000,
                    nanos: ((t.duration_ms % 1000) * 1_000_000) as i32,
                }),
            })
            .collect(),
        worker: run.worker.clone().unwrap_or_default(),
    }
}

fn job_message(view: &JobView) -> pb::Job {
    pb::Job {
        entity: Some(entity_message(view.entity)),
        entity_name: view.entity_name.clone(),
        schema_name: view.schema_name.clone(),
        enabled: view.job.is_some(),
        next_run_time: view.job.as_ref().map(|j| timestamp(j.next_run_at)),
        interval: Some(prost_types::Duration {
            seconds: view.interval_seconds,
            nanos: 0,
        }),
        last_run: view.last_run.as_ref().map(run_message),
        current_run: view.current_run.as_ref().map(run_message),
        enabled_time: view.job.as_ref().map(|j| timestamp(j.enabled_at)),
    }
}

fn event_message(event: &RunEventRow, run: &RunRow) -> pb::WatchJobRunResponse {
    let kind = match event.kind.as_str() {
        "run_queued" => pb::RunEventKind::RunQueued,
        "run_started" => pb::RunEventKind::RunStarted,
        "schema_applied" => pb::RunEventKind::SchemaApplied,
        "table_started" => pb::RunEventKind::TableStarted,
        "table_finished" => pb::RunEventKind::TableFinished,
        "run_finished" => pb::RunEventKind::RunFinished,
        _ => pb::RunEventKind::Unspecified,
    };
    let run_message = run_message(run);
    pb::WatchJobRunResponse {
        run_id: event.run_id,
        kind: kind as i32,
        event_time: Some(timestamp(event.event_time)),
        table_name: event.table_name.clone().unwrap_or_default(),
        rows_upserted: event.rows_upserted,
        progress: run_message.progress.clone(),
        run: Some(run_message),
        message: event.message.clone().unwrap_or_default(),
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchJobRunResponse, Status>> + Send>>;

/// How often a watcher looks for new events.
const WATCH_POLL: Duration = Duration::from_millis(200);

/// Finds the run to watch: by id, or the entity's active run, waiting (for
/// at most a minute) for its next run when none is active.
async fn resolve_watched_run(
    control: &Control,
    target: &pb::watch_job_run_request::Target,
) -> Result<i64, Error> {
    match target {
        pb::watch_job_run_request::Target::RunId(id) => {
            let id = request::run_id(*id)?;
            let mut conn = control.pool().get().await?;
            jobs::find_run(&mut conn, id)
                .await?
                .map(|r| r.id)
                .ok_or_else(|| Error::NotFound(format!("run_id {id}: no such run")))
        }
        pb::watch_job_run_request::Target::Entity(entity) => {
            let entity = request::entity("entity", Some(entity))?;
            let conn = control.pool().get().await?;
            crate::control::service::find_target(&conn, entity).await?;
            for _ in 0..300 {
                if let Some(run) = jobs::active_run(&conn, entity).await? {
                    return Ok(run.id);
                }
                tokio::time::sleep(WATCH_POLL).await;
            }
            Err(Error::FailedPrecondition(format!(
                "{entity} has no run in progress and none started within a minute; call RunNow first"
            )))
        }
    }
}

/// Streams a run's events until its `run_finished` event (or the caller
/// goes away).
fn watch(control: Control, run_id: i64) -> WatchStream {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        let mut seen = 0;
        loop {
            let step = async {
                let mut conn = control.pool().get().await?;
                let events = jobs::events_after(&mut conn, run_id, seen).await?;
                let run = if events.is_empty() {
                    None
                } else {
                    jobs::find_run(&mut conn, run_id).await?
                };
                Ok::<_, Error>((events, run))
            }
            .await;
            match step {
                Ok((events, Some(run))) => {
                    for event in &events {
                        seen = event.seq;
                        let finished = event.kind == "run_finished";
                        if tx.send(Ok(event_message(event, &run))).await.is_err() {
                            return;
                        }
                        if finished {
                            return;
                        }
                    }
                }
                Ok((_, None)) => {}
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
            }
            tokio::select! {
                () = tx.closed() => return,
                () = tokio::time::sleep(WATCH_POLL) => {}
            }
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

#[tonic::async_trait]
impl EtlService for EtlApi {
    async fn enable_analytics(
        &self,
        request: Request<pb::EnableAnalyticsRequest>,
    ) -> Result<Response<pb::EnableAnalyticsResponse>, Status> {
        let entity = request::entity("entity", request.get_ref().entity.as_ref())?;
        let (view, created) = self.control.enable(entity).await?;
        Ok(Response::new(pb::EnableAnalyticsResponse {
            job: Some(job_message(&view)),
            created,
        }))
    }

    async fn disable_analytics(
        &self,
        request: Request<pb::DisableAnalyticsRequest>,
    ) -> Result<Response<pb::DisableAnalyticsResponse>, Status> {
        let entity = request::entity("entity", request.get_ref().entity.as_ref())?;
        let removed = self.control.disable(entity).await?;
        Ok(Response::new(pb::DisableAnalyticsResponse { removed }))
    }

    async fn run_now(
        &self,
        request: Request<pb::RunNowRequest>,
    ) -> Result<Response<pb::RunNowResponse>, Status> {
        let entity = request::entity("entity", request.get_ref().entity.as_ref())?;
        let (run, already_running) = self.control.run_now(entity).await?;
        Ok(Response::new(pb::RunNowResponse {
            run: Some(run_message(&run)),
            already_running,
        }))
    }

    async fn recreate_schema(
        &self,
        request: Request<pb::RecreateSchemaRequest>,
    ) -> Result<Response<pb::RecreateSchemaResponse>, Status> {
        let request = request.into_inner();
        let entity = request::entity("entity", request.entity.as_ref())?;
        // The teardown must finish even if the caller goes away: run it in a
        // task of its own rather than in this cancellable handler.
        let control = self.control.clone();
        let recreated =
            tokio::spawn(async move { control.recreate(entity, request.skip_rebuild).await })
                .await
                .map_err(|e| Status::internal(format!("RecreateSchema task failed: {e}")))??;
        Ok(Response::new(pb::RecreateSchemaResponse {
            schema_name: recreated.schema_name,
            tables_dropped: i32::try_from(recreated.tables_dropped).unwrap_or(i32::MAX),
            rebuild_run: recreated.rebuild.as_ref().map(run_message),
        }))
    }

    async fn validate_names(
        &self,
        request: Request<pb::ValidateNamesRequest>,
    ) -> Result<Response<pb::ValidateNamesResponse>, Status> {
        let target = request.into_inner().target.ok_or_else(|| {
            Error::InvalidArgument(
                "set entity (current metadata) or proposed (a set of names)".into(),
            )
        })?;
        let (report, schema_name) = match target {
            pb::validate_names_request::Target::Entity(entity) => {
                let entity = request::entity("entity", Some(&entity))?;
                let (target, plan) = self.control.plan(entity).await?;
                let problems = name_check::check_plan(&plan);
                (
                    name_check::NameReport {
                        tables: plan.tables,
                        problems,
                    },
                    target.schema_name,
                )
            }
            pb::validate_names_request::Target::Proposed(proposed) => (
                name_check::check_proposed(&request::proposed_schema(proposed)?),
                String::new(),
            ),
        };
        Ok(Response::new(name_report_message(&report, schema_name)))
    }

    async fn get_job(
        &self,
        request: Request<pb::GetJobRequest>,
    ) -> Result<Response<pb::GetJobResponse>, Status> {
        let entity = request::entity("entity", request.get_ref().entity.as_ref())?;
        let job = self
            .jobs
            .get(entity)
            .await
            .map_err(|e| Status::internal(e.to_string()))??;
        Ok(Response::new(pb::GetJobResponse {
            job: Some(pb::Job::clone(&job)),
        }))
    }

    async fn batch_get_jobs(
        &self,
        request: Request<pb::BatchGetJobsRequest>,
    ) -> Result<Response<pb::BatchGetJobsResponse>, Status> {
        let entities = request::entities(&request.get_ref().entities)?;
        let views = self.control.jobs(&entities).await?;
        Ok(Response::new(pb::BatchGetJobsResponse {
            jobs: views.iter().map(job_message).collect(),
        }))
    }

    async fn list_job_runs(
        &self,
        request: Request<pb::ListJobRunsRequest>,
    ) -> Result<Response<pb::ListJobRunsResponse>, Status> {
        let request = request.get_ref();
        let entity = match &request.entity {
            Some(e) => Some(request::entity("entity", Some(e))?),
            None => None,
        };
        let (size, before) = request::page(request.page_size, &request.page_token)?;
        // One extra row says whether there is a next page.
        let mut runs = self.control.history(entity, before, size + 1).await?;
        let next_page_token = if runs.len() as i64 > size {
            runs.truncate(size as usize);
            runs.last()
                .map(|r| format!("before-{}", r.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListJobRunsResponse {
            runs: runs.iter().map(run_message).collect(),
            next_page_token,
        }))
    }

    type WatchJobRunStream = WatchStream;

    async fn watch_job_run(
        &self,
        request: Request<pb::WatchJobRunRequest>,
    ) -> Result<Response<Self::WatchJobRunStream>, Status> {
        let target = request.get_ref().target.as_ref().ok_or_else(|| {
            Error::InvalidArgument("set run_id or entity to say which run to watch".into())
        })?;
        let run_id = resolve_watched_run(&self.control, target).await?;
        Ok(Response::new(watch(self.control.clone(), run_id)))
    }
}
