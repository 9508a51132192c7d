//! Bad input on every RPC of both services, table-driven: malformed, empty,
//! oversized (1 MB) and NUL-holding fields, unknown enum values, negative
//! and huge page sizes, bad page tokens, too many entities or ids, unknown
//! organisations and sources. Each case asserts the status code AND that
//! the message names the offending field (or the unknown thing), and that
//! the message stays short (a 1 MB value is not echoed back). A request
//! over `server.max_message_bytes` is RESOURCE_EXHAUSTED. Afterwards the
//! services still answer a valid call and nothing was written.

use avni_proto::etl::v1 as etl;
use avni_proto::migrator::v1 as mig;
use integration_tests::avni;
use integration_tests::fake_upstream::{Data, FakeUpstream, Generator};
use integration_tests::services::{AuthedChannel, TestEtl, TestMigrator};
use tonic::Code;

const ORG_UUID: &str = "0b6f3c1e-4a5d-4e2f-8c9b-1d2e3f4a5b6c";
const UNKNOWN_UUID: &str = "6a1d1a4e-3d5b-4f6e-9d2a-0b1c2d3e4f50";
const MB: usize = 1 << 20;

/// What a case expects: a code and text the message must contain.
struct Expect {
    code: Code,
    contains: String,
}

fn expect(code: Code, contains: &str) -> Expect {
    Expect {
        code,
        contains: contains.to_string(),
    }
}

/// What is wrong with the answer to a case, if anything.
fn check(case: &str, result: Result<(), tonic::Status>, want: &Expect) -> Option<String> {
    let status = match result {
        Ok(()) => return Some(format!("{case}: accepted, expected {:?}", want.code)),
        Err(s) => s,
    };
    let message = &status.message()[..status.message().len().min(300)];
    if status.code() != want.code {
        return Some(format!(
            "{case}: {:?} ({message}), expected {:?}",
            status.code(),
            want.code
        ));
    }
    if want.code != Code::ResourceExhausted && !status.message().contains(&want.contains) {
        return Some(format!(
            "{case}: message {message:?} does not mention {:?}",
            want.contains
        ));
    }
    if status.message().len() >= 1000 {
        return Some(format!(
            "{case}: a {}-byte message echoes the input",
            status.message().len()
        ));
    }
    None
}

fn ent(uuid: &str, r#type: i32) -> Option<etl::Entity> {
    Some(etl::Entity {
        uuid: uuid.to_string(),
        r#type,
    })
}

/// One call of any ETL RPC.
#[derive(Clone)]
enum EtlCall {
    Enable(etl::EnableAnalyticsRequest),
    Disable(etl::DisableAnalyticsRequest),
    RunNow(etl::RunNowRequest),
    Recreate(etl::RecreateSchemaRequest),
    Validate(etl::ValidateNamesRequest),
    GetJob(etl::GetJobRequest),
    Batch(etl::BatchGetJobsRequest),
    List(etl::ListJobRunsRequest),
    Watch(etl::WatchJobRunRequest),
}

