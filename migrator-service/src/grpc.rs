//! The gRPC handlers of `avni.migrator.v1.FormsMigrator`: thin, they check
//! input, call the domain and map its errors to status codes.

use crate::error::Error;
use avni_proto::migrator::v1 as pb;
use avni_proto::migrator::v1::forms_migrator_server::FormsMigrator;
use service_kit::db::Pool;
use tonic::{Request, Response, Status};

/// Shared state of the handlers.
#[derive(Clone)]
pub struct MigratorApi {
    #[allow(dead_code)]
    pool: Pool,
}

impl MigratorApi {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

fn not_yet(rpc: &str) -> Status {
    Error::Unimplemented(format!(
        "{rpc} is not implemented yet: it arrives with the forms migrator's batch job"
    ))
    .into()
}

#[tonic::async_trait]
impl FormsMigrator for MigratorApi {
    async fn get_status(
        &self,
        _request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        Err(not_yet("GetStatus"))
    }

    async fn run_now(
        &self,
        _request: Request<pb::RunNowRequest>,
    ) -> Result<Response<pb::RunNowResponse>, Status> {
        Err(not_yet("RunNow"))
    }

    async fn list_audits(
        &self,
        _request: Request<pb::ListAuditsRequest>,
    ) -> Result<Response<pb::ListAuditsResponse>, Status> {
        Err(not_yet("ListAudits"))
    }

    async fn list_errors(
        &self,
        _request: Request<pb::ListErrorsRequest>,
    ) -> Result<Response<pb::ListErrorsResponse>, Status> {
        Err(not_yet("ListErrors"))
    }

    async fn reprocess_errors(
        &self,
        _request: Request<pb::ReprocessErrorsRequest>,
    ) -> Result<Response<pb::ReprocessErrorsResponse>, Status> {
        Err(not_yet("ReprocessErrors"))
    }
}
