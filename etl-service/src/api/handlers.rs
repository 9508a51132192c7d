//! The gRPC handlers of `avni.etl.v1.EtlService`: thin, they check input,
//! call the domain ([`Control`]) and map rows and errors to the contract.

use super::reply::{
    batch_message, job_message, name_report_message, run_message, user_activity_message,
};
use super::watch::{WatchStream, resolve_watched_run, watch};
use crate::api::request;
use crate::control::Control;
use crate::engine::entity::EntityRef;
use crate::engine::schema::name_check;
use crate::error::Error;
use avni_proto::etl::v1 as pb;
use avni_proto::etl::v1::etl_service_server::EtlService;
use futures::FutureExt;
use service_kit::fresh_reads::FreshReads;
use std::sync::Arc;
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
        let request = request.get_ref();
        let entities = request::entities(&request.entities)?;
        let batch = if entities.is_empty() {
            let (size, after) = request::jobs_page(request.page_size, &request.page_token)?;
            self.control.enabled_jobs(after, size).await?
        } else {
            self.control.jobs(&entities).await?
        };
        Ok(Response::new(batch_message(batch)))
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

    async fn get_user_activity(
        &self,
        request: Request<pb::GetUserActivityRequest>,
    ) -> Result<Response<pb::GetUserActivityResponse>, Status> {
        let request = request.get_ref();
        let entity = request::entity("entity", request.entity.as_ref())?;
        let filter = request::activity_filter(request)?;
        let report = self.control.user_activity(entity, &filter).await?;
        Ok(Response::new(user_activity_message(report)))
    }
}