impl EtlCall {
    fn rpc(&self) -> &'static str {
        match self {
            EtlCall::Enable(_) => "EnableAnalytics",
            EtlCall::Disable(_) => "DisableAnalytics",
            EtlCall::RunNow(_) => "RunNow",
            EtlCall::Recreate(_) => "RecreateSchema",
            EtlCall::Validate(_) => "ValidateNames",
            EtlCall::GetJob(_) => "GetJob",
            EtlCall::Batch(_) => "BatchGetJobs",
            EtlCall::List(_) => "ListJobRuns",
            EtlCall::Watch(_) => "WatchJobRun",
        }
    }

    /// The same RPC with `entity` in its entity field.
    fn with_entity(rpc: &str, entity: Option<etl::Entity>) -> Self {
        use etl::validate_names_request::Target as V;
        use etl::watch_job_run_request::Target as W;
        match rpc {
            "EnableAnalytics" => EtlCall::Enable(etl::EnableAnalyticsRequest { entity }),
            "DisableAnalytics" => EtlCall::Disable(etl::DisableAnalyticsRequest { entity }),
            "RunNow" => EtlCall::RunNow(etl::RunNowRequest { entity }),
            "RecreateSchema" => EtlCall::Recreate(etl::RecreateSchemaRequest {
                entity,
                skip_rebuild: true,
            }),
            "ValidateNames" => EtlCall::Validate(etl::ValidateNamesRequest {
                target: entity.map(V::Entity),
            }),
            "GetJob" => EtlCall::GetJob(etl::GetJobRequest { entity }),
            "BatchGetJobs" => EtlCall::Batch(etl::BatchGetJobsRequest {
                entities: entity.into_iter().collect(),
                ..Default::default()
            }),
            "ListJobRuns" => EtlCall::List(etl::ListJobRunsRequest {
                entity,
                ..Default::default()
            }),
            "WatchJobRun" => EtlCall::Watch(etl::WatchJobRunRequest {
                target: entity.map(W::Entity),
            }),
            other => panic!("no RPC {other}"),
        }
    }

    async fn call(
        self,
        c: &mut etl::etl_service_client::EtlServiceClient<AuthedChannel>,
    ) -> Result<(), tonic::Status> {
        match self {
            EtlCall::Enable(r) => c.enable_analytics(r).await.map(drop),
            EtlCall::Disable(r) => c.disable_analytics(r).await.map(drop),
            EtlCall::RunNow(r) => c.run_now(r).await.map(drop),
            EtlCall::Recreate(r) => c.recreate_schema(r).await.map(drop),
            EtlCall::Validate(r) => c.validate_names(r).await.map(drop),
            EtlCall::GetJob(r) => c.get_job(r).await.map(drop),
            EtlCall::Batch(r) => c.batch_get_jobs(r).await.map(drop),
            EtlCall::List(r) => c.list_job_runs(r).await.map(drop),
            EtlCall::Watch(r) => c.watch_job_run(r).await.map(drop),
        }
    }
}

const ENTITY_RPCS: [&str; 9] = [
    "EnableAnalytics",
    "DisableAnalytics",
    "RunNow",
    "RecreateSchema",
    "ValidateNames",
    "GetJob",
    "BatchGetJobs",
    "ListJobRuns",
    "WatchJobRun",
];

