//! Every product RPC of both services refuses a call without a token and a
//! call with a wrong one (UNAUTHENTICATED), before any handler runs.

use avni_proto::etl::v1 as etl;
use avni_proto::migrator::v1 as migrator;
use integration_tests::services::{TestEtl, TestMigrator};
use tonic::Code;

fn assert_refused<T: std::fmt::Debug>(rpc: &str, result: Result<T, tonic::Status>) {
    match result {
        Ok(v) => panic!("{rpc} answered without a valid token: {v:?}"),
        Err(status) => assert_eq!(status.code(), Code::Unauthenticated, "{rpc}: {status:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_etl_rpc_refuses_missing_and_wrong_tokens() {
    let service = TestEtl::start(|_| {}).await;
    let entity = Some(etl::Entity {
        uuid: "6a1d1a4e-3d5b-4f6e-9d2a-0b1c2d3e4f50".into(),
        r#type: etl::EntityType::Organisation as i32,
    });
    for token in [None, Some("wrong-token"), Some("")] {
        let mut c = service.client_with(token.filter(|t| !t.is_empty())).await;
        assert_refused(
            "EnableAnalytics",
            c.enable_analytics(etl::EnableAnalyticsRequest {
                entity: entity.clone(),
            })
            .await,
        );
        assert_refused(
            "DisableAnalytics",
            c.disable_analytics(etl::DisableAnalyticsRequest {
                entity: entity.clone(),
            })
            .await,
        );
        assert_refused(
            "RunNow",
            c.run_now(etl::RunNowRequest {
                entity: entity.clone(),
            })
            .await,
        );
        assert_refused(
            "RecreateSchema",
            c.recreate_schema(etl::RecreateSchemaRequest {
                entity: entity.clone(),
                skip_rebuild: true,
            })
            .await,
        );
        assert_refused(
            "ValidateNames",
            c.validate_names(etl::ValidateNamesRequest { target: None })
                .await,
        );
        assert_refused(
            "GetJob",
            c.get_job(etl::GetJobRequest {
                entity: entity.clone(),
            })
            .await,
        );
        assert_refused(
            "BatchGetJobs",
            c.batch_get_jobs(etl::BatchGetJobsRequest::default()).await,
        );
        assert_refused(
            "ListJobRuns",
            c.list_job_runs(etl::ListJobRunsRequest::default()).await,
        );
        assert_refused(
            "WatchJobRun",
            c.watch_job_run(etl::WatchJobRunRequest {
                target: Some(etl::watch_job_run_request::Target::RunId(1)),
            })
            .await,
        );
    }
    // Nothing was done on the refused calls' behalf.
    let jobs: i64 = service
        .db
        .client()
        .await
        .query_one("SELECT count(*) FROM etl_service.etl_job", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(jobs, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_migrator_rpc_refuses_missing_and_wrong_tokens() {
    let service = TestMigrator::start(|_| {}).await;
    for token in [None, Some("wrong-token")] {
        let mut c = service.client_with(token).await;
        assert_refused(
            "GetStatus",
            c.get_status(migrator::GetStatusRequest::default()).await,
        );
        assert_refused(
            "RunNow",
            c.run_now(migrator::RunNowRequest::default()).await,
        );
        assert_refused(
            "ListAudits",
            c.list_audits(migrator::ListAuditsRequest::default()).await,
        );
        assert_refused(
            "ListErrors",
            c.list_errors(migrator::ListErrorsRequest::default()).await,
        );
        assert_refused(
            "ReprocessErrors",
            c.reprocess_errors(migrator::ReprocessErrorsRequest::default())
                .await,
        );
        assert_refused(
            "ListUnmappedFields",
            c.list_unmapped_fields(migrator::ListUnmappedFieldsRequest::default())
                .await,
        );
        assert_refused(
            "RefillColumns",
            c.refill_columns(migrator::RefillColumnsRequest::default())
                .await,
        );
    }
}
