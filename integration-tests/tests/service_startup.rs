//! Both services start, migrate and serve on a real PostgreSQL: health,
//! bearer-token authentication, migrations applied once, `serve` refusing to
//! start while migrations are pending.

use avni_proto::etl::v1 as etl;
use avni_proto::migrator::v1 as migrator;
use integration_tests::postgres::TestDatabase;
use integration_tests::services::{TestEtl, TestMigrator, test_config};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

fn org_request() -> etl::GetJobRequest {
    etl::GetJobRequest {
        entity: Some(etl::Entity {
            uuid: "6a1d1a4e-3d5b-4f6e-9d2a-0b1c2d3e4f50".into(),
            r#type: etl::EntityType::Organisation as i32,
        }),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn etl_health_is_serving_for_server_and_product_service() {
    let etl = TestEtl::start(|_| {}).await;
    for service in ["", "avni.etl.v1.EtlService"] {
        let status = wait_for_status(&etl.service, service, ServingStatus::Serving).await;
        assert_eq!(status, ServingStatus::Serving as i32, "service {service:?}");
    }
    etl.service.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn migrator_health_is_serving_for_server_and_product_service() {
    let m = TestMigrator::start(|_| {}).await;
    for service in ["", "avni.migrator.v1.FormsMigrator"] {
        let status = wait_for_status(&m.service, service, ServingStatus::Serving).await;
        assert_eq!(status, ServingStatus::Serving as i32, "service {service:?}");
    }
    m.service.stop().await.expect("clean stop");
}

async fn wait_for_status(
    service: &integration_tests::services::RunningService,
    name: &str,
    wanted: ServingStatus,
) -> i32 {
    let mut last = -1;
    for _ in 0..50 {
        if let Ok(s) = service.health_status(name).await {
            last = s;
            if s == wanted as i32 {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    last
}

#[tokio::test(flavor = "multi_thread")]
async fn etl_product_rpcs_require_a_valid_bearer_token() {
    let etl = TestEtl::start(|_| {}).await;

    let missing = etl.client_with(None).await.get_job(org_request()).await;
    let status = missing.expect_err("no token must be refused");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        status.message().contains("missing authorization"),
        "{}",
        status.message()
    );

    let wrong = etl
        .client_with(Some("not-the-token"))
        .await
        .get_job(org_request())
        .await;
    assert_eq!(
        wrong.expect_err("wrong token must be refused").code(),
        Code::Unauthenticated
    );

    // With the right token the handler itself answers: it validates input.
    let mut client = etl.client().await;
    let bad_input = client
        .get_job(etl::GetJobRequest { entity: None })
        .await
        .expect_err("missing entity is invalid");
    assert_eq!(bad_input.code(), Code::InvalidArgument);
    assert!(bad_input.message().contains("entity is required"));
    let answered = client.get_job(org_request()).await;
    if let Err(status) = answered {
        assert_ne!(status.code(), Code::Unauthenticated, "{status:?}");
    }

    // Health stays open without a token.
    assert!(etl.service.health_status("").await.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn migrator_product_rpcs_require_a_valid_bearer_token() {
    let m = TestMigrator::start(|_| {}).await;
    let request = migrator::GetStatusRequest {
        source: String::new(),
    };

    let missing = m.client_with(None).await.get_status(request.clone()).await;
    assert_eq!(missing.expect_err("no token").code(), Code::Unauthenticated);
    let wrong = m
        .client_with(Some("nope"))
        .await
        .get_status(request.clone())
        .await;
    assert_eq!(
        wrong.expect_err("wrong token").code(),
        Code::Unauthenticated
    );
    let answered = m.client().await.get_status(request).await;
    if let Err(status) = answered {
        assert_ne!(status.code(), Code::Unauthenticated, "{status:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_reflection_can_require_the_token_too() {
    let etl = TestEtl::start(|c| c.server.auth_for_health_and_reflection = true).await;
    let err = etl
        .service
        .health_status("")
        .await
        .expect_err("health needs a token now");
    assert_eq!(err.code(), Code::Unauthenticated);
}

#[tokio::test(flavor = "multi_thread")]
async fn migrations_apply_once_then_do_nothing() {
    let db = TestDatabase::new().await;
    let first =
        service_kit::db::run_pending_migrations(&db.url, etl_service::migrations::migrations())
            .await
            .expect("first migrate");
    assert!(first.len() >= 2, "{first:?}");
    assert_eq!(
        first[..2],
        [
            "2026-12-03-000001_service_state",
            "2026-12-03-000002_avni_metadata"
        ]
    );
    let second =
        service_kit::db::run_pending_migrations(&db.url, etl_service::migrations::migrations())
            .await
            .expect("second migrate");
    assert!(second.is_empty(), "second migrate applied {second:?}");
    let pending =
        service_kit::db::pending_migrations(&db.url, etl_service::migrations::migrations())
            .await
            .expect("pending");
    assert!(pending.is_empty());

    // The tables the later work needs are there.
    let client = db.client().await;
    for table in [
        "table_metadata",
        "column_metadata",
        "index_metadata",
        "entity_sync_status",
        "etl_service.etl_job",
        "etl_service.etl_run",
        "etl_service.watermark",
    ] {
        let row = client
            .query_one("SELECT to_regclass($1)::text", &[&table])
            .await
            .expect("query");
        assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some(table));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_refuses_to_start_with_pending_migrations_and_names_them() {
    let db = TestDatabase::new().await;
    let config: etl_service::Config = test_config(&db.url);
    let err = match etl_service::App::build(config).await {
        Ok(_) => panic!("must refuse to start"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("migration(s) pending"), "{err}");
    assert!(err.contains("2026-12-03-000001_service_state"), "{err}");
    assert!(err.contains("etl-service migrate"), "{err}");

    // With apply_on_start it migrates and serves.
    let mut config: etl_service::Config = test_config(&db.url);
    config.migrations.apply_on_start = true;
    let app = etl_service::App::build(config)
        .await
        .expect("starts with apply_on_start");
    drop(app);
    let pending =
        service_kit::db::pending_migrations(&db.url, etl_service::migrations::migrations())
            .await
            .expect("pending");
    assert!(pending.is_empty(), "{pending:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn migrator_repository_tables_exist_after_migration() {
    let db = integration_tests::migrator::migrated_repository().await;
    let client = db.client().await;
    for table in [
        "form_submission",
        "migration_audit",
        "error_audit",
        "ec_registration",
        "anc_registration",
        "anc_visit",
        "pnc_visit",
        "child_pnc_visit",
    ] {
        let row = client
            .query_one("SELECT to_regclass($1)::text", &[&table])
            .await
            .expect("query");
        assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some(table));
    }
    // instance_id is unique on every form table and the archive.
    let unique: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.table_constraints tc
               JOIN information_schema.constraint_column_usage cu USING (constraint_name, table_name)
              WHERE tc.constraint_type = 'UNIQUE' AND cu.column_name = 'instance_id'",
            &[],
        )
        .await
        .expect("query")
        .get(0);
    assert_eq!(unique, 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_over_the_message_limit_is_resource_exhausted() {
    let etl = TestEtl::start(|c| c.server.max_message_bytes = 2048).await;
    let big = etl::ValidateNamesRequest {
        target: Some(etl::validate_names_request::Target::Proposed(
            etl::ProposedSchema {
                subject_types: (0..200)
                    .map(|i| etl::ProposedSubjectType {
                        name: format!("subject type number {i}"),
                    })
                    .collect(),
                ..Default::default()
            },
        )),
    };
    let status = etl
        .client()
        .await
        .validate_names(big)
        .await
        .expect_err("over the limit");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("too large"),
        "{}",
        status.message()
    );

    // Under the limit the same RPC answers.
    let small = etl::ValidateNamesRequest {
        target: Some(etl::validate_names_request::Target::Proposed(
            etl::ProposedSchema {
                subject_types: vec![etl::ProposedSubjectType {
                    name: "Individual".into(),
                }],
                ..Default::default()
            },
        )),
    };
    assert!(etl.client().await.validate_names(small).await.is_ok());
}