fn etl_cases() -> Vec<(String, EtlCall, Expect)> {
    let mut cases = Vec::new();
    let org = etl::EntityType::Organisation as i32;
    let group = etl::EntityType::OrganisationGroup as i32;
    // The entity field of every RPC that takes one.
    for rpc in ENTITY_RPCS {
        // Where the RPC says which entity: BatchGetJobs' list, the others'
        // `entity`.
        let field = if rpc == "BatchGetJobs" {
            "entities[0]"
        } else {
            "entity"
        };
        let bad: Vec<(&str, Option<etl::Entity>, Code, String)> = vec![
            (
                "empty uuid",
                ent("", org),
                Code::InvalidArgument,
                format!("{field}.uuid"),
            ),
            (
                "whitespace uuid",
                ent("   ", org),
                Code::InvalidArgument,
                format!("{field}.uuid"),
            ),
            (
                "malformed uuid",
                ent("not-a-uuid", org),
                Code::InvalidArgument,
                format!("{field}.uuid"),
            ),
            (
                "uuid without hyphens",
                ent(&UNKNOWN_UUID.replace('-', ""), org),
                Code::InvalidArgument,
                format!("{field}.uuid"),
            ),
            (
                "braced uuid",
                ent(&format!("{{{UNKNOWN_UUID}}}"), org),
                Code::InvalidArgument,
                format!("{field}.uuid"),
            ),
            (
                "uuid with NUL",
                ent(&format!("{UNKNOWN_UUID}\0"), org),
                Code::InvalidArgument,
                format!("{field}.uuid"),
            ),
            (
                "SQL in uuid",
                ent("'; DROP TABLE etl_service.etl_job; --", org),
                Code::InvalidArgument,
                format!("{field}.uuid"),
            ),
            (
                "1 MB uuid",
                ent(&"a".repeat(MB), org),
                Code::InvalidArgument,
                format!("{field}.uuid"),
            ),
            (
                "unspecified type",
                ent(UNKNOWN_UUID, 0),
                Code::InvalidArgument,
                format!("{field}.type"),
            ),
            (
                "unknown type 99",
                ent(UNKNOWN_UUID, 99),
                Code::InvalidArgument,
                format!("{field}.type"),
            ),
            (
                "negative type",
                ent(UNKNOWN_UUID, -3),
                Code::InvalidArgument,
                format!("{field}.type"),
            ),
            (
                "unknown organisation",
                ent(UNKNOWN_UUID, org),
                Code::NotFound,
                UNKNOWN_UUID.to_string(),
            ),
            (
                "unknown organisation group",
                ent(UNKNOWN_UUID, group),
                Code::NotFound,
                UNKNOWN_UUID.to_string(),
            ),
        ];
        for (what, entity, code, contains) in bad {
            // BatchGetJobs answers an unknown entity with an entry of its
            // errors, not a failed call (etl_control's batch test).
            if rpc == "BatchGetJobs" && code == Code::NotFound {
                continue;
            }
            cases.push((
                format!("{rpc}: {what}"),
                EtlCall::with_entity(rpc, entity),
                expect(code, &contains),
            ));
        }
        // A missing entity is an error where the RPC needs one.
        let missing = match rpc {
            "BatchGetJobs" | "ListJobRuns" => None, // every job / every run
            "ValidateNames" => Some("proposed"),
            "WatchJobRun" => Some("run_id"),
            _ => Some("entity"),
        };
        if let Some(contains) = missing {
            cases.push((
                format!("{rpc}: no entity"),
                EtlCall::with_entity(rpc, None),
                expect(Code::InvalidArgument, contains),
            ));
        }
    }

    // ValidateNames' proposed set.
    let proposed = |p: etl::ProposedSchema| {
        EtlCall::Validate(etl::ValidateNamesRequest {
            target: Some(etl::validate_names_request::Target::Proposed(p)),
        })
    };
    let st = |name: String| etl::ProposedSubjectType { name };
    cases.push((
        "ValidateNames: empty proposed set".into(),
        proposed(etl::ProposedSchema::default()),
        expect(Code::InvalidArgument, "proposed"),
    ));
    cases.push((
        "ValidateNames: 1 MB subject type name".into(),
        proposed(etl::ProposedSchema {
            subject_types: vec![st("Person".into()), st("x".repeat(MB))],
            ..Default::default()
        }),
        expect(Code::InvalidArgument, "proposed.subject_types[1].name"),
    ));
    cases.push((
        "ValidateNames: 256-character program name".into(),
        proposed(etl::ProposedSchema {
            subject_types: vec![st("Person".into())],
            programs: vec![etl::ProposedProgram {
                name: "प".repeat(256),
                subject_type_name: "Person".into(),
                has_exit_form: false,
            }],
            ..Default::default()
        }),
        expect(Code::InvalidArgument, "proposed.programs[0].name"),
    ));
    cases.push((
        "ValidateNames: NUL in a program's subject type".into(),
        proposed(etl::ProposedSchema {
            programs: vec![etl::ProposedProgram {
                name: "Child".into(),
                subject_type_name: "Per\0son".into(),
                has_exit_form: false,
            }],
            ..Default::default()
        }),
        expect(
            Code::InvalidArgument,
            "proposed.programs[0].subject_type_name",
        ),
    ));
    cases.push((
        "ValidateNames: NUL in an encounter type's program".into(),
        proposed(etl::ProposedSchema {
            encounter_types: vec![etl::ProposedEncounterType {
                name: "ANC".into(),
                subject_type_name: "Person".into(),
                program_name: "\0".into(),
                has_cancel_form: false,
            }],
            ..Default::default()
        }),
        expect(
            Code::InvalidArgument,
            "proposed.encounter_types[0].program_name",
        ),
    ));
    cases.push((
        "ValidateNames: 5001 proposed entities".into(),
        proposed(etl::ProposedSchema {
            subject_types: (0..5001).map(|i| st(format!("S{i}"))).collect(),
            ..Default::default()
        }),
        expect(Code::InvalidArgument, "proposed"),
    ));

    // BatchGetJobs: a bad entry is named by its index; too many entries.
    let good = etl::Entity {
        uuid: ORG_UUID.into(),
        r#type: org,
    };
    let batch = |entities: Vec<etl::Entity>| {
        EtlCall::Batch(etl::BatchGetJobsRequest {
            entities,
            ..Default::default()
        })
    };
    cases.push((
        "BatchGetJobs: third entity malformed".into(),
        batch(vec![
            good.clone(),
            good.clone(),
            etl::Entity {
                uuid: "zzz".into(),
                r#type: org,
            },
        ]),
        expect(Code::InvalidArgument, "entities[2].uuid"),
    ));
    cases.push((
        "BatchGetJobs: second entity of unknown type".into(),
        batch(vec![
            good.clone(),
            etl::Entity {
                uuid: ORG_UUID.into(),
                r#type: 7,
            },
        ]),
        expect(Code::InvalidArgument, "entities[1].type"),
    ));
    cases.push((
        "BatchGetJobs: 1001 entities".into(),
        batch(vec![good.clone(); 1001]),
        expect(Code::InvalidArgument, "entities"),
    ));
    cases.push((
        "BatchGetJobs: 100,000 entities (over the message size)".into(),
        batch(vec![good.clone(); 100_000]),
        expect(Code::ResourceExhausted, ""),
    ));
    // ListJobRuns' paging.
    let list = |page_size: i32, page_token: &str| {
        EtlCall::List(etl::ListJobRunsRequest {
            entity: None,
            page_size,
            page_token: page_token.to_string(),
        })
    };
    for (what, size, token, field) in [
        ("page_size -1", -1, "", "page_size"),
        ("page_size i32::MIN", i32::MIN, "", "page_size"),
        ("garbage page_token", 10, "garbage", "page_token"),
        ("page_token of a bare id", 10, "42", "page_token"),
        ("page_token before-0", 10, "before-0", "page_token"),
        ("page_token before--5", 10, "before--5", "page_token"),
        (
            "page_token past i64",
            10,
            "before-99999999999999999999",
            "page_token",
        ),
    ] {
        cases.push((
            format!("ListJobRuns: {what}"),
            list(size, token),
            expect(Code::InvalidArgument, field),
        ));
    }
    cases.push((
        "ListJobRuns: 1 MB page_token".into(),
        list(10, &"before-1".repeat(MB / 8)),
        expect(Code::InvalidArgument, "page_token"),
    ));

    // WatchJobRun by id.
    let watch = |id: i64| {
        EtlCall::Watch(etl::WatchJobRunRequest {
            target: Some(etl::watch_job_run_request::Target::RunId(id)),
        })
    };
    cases.push((
        "WatchJobRun: run_id 0".into(),
        watch(0),
        expect(Code::InvalidArgument, "run_id"),
    ));
    cases.push((
        "WatchJobRun: run_id -1".into(),
        watch(-1),
        expect(Code::InvalidArgument, "run_id"),
    ));
    cases.push((
        "WatchJobRun: run_id i64::MIN".into(),
        watch(i64::MIN),
        expect(Code::InvalidArgument, "run_id"),
    ));
    cases.push((
        "WatchJobRun: an unknown run".into(),
        watch(987_654_321),
        expect(Code::NotFound, "run_id 987654321"),
    ));

    // Over the configured message size (4 MiB by default): refused before
    // any handler runs.
    cases.push((
        "EnableAnalytics: 5 MB request".into(),
        EtlCall::Enable(etl::EnableAnalyticsRequest {
            entity: ent(&"a".repeat(5 * MB), org),
        }),
        expect(Code::ResourceExhausted, ""),
    ));
    cases.push((
        "ValidateNames: 5 MB request".into(),
        proposed(etl::ProposedSchema {
            subject_types: vec![st("y".repeat(5 * MB))],
            ..Default::default()
        }),
        expect(Code::ResourceExhausted, ""),
    ));
    cases
}

