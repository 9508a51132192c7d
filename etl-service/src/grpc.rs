//! The gRPC handlers of `avni.etl.v1.EtlService`: thin, they check input,
//! call the domain and map its errors to status codes.

use crate::entity::{EntityKind, EntityRef};
use crate::error::Error;
use avni_proto::etl::v1 as pb;
use avni_proto::etl::v1::etl_service_server::EtlService;
use service_kit::db::Pool;
use std::pin::Pin;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// Shared state of the handlers.
#[derive(Clone)]
pub struct EtlApi {
    #[allow(dead_code)]
    pool: Pool,
}

impl EtlApi {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

/// Checks an `Entity` from a request: present, a canonical uuid, a known type.
pub fn parse_entity(entity: Option<&pb::Entity>) -> Result<EntityRef, Error> {
    let entity = entity.ok_or_else(|| {
        Error::InvalidArgument(
            "entity is required: {\"uuid\": \"<uuid>\", \"type\": \"ENTITY_TYPE_ORGANISATION\"}"
                .into(),
        )
    })?;
    let uuid = entity.uuid.trim();
    if uuid.is_empty() {
        return Err(Error::InvalidArgument("entity.uuid is required".into()));
    }
    let uuid = uuid::Uuid::try_parse(uuid).map_err(|_| {
        Error::InvalidArgument(format!(
            "entity.uuid {:?} is not a uuid (expected 8-4-4-4-12 hexadecimal digits)",
            shorten(uuid, 80)
        ))
    })?;
    let kind = match pb::EntityType::try_from(entity.r#type) {
        Ok(pb::EntityType::Organisation) => EntityKind::Organisation,
        Ok(pb::EntityType::OrganisationGroup) => EntityKind::OrganisationGroup,
        Ok(pb::EntityType::Unspecified) => {
            return Err(Error::InvalidArgument(
                "entity.type is required: ENTITY_TYPE_ORGANISATION or ENTITY_TYPE_ORGANISATION_GROUP".into(),
            ));
        }
        Err(_) => {
            return Err(Error::InvalidArgument(format!(
                "entity.type {} is not a known EntityType",
                entity.r#type
            )));
        }
    };
    Ok(EntityRef { uuid, kind })
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}

fn not_yet(rpc: &str, what: &str) -> Status {
    Error::Unimplemented(format!("{rpc} is not implemented yet: {what}")).into()
}

const SCHEDULER: &str = "it arrives with the ETL control service (jobs, runs and scheduler)";

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchJobRunResponse, Status>> + Send>>;

#[tonic::async_trait]
impl EtlService for EtlApi {
    async fn enable_analytics(
        &self,
        request: Request<pb::EnableAnalyticsRequest>,
    ) -> Result<Response<pb::EnableAnalyticsResponse>, Status> {
        parse_entity(request.get_ref().entity.as_ref())?;
        Err(not_yet("EnableAnalytics", SCHEDULER))
    }

    async fn disable_analytics(
        &self,
        request: Request<pb::DisableAnalyticsRequest>,
    ) -> Result<Response<pb::DisableAnalyticsResponse>, Status> {
        parse_entity(request.get_ref().entity.as_ref())?;
        Err(not_yet("DisableAnalytics", SCHEDULER))
    }

    async fn run_now(
        &self,
        request: Request<pb::RunNowRequest>,
    ) -> Result<Response<pb::RunNowResponse>, Status> {
        parse_entity(request.get_ref().entity.as_ref())?;
        Err(not_yet("RunNow", SCHEDULER))
    }

    async fn recreate_schema(
        &self,
        request: Request<pb::RecreateSchemaRequest>,
    ) -> Result<Response<pb::RecreateSchemaResponse>, Status> {
        parse_entity(request.get_ref().entity.as_ref())?;
        Err(not_yet("RecreateSchema", SCHEDULER))
    }

    async fn validate_names(
        &self,
        _request: Request<pb::ValidateNamesRequest>,
    ) -> Result<Response<pb::ValidateNamesResponse>, Status> {
        Err(not_yet(
            "ValidateNames",
            "it arrives with the ETL engine's naming rules",
        ))
    }

    async fn get_job(
        &self,
        request: Request<pb::GetJobRequest>,
    ) -> Result<Response<pb::GetJobResponse>, Status> {
        parse_entity(request.get_ref().entity.as_ref())?;
        Err(not_yet("GetJob", SCHEDULER))
    }

    async fn batch_get_jobs(
        &self,
        request: Request<pb::BatchGetJobsRequest>,
    ) -> Result<Response<pb::BatchGetJobsResponse>, Status> {
        for entity in &request.get_ref().entities {
            parse_entity(Some(entity))?;
        }
        Err(not_yet("BatchGetJobs", SCHEDULER))
    }

    async fn list_job_runs(
        &self,
        _request: Request<pb::ListJobRunsRequest>,
    ) -> Result<Response<pb::ListJobRunsResponse>, Status> {
        Err(not_yet("ListJobRuns", SCHEDULER))
    }

    type WatchJobRunStream = WatchStream;

    async fn watch_job_run(
        &self,
        _request: Request<pb::WatchJobRunRequest>,
    ) -> Result<Response<Self::WatchJobRunStream>, Status> {
        Err(not_yet("WatchJobRun", SCHEDULER))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_validation() {
        let ok = pb::Entity {
            uuid: "6a1d1a4e-3d5b-4f6e-9d2a-0b1c2d3e4f50".into(),
            r#type: pb::EntityType::Organisation as i32,
        };
        assert_eq!(
            parse_entity(Some(&ok)).expect("valid").kind,
            EntityKind::Organisation
        );
        let cases = [
            (None, "entity is required"),
            (
                Some(pb::Entity {
                    uuid: "".into(),
                    r#type: 1,
                }),
                "entity.uuid is required",
            ),
            (
                Some(pb::Entity {
                    uuid: "not-a-uuid".into(),
                    r#type: 1,
                }),
                "is not a uuid",
            ),
            (
                Some(pb::Entity {
                    uuid: ok.uuid.clone(),
                    r#type: 0,
                }),
                "entity.type is required",
            ),
            (
                Some(pb::Entity {
                    uuid: ok.uuid.clone(),
                    r#type: 42,
                }),
                "not a known EntityType",
            ),
        ];
        for (entity, expected) in cases {
            let err = parse_entity(entity.as_ref()).expect_err("must be rejected");
            assert!(matches!(err, Error::InvalidArgument(_)));
            assert!(err.to_string().contains(expected), "{err}");
        }
    }
}