#[tokio::test(flavor = "multi_thread")]
async fn every_etl_rpc_rejects_bad_input_naming_the_field() {
    let service = TestEtl::start(|_| {}).await;
    let db = service.db.client().await;
    avni::create_source_tables(&db).await;
    db.execute(
        "INSERT INTO organisation (uuid, name, db_user, schema_name) VALUES ($1, 'Known', 'known_user', 'known')",
        &[&ORG_UUID],
    )
    .await
    .expect("insert organisation");
    let mut client = service.client().await;

    let cases = etl_cases();
    let mut rpcs_covered = std::collections::BTreeSet::new();
    let mut failures = Vec::new();
    for (case, call, want) in &cases {
        rpcs_covered.insert(call.rpc());
        failures.extend(check(case, call.clone().call(&mut client).await, want));
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_eq!(rpcs_covered.len(), 9, "every RPC: {rpcs_covered:?}");
    eprintln!("{} ETL cases checked", cases.len());

    // Still serving, the known organisation answers, and nothing was
    // written on the refused calls' behalf.
    let job = client
        .get_job(etl::GetJobRequest {
            entity: ent(ORG_UUID, etl::EntityType::Organisation as i32),
        })
        .await
        .expect("a valid call still works")
        .into_inner();
    assert_eq!(job.job.expect("job").schema_name, "known");
    // Uppercase hex is the same uuid.
    client
        .get_job(etl::GetJobRequest {
            entity: ent(
                &ORG_UUID.to_uppercase(),
                etl::EntityType::Organisation as i32,
            ),
        })
        .await
        .expect("uppercase uuid");
    client
        .list_job_runs(etl::ListJobRunsRequest {
            page_size: i32::MAX,
            ..Default::default()
        })
        .await
        .expect("a huge page_size is clamped, not refused");
    let written: i64 = db
        .query_one(
            "SELECT (SELECT count(*) FROM etl_service.etl_job) + (SELECT count(*) FROM etl_service.etl_run)",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(written, 0);
}

/// One call of any migrator RPC.
#[derive(Clone)]
enum MigCall {
    Status(mig::GetStatusRequest),
    RunNow(mig::RunNowRequest),
    Audits(mig::ListAuditsRequest),
    Errors(mig::ListErrorsRequest),
    Reprocess(mig::ReprocessErrorsRequest),
    Unmapped(mig::ListUnmappedFieldsRequest),
    Refill(mig::RefillColumnsRequest),
}

impl MigCall {
    fn rpc(&self) -> &'static str {
        match self {
            MigCall::Status(_) => "GetStatus",
            MigCall::RunNow(_) => "RunNow",
            MigCall::Audits(_) => "ListAudits",
            MigCall::Errors(_) => "ListErrors",
            MigCall::Reprocess(_) => "ReprocessErrors",
            MigCall::Unmapped(_) => "ListUnmappedFields",
            MigCall::Refill(_) => "RefillColumns",
        }
    }

    fn with_source(rpc: &str, source: String) -> Self {
        match rpc {
            "GetStatus" => MigCall::Status(mig::GetStatusRequest { source }),
            "RunNow" => MigCall::RunNow(mig::RunNowRequest { source }),
            "ListAudits" => MigCall::Audits(mig::ListAuditsRequest {
                source,
                ..Default::default()
            }),
            "ListErrors" => MigCall::Errors(mig::ListErrorsRequest {
                source,
                ..Default::default()
            }),
            "ReprocessErrors" => MigCall::Reprocess(mig::ReprocessErrorsRequest {
                source,
                ..Default::default()
            }),
            "ListUnmappedFields" => MigCall::Unmapped(mig::ListUnmappedFieldsRequest {
                source,
                ..Default::default()
            }),
            "RefillColumns" => MigCall::Refill(mig::RefillColumnsRequest {
                source,
                ..Default::default()
            }),
            other => panic!("no RPC {other}"),
        }
    }

    async fn call(
        self,
        c: &mut mig::forms_migrator_client::FormsMigratorClient<AuthedChannel>,
    ) -> Result<(), tonic::Status> {
        match self {
            MigCall::Status(r) => c.get_status(r).await.map(drop),
            MigCall::RunNow(r) => c.run_now(r).await.map(drop),
            MigCall::Audits(r) => c.list_audits(r).await.map(drop),
            MigCall::Errors(r) => c.list_errors(r).await.map(drop),
            MigCall::Reprocess(r) => c.reprocess_errors(r).await.map(drop),
            MigCall::Unmapped(r) => c.list_unmapped_fields(r).await.map(drop),
            MigCall::Refill(r) => c.refill_columns(r).await.map(drop),
        }
    }
}

fn migrator_cases() -> Vec<(String, MigCall, Expect)> {
    let mut cases = Vec::new();
    for rpc in [
        "GetStatus",
        "RunNow",
        "ListAudits",
        "ListErrors",
        "ReprocessErrors",
        "ListUnmappedFields",
        "RefillColumns",
    ] {
        for (what, source, code, contains) in [
            (
                "unknown source",
                "nope".to_string(),
                Code::NotFound,
                "source \"nope\"",
            ),
            (
                "source differing in case",
                "ALPHA".to_string(),
                Code::NotFound,
                "source \"ALPHA\"",
            ),
            (
                "SQL as source",
                "alpha'; DROP TABLE error_audit; --".to_string(),
                Code::NotFound,
                "source \"alpha'",
            ),
            (
                "1 MB source",
                "s".repeat(MB),
                Code::InvalidArgument,
                "source",
            ),
            (
                "source with NUL",
                "alpha\0".to_string(),
                Code::InvalidArgument,
                "source",
            ),
        ] {
            cases.push((
                format!("{rpc}: {what}"),
                MigCall::with_source(rpc, source),
                expect(code, contains),
            ));
        }
    }
    let audits = |page_size: i32, page_token: &str| {
        MigCall::Audits(mig::ListAuditsRequest {
            source: String::new(),
            page_size,
            page_token: page_token.to_string(),
        })
    };
    let errors = |page_size: i32, page_token: &str, form_name: &str| {
        MigCall::Errors(mig::ListErrorsRequest {
            page_size,
            page_token: page_token.to_string(),
            form_name: form_name.to_string(),
            ..Default::default()
        })
    };
    for (what, size, token, field) in [
        ("page_size -1", -1, "", "page_size"),
        ("page_size i32::MIN", i32::MIN, "", "page_size"),
        ("garbage page_token", 10, "abc", "page_token"),
        ("negative page_token", 10, "-5", "page_token"),
        ("zero page_token", 10, "0", "page_token"),
        (
            "page_token past i64",
            10,
            "99999999999999999999",
            "page_token",
        ),
    ] {
        cases.push((
            format!("ListAudits: {what}"),
            audits(size, token),
            expect(Code::InvalidArgument, field),
        ));
        cases.push((
            format!("ListErrors: {what}"),
            errors(size, token, ""),
            expect(Code::InvalidArgument, field),
        ));
    }
    cases.push((
        "ListAudits: 1 MB page_token".into(),
        audits(10, &"9".repeat(MB)),
        expect(Code::InvalidArgument, "page_token"),
    ));
    cases.push((
        "ListErrors: form_name with NUL".into(),
        errors(10, "", "anc\0"),
        expect(Code::InvalidArgument, "form_name"),
    ));
    cases.push((
        "ListErrors: 1 MB form_name".into(),
        errors(10, "", &"f".repeat(MB)),
        expect(Code::InvalidArgument, "form_name"),
    ));
    for (rpc, call) in [
        (
            "ListUnmappedFields",
            MigCall::Unmapped(mig::ListUnmappedFieldsRequest {
                form_name: "anc\0".into(),
                ..Default::default()
            }),
        ),
        (
            "RefillColumns",
            MigCall::Refill(mig::RefillColumnsRequest {
                form_name: "f".repeat(MB),
                ..Default::default()
            }),
        ),
    ] {
        cases.push((
            format!("{rpc}: bad form_name"),
            call,
            expect(Code::InvalidArgument, "form_name"),
        ));
    }
    let reprocess = |form_name: &str, error_ids: Vec<i64>| {
        MigCall::Reprocess(mig::ReprocessErrorsRequest {
            source: String::new(),
            form_name: form_name.to_string(),
            error_ids,
        })
    };
    cases.push((
        "ReprocessErrors: form_name with NUL".into(),
        reprocess("\0", vec![]),
        expect(Code::InvalidArgument, "form_name"),
    ));
    cases.push((
        "ReprocessErrors: 1 MB form_name".into(),
        reprocess(&"f".repeat(MB), vec![]),
        expect(Code::InvalidArgument, "form_name"),
    ));
    cases.push((
        "ReprocessErrors: error id 0".into(),
        reprocess("", vec![0]),
        expect(Code::InvalidArgument, "error_ids[0]"),
    ));
    cases.push((
        "ReprocessErrors: negative second error id".into(),
        reprocess("", vec![5, -1]),
        expect(Code::InvalidArgument, "error_ids[1]"),
    ));
    cases.push((
        "ReprocessErrors: 10,001 error ids".into(),
        reprocess("", (1..=10_001).collect()),
        expect(Code::InvalidArgument, "error_ids"),
    ));
    // Over the configured message size.
    cases.push((
        "GetStatus: 5 MB request".into(),
        MigCall::Status(mig::GetStatusRequest {
            source: "s".repeat(5 * MB),
        }),
        expect(Code::ResourceExhausted, ""),
    ));
    cases.push((
        "ReprocessErrors: 600,000 large ids (over the message size)".into(),
        reprocess("", vec![i64::MAX; 600_000]),
        expect(Code::ResourceExhausted, ""),
    ));
    cases
}

#[tokio::test(flavor = "multi_thread")]
async fn every_migrator_rpc_rejects_bad_input_naming_the_field() {
    let upstream = FakeUpstream::start(Data::Generated(Generator::new(3))).await;
    let service = TestMigrator::start(|c| {
        c.sources = vec![integration_tests::migrator::source(
            "alpha", &upstream, 10, 3600.0,
        )];
    })
    .await;
    let mut client = service.client().await;
    let cases = migrator_cases();
    let mut rpcs_covered = std::collections::BTreeSet::new();
    let mut failures = Vec::new();
    for (case, call, want) in &cases {
        rpcs_covered.insert(call.rpc());
        failures.extend(check(case, call.clone().call(&mut client).await, want));
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_eq!(rpcs_covered.len(), 7, "every RPC: {rpcs_covered:?}");
    eprintln!("{} migrator cases checked", cases.len());

    // Still serving; valid filters still work (a form nobody has is an
    // empty page, not an error: error_audit keeps unknown forms' failures).
    let status = client
        .get_status(mig::GetStatusRequest {
            source: "alpha".into(),
        })
        .await
        .expect("a valid call still works")
        .into_inner();
    assert_eq!(status.sources.len(), 1);
    let errors = client
        .list_errors(mig::ListErrorsRequest {
            form_name: "no_such_form".into(),
            page_size: i32::MAX,
            ..Default::default()
        })
        .await
        .expect("a valid filter")
        .into_inner();
    assert!(errors.errors.is_empty());
}
