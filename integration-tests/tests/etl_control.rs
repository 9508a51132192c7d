//! The ETL control service end to end in process: the real `App` (gRPC,
//! scheduler, engine) on port 0, called with the generated tonic client,
//! over generated Avni organisations. Intervals are shortened by config.

use avni_proto::etl::v1 as pb;
use integration_tests::avni::edit::{self, SourceTable};
use integration_tests::avni::{self, Size, Spec, World};
use integration_tests::etl::snapshot;
use integration_tests::services::{AuthedChannel, TestEtl};
use pb::etl_service_client::EtlServiceClient;
use std::time::{Duration, Instant};
use tonic::Code;

type Client = EtlServiceClient<AuthedChannel>;

async fn start(spec: &Spec, interval_seconds: u64) -> (TestEtl, World, tokio_postgres::Client) {
    let etl = TestEtl::start(|c| {
        c.etl.interval_seconds = Some(interval_seconds);
        c.etl.scheduler_poll_ms = 200;
        c.etl.sync_offset_seconds = 0;
        c.etl.lease_seconds = 5;
    })
    .await;
    let client = etl.db.client().await;
    let world = avni::generate(&client, spec).await;
    (etl, world, client)
}

fn org_entity(uuid: &str) -> pb::Entity {
    pb::Entity {
        uuid: uuid.to_string(),
        r#type: pb::EntityType::Organisation as i32,
    }
}

async fn get_job(client: &mut Client, entity: &pb::Entity) -> pb::Job {
    client
        .get_job(pb::GetJobRequest {
            entity: Some(entity.clone()),
        })
        .await
        .expect("GetJob")
        .into_inner()
        .job
        .expect("job")
}

/// Waits until the entity's newest finished run is newer than `after` and
/// returns it.
async fn wait_for_run_after(client: &mut Client, entity: &pb::Entity, after: i64) -> pb::JobRun {
    let started = Instant::now();
    loop {
        let job = get_job(client, entity).await;
        if let Some(run) = job.last_run
            && run.id > after
        {
            return run;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no run of {} finished within 60s",
            entity.uuid
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn succeeded(run: &pb::JobRun) -> bool {
    run.status == pb::RunStatus::Succeeded as i32
}

fn upserted(run: &pb::JobRun) -> i64 {
    run.tables.iter().map(|t| t.rows_upserted).sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn enable_runs_the_organisation_and_is_idempotent() {
    let (etl, world, db) = start(&Spec::default(), 3600).await;
    let org = &world.organisations[0];
    let entity = org_entity(&org.uuid);
    let mut client = etl.client().await;

    let first = client
        .enable_analytics(pb::EnableAnalyticsRequest {
            entity: Some(entity.clone()),
        })
        .await
        .expect("enable")
        .into_inner();
    assert!(first.created);
    let job = first.job.expect("job");
    assert!(job.enabled);
    assert_eq!(job.schema_name, org.schema_name);
    assert_eq!(job.interval.expect("interval").seconds, 3600);

    let run = wait_for_run_after(&mut client, &entity, 0).await;
    assert!(
        succeeded(&run),
        "first run failed: {} / {}",
        run.error,
        run.error_detail
    );
    assert_eq!(run.trigger, pb::RunTrigger::Schedule as i32);
    assert!(upserted(&run) > 0);
    let tables: i64 = db
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1",
            &[&org.schema_name],
        )
        .await
        .expect("count")
        .get(0);
    assert!(tables as usize >= run.tables.len() && tables > 0);

    let job = get_job(&mut client, &entity).await;
    assert_eq!(job.last_run.as_ref().map(|r| r.id), Some(run.id));
    assert!(job.next_run_time.is_some());

    let again = client
        .enable_analytics(pb::EnableAnalyticsRequest {
            entity: Some(entity.clone()),
        })
        .await
        .expect("enable again")
        .into_inner();
    assert!(!again.created);
    assert_eq!(again.job.expect("job").enabled_time, job.enabled_time);

    let unknown = client
        .enable_analytics(pb::EnableAnalyticsRequest {
            entity: Some(org_entity("00000000-0000-4000-8000-000000000001")),
        })
        .await
        .expect_err("unknown organisation");
    assert_eq!(unknown.code(), Code::NotFound);
    assert!(
        unknown.message().contains("does not exist"),
        "{}",
        unknown.message()
    );

    let malformed = client
        .enable_analytics(pb::EnableAnalyticsRequest {
            entity: Some(org_entity("12345")),
        })
        .await
        .expect_err("malformed uuid");
    assert_eq!(malformed.code(), Code::InvalidArgument);

    let batch = client
        .batch_get_jobs(pb::BatchGetJobsRequest::default())
        .await
        .expect("batch")
        .into_inner();
    assert_eq!(batch.jobs.len(), 1);
    assert_eq!(
        batch.jobs[0].entity.as_ref().map(|e| e.uuid.clone()),
        Some(org.uuid.clone())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn disable_then_enable_resumes_incrementally() {
    let (etl, world, db) = start(&Spec::default(), 3600).await;
    let org = &world.organisations[0];
    let entity = org_entity(&org.uuid);
    let mut client = etl.client().await;
    client
        .enable_analytics(pb::EnableAnalyticsRequest {
            entity: Some(entity.clone()),
        })
        .await
        .expect("enable");
    let first = wait_for_run_after(&mut client, &entity, 0).await;
    assert!(succeeded(&first), "{first:?}");
    let full = upserted(&first);

    let disabled = client
        .disable_analytics(pb::DisableAnalyticsRequest {
            entity: Some(entity.clone()),
        })
        .await
        .expect("disable")
        .into_inner();
    assert!(disabled.removed);
    let job = get_job(&mut client, &entity).await;
    assert!(!job.enabled);
    assert!(job.next_run_time.is_none());
    // The schema and its watermarks stay.
    let marks: i64 = db
        .query_one(
            "SELECT count(*) FROM entity_sync_status WHERE schema_name = $1",
            &[&org.schema_name],
        )
        .await
        .expect("marks")
        .get(0);
    assert!(marks > 0);

    // One subject changes while analytics is off.
    let id: i64 = db
        .query_one(
            "SELECT id FROM individual WHERE organisation_id = $1 ORDER BY id LIMIT 1",
            &[&org.id],
        )
        .await
        .expect("subject")
        .get(0);
    edit::set_observations(&db, SourceTable::Individual, id, &serde_json::json!({})).await;

    client
        .enable_analytics(pb::EnableAnalyticsRequest {
            entity: Some(entity.clone()),
        })
        .await
        .expect("enable again");
    let second = wait_for_run_after(&mut client, &entity, first.id).await;
    assert!(succeeded(&second), "{}", second.error);
    assert_eq!(
        upserted(&second),
        1,
        "only the changed subject is upserted (full load was {full})"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn run_now_during_a_run_returns_that_run() {
    let (etl, world, _db) = start(&Spec::default(), 3600).await;
    let org = &world.organisations[0];
    let entity = org_entity(&org.uuid);
    let mut client = etl.client().await;

    // Hold the organisation's lock, as a run-once in another process would:
    // the run starts and waits for it.
    let lock = etl_service::engine::lock::EntityLock::acquire(&etl.db.url, &org.schema_name)
        .await
        .expect("lock");
    let first = client
        .run_now(pb::RunNowRequest {
            entity: Some(entity.clone()),
        })
        .await
        .expect("run now")
        .into_inner();
    assert!(!first.already_running);
    let run = first.run.expect("run");
    assert_eq!(run.trigger, pb::RunTrigger::RunNow as i32);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let second = client
        .run_now(pb::RunNowRequest {
            entity: Some(entity.clone()),
        })
        .await
        .expect("run now again")
        .into_inner();
    assert!(second.already_running);
    assert_eq!(second.run.expect("run").id, run.id);
    let job = get_job(&mut client, &entity).await;
    assert_eq!(job.current_run.as_ref().map(|r| r.id), Some(run.id));

    lock.release().await.expect("release");
    let done = wait_for_run_after(&mut client, &entity, 0).await;
    assert_eq!(done.id, run.id);
    assert!(succeeded(&done), "{}", done.error);

    let history = client
        .list_job_runs(pb::ListJobRunsRequest {
            entity: Some(entity.clone()),
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .expect("history")
        .into_inner();
    assert_eq!(history.runs.len(), 1, "one run, not two");
}

#[tokio::test(flavor = "multi_thread")]
async fn recreate_schema_rebuilds_what_a_fresh_build_gives() {
    let (etl, world, db) = start(&Spec::default(), 3600).await;
    let org = &world.organisations[0];
    let entity = org_entity(&org.uuid);
    let mut client = etl.client().await;
    let first = client
        .run_now(pb::RunNowRequest {
            entity: Some(entity.clone()),
        })
        .await
        .expect("run now")
        .into_inner()
        .run
        .expect("run");
    let first = wait_for_run_after(&mut client, &entity, first.id - 1).await;
    assert!(succeeded(&first), "{first:?}");
    let before = snapshot(&db, &org.schema_name).await;
    assert!(!before.is_empty());

    let recreated = client
        .recreate_schema(pb::RecreateSchemaRequest {
            entity: Some(entity.clone()),
            skip_rebuild: false,
        })
        .await
        .expect("recreate")
        .into_inner();
    assert_eq!(recreated.schema_name, org.schema_name);
    assert_eq!(recreated.tables_dropped as usize, before.len());
    let rebuild = recreated.rebuild_run.expect("rebuild run");
    assert_eq!(rebuild.trigger, pb::RunTrigger::Recreate as i32);
    let rebuilt = wait_for_run_after(&mut client, &entity, first.id).await;
    assert_eq!(rebuilt.id, rebuild.id);
    assert!(succeeded(&rebuilt), "{}", rebuilt.error);
    assert!(
        rebuilt
            .tables
            .iter()
            .all(|t| t.change == pb::TableChange::Created as i32)
    );
    let after = snapshot(&db, &org.schema_name).await;
    assert_eq!(
        after, before,
        "the rebuilt schema differs from the fresh build"
    );

    // skip_rebuild drops everything and leaves the schema empty, still
    // the organisation's as Avni made it (issue 14.7).
    let dropped = client
        .recreate_schema(pb::RecreateSchemaRequest {
            entity: Some(entity.clone()),
            skip_rebuild: true,
        })
        .await
        .expect("drop only")
        .into_inner();
    assert!(dropped.rebuild_run.is_none());
    let left: i64 = db
        .query_one(
            "SELECT (SELECT count(*) FROM table_metadata WHERE schema_name = $1) \
                  + (SELECT count(*) FROM entity_sync_status WHERE schema_name = $1) \
                  + (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = $1)",
            &[&org.schema_name],
        )
        .await
        .expect("left")
        .get(0);
    assert_eq!(left, 0, "tables, metadata and sync status must all be gone");
    let owner: String = db
        .query_one(
            "SELECT pg_get_userbyid(nspowner)::text FROM pg_namespace WHERE nspname = $1",
            &[&org.schema_name],
        )
        .await
        .expect("the empty schema")
        .get(0);
    assert_eq!(owner, org.db_user);
}

#[tokio::test(flavor = "multi_thread")]
async fn validate_names_reports_problems_of_a_proposed_set() {
    let etl = TestEtl::start(|_| {}).await;
    let mut client = etl.client().await;
    let long = "Very long encounter type name "
        .repeat(4)
        .trim()
        .to_string();
    assert!(long.len() >= 100);
    let encounter = |name: &str| pb::ProposedEncounterType {
        name: name.to_string(),
        subject_type_name: "Individual".into(),
        program_name: "Maternal and Child Health Programme".into(),
        has_cancel_form: true,
    };
    let response = client
        .validate_names(pb::ValidateNamesRequest {
            target: Some(pb::validate_names_request::Target::Proposed(
                pb::ProposedSchema {
                    subject_types: vec![pb::ProposedSubjectType {
                        name: "Individual".into(),
                    }],
                    programs: vec![pb::ProposedProgram {
                        name: "Maternal and Child Health Programme".into(),
                        subject_type_name: "Individual".into(),
                        has_exit_form: true,
                    }],
                    encounter_types: vec![
                        encounter("Antenatal Care Visit One"),
                        encounter("Antenatal Care Visit Two"),
                        encounter(&long),
                        // A general encounter, so the whole name fits in 63 bytes.
                        pb::ProposedEncounterType {
                            name: "प्रसव पूर्व जांच".into(),
                            subject_type_name: "Individual".into(),
                            program_name: String::new(),
                            has_cancel_form: false,
                        },
                    ],
                },
            )),
        })
        .await
        .expect("validate")
        .into_inner();

    let names: Vec<&str> = response.tables.iter().map(|t| t.name.as_str()).collect();
    let unique: std::collections::HashSet<&&str> = names.iter().collect();
    assert_eq!(
        unique.len(),
        names.len(),
        "planned names must be distinct: {names:?}"
    );
    assert!(names.iter().all(|n| n.len() <= 63), "{names:?}");
    assert!(
        names.contains(&"individual_प्रसव_पूर्व_जांच"),
        "the Hindi name must stay Hindi: {names:?}"
    );
    let kinds = |kind: pb::ProblemKind| {
        response
            .problems
            .iter()
            .filter(|p| p.kind == kind as i32)
            .collect::<Vec<_>>()
    };
    let reference = kinds(pb::ProblemKind::ReferenceCollision);
    assert!(
        reference
            .iter()
            .any(|p| p.severity == pb::Severity::Warning as i32
                && p.names.iter().any(|n| n.contains("Visit One"))
                && p.names.iter().any(|n| n.contains("Visit Two"))),
        "the six-character pair must be a reference-system warning: {:#?}",
        response.problems
    );
    assert!(
        !kinds(pb::ProblemKind::Shortened).is_empty(),
        "the 100-character name is shortened"
    );
    assert!(
        !kinds(pb::ProblemKind::ReferenceNonAscii).is_empty(),
        "Hindi is lost by the reference system"
    );
    assert!(
        response.valid,
        "warnings and notices only: {:#?}",
        response.problems
    );

    let empty = client
        .validate_names(pb::ValidateNamesRequest {
            target: Some(pb::validate_names_request::Target::Proposed(
                pb::ProposedSchema {
                    subject_types: vec![pb::ProposedSubjectType { name: "!!!".into() }],
                    ..Default::default()
                },
            )),
        })
        .await
        .expect("validate")
        .into_inner();
    assert!(!empty.valid);
    assert!(empty.problems.iter().any(|p| p.kind
        == pb::ProblemKind::EmptyAfterNormalisation as i32
        && p.severity == pb::Severity::Error as i32));

    let missing = client
        .validate_names(pb::ValidateNamesRequest { target: None })
        .await
        .expect_err("no target");
    assert_eq!(missing.code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread")]
async fn validate_names_for_an_organisation_plans_its_current_tables() {
    let (etl, world, _db) = start(&Spec::default(), 3600).await;
    let org = &world.organisations[0];
    let mut client = etl.client().await;
    let response = client
        .validate_names(pb::ValidateNamesRequest {
            target: Some(pb::validate_names_request::Target::Entity(org_entity(
                &org.uuid,
            ))),
        })
        .await
        .expect("validate")
        .into_inner();
    assert_eq!(response.schema_name, org.schema_name);
    assert!(response.tables.len() > 5);
    assert!(response.valid, "{:#?}", response.problems);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_run_is_recorded_and_the_schedule_continues() {
    let (etl, world, db) = start(&Spec::default(), 1).await;
    let org = &world.organisations[0];
    let entity = org_entity(&org.uuid);
    let mut client = etl.client().await;

    // Make the source unreadable for the service's runs.
    db.batch_execute("ALTER TABLE program_encounter RENAME TO program_encounter_gone")
        .await
        .expect("break source");
    client
        .enable_analytics(pb::EnableAnalyticsRequest {
            entity: Some(entity.clone()),
        })
        .await
        .expect("enable");
    let failed = wait_for_run_after(&mut client, &entity, 0).await;
    assert_eq!(failed.status, pb::RunStatus::Failed as i32);
    assert!(
        !failed.error.is_empty() && !failed.error.contains('\n'),
        "{:?}",
        failed.error
    );
    assert!(
        failed.error_detail.contains("program_encounter"),
        "{}",
        failed.error_detail
    );

    db.batch_execute("ALTER TABLE program_encounter_gone RENAME TO program_encounter")
        .await
        .expect("repair source");
    // The schedule keeps going (1 s interval): a later run succeeds.
    let started = Instant::now();
    loop {
        let run = wait_for_run_after(&mut client, &entity, failed.id).await;
        if succeeded(&run) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no successful run after repair"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_run_twenty_organisations_without_overlap() {
    let spec = Spec {
        organisations: 20,
        size: Size {
            subjects_per_type: 2,
            encounters_per_enrolment: 1,
            encounters_per_subject: 1,
        },
        ..Spec::default()
    };
    let (etl, world, db) = start(&spec, 2).await;
    let second = integration_tests::services::start_etl_on(&etl.db.url, |c| {
        c.etl.interval_seconds = Some(2);
        c.etl.scheduler_poll_ms = 200;
        c.etl.sync_offset_seconds = 0;
        c.etl.lease_seconds = 5;
    })
    .await;
    let mut client = etl.client().await;
    for org in &world.organisations {
        client
            .enable_analytics(pb::EnableAnalyticsRequest {
                entity: Some(org_entity(&org.uuid)),
            })
            .await
            .expect("enable");
    }
    let started = Instant::now();
    loop {
        let ran: i64 = db
            .query_one(
                "SELECT count(DISTINCT entity_uuid) FROM etl_service.etl_run WHERE status = 'succeeded'",
                &[],
            )
            .await
            .expect("ran")
            .get(0);
        if ran == 20 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "only {ran} of 20 ran"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Let a few more scheduled rounds happen on both replicas.
    tokio::time::sleep(Duration::from_secs(4)).await;
    second.stop().await.expect("second replica stops");

    let overlaps = integration_tests::etl::overlapping_runs(&db).await;
    assert_eq!(overlaps, 0, "an organisation ran twice at once");
    let failed: Vec<String> = db
        .query(
            "SELECT coalesce(error, '') FROM etl_service.etl_run WHERE status = 'failed'",
            &[],
        )
        .await
        .expect("failed")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(failed.is_empty(), "runs failed: {failed:?}");
    let workers: i64 = db
        .query_one(
            "SELECT count(DISTINCT worker) FROM etl_service.etl_run WHERE status = 'succeeded'",
            &[],
        )
        .await
        .expect("workers")
        .get(0);
    assert_eq!(workers, 2, "both replicas should have run organisations");
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_job_run_streams_until_the_outcome() {
    let (etl, world, _db) = start(&Spec::default(), 3600).await;
    let org = &world.organisations[0];
    let entity = org_entity(&org.uuid);
    let mut client = etl.client().await;
    let run = client
        .run_now(pb::RunNowRequest {
            entity: Some(entity.clone()),
        })
        .await
        .expect("run now")
        .into_inner()
        .run
        .expect("run");
    let mut stream = client
        .watch_job_run(pb::WatchJobRunRequest {
            target: Some(pb::watch_job_run_request::Target::RunId(run.id)),
        })
        .await
        .expect("watch")
        .into_inner();
    let mut kinds = Vec::new();
    let mut last = None;
    while let Some(event) = stream.message().await.expect("event") {
        kinds.push(event.kind);
        last = Some(event);
    }
    let last = last.expect("at least one event");
    assert_eq!(last.kind, pb::RunEventKind::RunFinished as i32);
    let final_run = last.run.expect("final run");
    assert!(succeeded(&final_run), "{}", final_run.error);
    assert_eq!(kinds.first(), Some(&(pb::RunEventKind::RunQueued as i32)));
    let finished_tables = kinds
        .iter()
        .filter(|k| **k == pb::RunEventKind::TableFinished as i32)
        .count();
    assert_eq!(finished_tables, final_run.tables.len());
    assert!(kinds.contains(&(pb::RunEventKind::RunStarted as i32)));

    let unknown = client
        .watch_job_run(pb::WatchJobRunRequest {
            target: Some(pb::watch_job_run_request::Target::RunId(999_999)),
        })
        .await
        .expect_err("unknown run");
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread")]
async fn list_job_runs_pages_newest_first() {
    let (etl, world, _db) = start(&Spec::default(), 3600).await;
    let org = &world.organisations[0];
    let entity = org_entity(&org.uuid);
    let mut client = etl.client().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let run = client
            .run_now(pb::RunNowRequest {
                entity: Some(entity.clone()),
            })
            .await
            .expect("run now")
            .into_inner()
            .run
            .expect("run");
        let done = wait_for_run_after(&mut client, &entity, run.id - 1).await;
        ids.push(done.id);
    }
    let page = |token: String| pb::ListJobRunsRequest {
        entity: Some(entity.clone()),
        page_size: 2,
        page_token: token,
    };
    let first = client
        .list_job_runs(page(String::new()))
        .await
        .expect("page 1")
        .into_inner();
    assert_eq!(
        first.runs.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![ids[2], ids[1]]
    );
    assert!(!first.next_page_token.is_empty());
    let second = client
        .list_job_runs(page(first.next_page_token))
        .await
        .expect("page 2")
        .into_inner();
    assert_eq!(
        second.runs.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![ids[0]]
    );
    assert!(second.next_page_token.is_empty());

    let bad = client
        .list_job_runs(page("garbage".into()))
        .await
        .expect_err("bad token");
    assert_eq!(bad.code(), Code::InvalidArgument);
    let negative = client
        .list_job_runs(pb::ListJobRunsRequest {
            entity: None,
            page_size: -1,
            page_token: String::new(),
        })
        .await
        .expect_err("negative size");
    assert_eq!(negative.code(), Code::InvalidArgument);
}

/// A counter's value in a Prometheus scrape (0 when absent).
fn metric(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .filter(|(n, _)| *n == name || n.starts_with(&format!("{name}{{")))
        .filter_map(|(_, v)| v.trim().parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_move_after_a_run() {
    let (etl, world, _db) = start(&Spec::default(), 3600).await;
    let org = &world.organisations[0];
    let entity = org_entity(&org.uuid);
    let before = etl.service.scrape().await;
    let mut client = etl.client().await;
    client
        .enable_analytics(pb::EnableAnalyticsRequest {
            entity: Some(entity.clone()),
        })
        .await
        .expect("enable");
    let run = wait_for_run_after(&mut client, &entity, 0).await;
    assert!(succeeded(&run), "{run:?}");
    // The recorder is shared by every App in this process, so compare deltas.
    let after = etl.service.scrape().await;
    for name in ["etl_runs_started_total", "etl_runs_succeeded_total"] {
        assert!(
            metric(&after, name) >= metric(&before, name) + 1.0,
            "{name} did not move:\n{after}"
        );
    }
    assert!(
        metric(&after, "etl_rows_upserted_total")
            >= metric(&before, "etl_rows_upserted_total") + upserted(&run) as f64
    );
    assert!(after.contains("etl_run_duration_seconds"), "{after}");
    assert!(after.contains("etl_organisations_enabled"), "{after}");
    assert!(after.contains("etl_scheduler_queue_depth"), "{after}");
}

/// GetJob callers of one job share reads (`service_kit::fresh_reads`), but
/// each answer must come from a read that started after the call arrived.
/// A read is held in flight after it has read the organisation (a lock on
/// `etl_job` stops its next statement); the organisation is then renamed
/// and GetJob called: that call must wait for a read of its own and show
/// the new name, never share the held read that saw the old one.
#[tokio::test(flavor = "multi_thread")]
async fn get_job_never_answers_from_a_read_that_started_before_the_call() {
    let (etl, world, db) = start(&Spec::default(), 3600).await;
    let org = &world.organisations[0];
    let entity = org_entity(&org.uuid);
    let before = get_job(&mut etl.client().await, &entity).await;

    let holder = etl.db.client().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE etl_service.etl_job IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock etl_job");
    let held = tokio::spawn({
        let mut c = etl.client().await;
        let entity = entity.clone();
        async move { get_job(&mut c, &entity).await }
    });
    let started = Instant::now();
    loop {
        let waiting: i64 = db
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE wait_event_type = 'Lock' AND query LIKE '%FROM etl_service.etl_job%'",
                &[],
            )
            .await
            .expect("pg_stat_activity")
            .get(0);
        if waiting > 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no GetJob read waited for the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    db.execute(
        "UPDATE public.organisation SET name = name || ' (renamed)' WHERE uuid = $1",
        &[&org.uuid],
    )
    .await
    .expect("rename");
    let after = tokio::spawn({
        let mut c = etl.client().await;
        let entity = entity.clone();
        async move { get_job(&mut c, &entity).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!after.is_finished(), "answered while every read was held");
    holder.batch_execute("COMMIT").await.expect("unlock");

    let held = held.await.expect("held call");
    let after = after.await.expect("later call");
    assert_eq!(
        held.entity_name, before.entity_name,
        "the held read began before the rename"
    );
    assert_eq!(
        after.entity_name,
        format!("{} (renamed)", before.entity_name),
        "a call made after the rename was answered from a read made before it"
    );
}

/// A failure inside PostgreSQL reaches the caller in words (what failed),
/// not as PostgreSQL's text; the cause is kept in the run's `error_detail`
/// for operators.
#[tokio::test(flavor = "multi_thread")]
async fn a_database_failure_is_said_in_words_and_its_cause_kept_in_error_detail() {
    let (etl, world, db) = start(&Spec::default(), 3600).await;
    let org = &world.organisations[0];
    let entity = org_entity(&org.uuid);
    let mut client = etl.client().await;
    // A release of Avni without the column the engine reads.
    db.batch_execute("ALTER TABLE subject_type RENAME COLUMN allow_middle_name TO gone_column")
        .await
        .expect("rename the column");

    let refused = client
        .validate_names(pb::ValidateNamesRequest {
            target: Some(pb::validate_names_request::Target::Entity(org_entity(
                &org.uuid,
            ))),
        })
        .await
        .expect_err("the source cannot be read");
    assert_eq!(refused.code(), Code::Internal);
    assert_eq!(
        refused.message(),
        "a database error stopped reading the source's subject types (subject_type, \
         operational_subject_type); the cause is in the service's log"
    );

    client
        .enable_analytics(pb::EnableAnalyticsRequest {
            entity: Some(entity.clone()),
        })
        .await
        .expect("enable");
    let run = wait_for_run_after(&mut client, &entity, 0).await;
    assert_eq!(run.status, pb::RunStatus::Failed as i32);
    assert!(
        run.error_detail.contains("allow_middle_name"),
        "the cause is kept for operators: {}",
        run.error_detail
    );
}

/// Watchers waiting for an entity's next run hold no pooled connection
/// while they wait: more idle watchers than the API pool has connections,
/// and other calls still work.
#[tokio::test(flavor = "multi_thread")]
async fn idle_watchers_do_not_hold_the_api_pool() {
    const POOL: u32 = 2;
    let etl = TestEtl::start(|c| {
        c.database.pool_size = POOL;
        c.etl.scheduler_enabled = false;
    })
    .await;
    let db = etl.db.client().await;
    let world = avni::generate(&db, &Spec::default()).await;
    let org = &world.organisations[0];
    let entity = org_entity(&org.uuid);
    let mut watchers = Vec::new();
    for _ in 0..(POOL * 3) {
        let mut client = etl.client().await;
        let entity = entity.clone();
        watchers.push(tokio::spawn(async move {
            client
                .watch_job_run(pb::WatchJobRunRequest {
                    target: Some(pb::watch_job_run_request::Target::Entity(entity)),
                })
                .await
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut client = etl.client().await;
    for _ in 0..5 {
        let started = Instant::now();
        let job = client
            .get_job(pb::GetJobRequest {
                entity: Some(entity.clone()),
            })
            .await;
        assert!(
            job.is_ok(),
            "GetJob with {} idle watchers failed: {:?}",
            POOL * 3,
            job.err()
        );
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    for w in &watchers {
        assert!(!w.is_finished(), "the watchers are still waiting");
    }
    for w in watchers {
        w.abort();
    }
}

/// BatchGetJobs without entities pages the enabled jobs; an organisation
/// voided since it was enabled, and an unknown one asked for by name, are
/// entries of the reply's errors, and every other job is still returned.
#[tokio::test(flavor = "multi_thread")]
async fn batch_get_jobs_pages_and_reports_a_voided_organisation_per_entry() {
    let etl = TestEtl::start(|c| c.etl.scheduler_enabled = false).await;
    let db = etl.db.client().await;
    let spec = Spec {
        organisations: 5,
        ..Spec::default()
    };
    let world = avni::generate(&db, &spec).await;
    let mut client = etl.client().await;
    for org in &world.organisations {
        client
            .enable_analytics(pb::EnableAnalyticsRequest {
                entity: Some(org_entity(&org.uuid)),
            })
            .await
            .expect("enable");
    }
    let voided = &world.organisations[1];
    db.execute(
        "UPDATE organisation SET is_voided = true WHERE uuid = $1",
        &[&voided.uuid],
    )
    .await
    .expect("void an organisation");

    let mut jobs = Vec::new();
    let mut errors = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = client
            .batch_get_jobs(pb::BatchGetJobsRequest {
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("a page of jobs")
            .into_inner();
        pages += 1;
        assert!(
            page.jobs.len() + page.errors.len() <= 2,
            "page {pages} too large"
        );
        jobs.extend(page.jobs);
        errors.extend(page.errors);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    let uuids: Vec<String> = jobs
        .iter()
        .filter_map(|j| j.entity.as_ref().map(|e| e.uuid.clone()))
        .collect();
    let others: Vec<String> = world
        .organisations
        .iter()
        .filter(|o| o.uuid != voided.uuid)
        .map(|o| o.uuid.clone())
        .collect();
    assert_eq!(uuids, others);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0].entity.as_ref().map(|e| e.uuid.clone()),
        Some(voided.uuid.clone())
    );
    assert_eq!(errors[0].code, Code::NotFound as i32);
    assert!(
        errors[0].message.contains(&voided.uuid),
        "{}",
        errors[0].message
    );

    let unknown = "0b7f6d1e-4c4a-4f0e-9a57-2f1d3c5b6a70";
    let named = client
        .batch_get_jobs(pb::BatchGetJobsRequest {
            entities: vec![
                org_entity(&world.organisations[0].uuid),
                org_entity(unknown),
            ],
            ..Default::default()
        })
        .await
        .expect("a known and an unknown organisation")
        .into_inner();
    assert_eq!(named.jobs.len(), 1);
    assert_eq!(named.errors.len(), 1);
    assert_eq!(named.errors[0].code, Code::NotFound as i32);
    assert!(named.next_page_token.is_empty());
}

/// RecreateSchema waits for a run in progress at most
/// etl.recreate_lock_wait_seconds, then fails with ABORTED saying so.
#[tokio::test(flavor = "multi_thread")]
async fn recreate_schema_waits_for_the_lock_at_most_its_limit() {
    let etl = TestEtl::start(|c| {
        c.etl.scheduler_enabled = false;
        c.etl.recreate_lock_wait_seconds = 1;
    })
    .await;
    let db = etl.db.client().await;
    let world = avni::generate(&db, &Spec::default()).await;
    let org = &world.organisations[0];
    let mut client = etl.client().await;
    // A run elsewhere (run-once in another process) holds the lock.
    let lock = etl_service::engine::lock::EntityLock::acquire(&etl.db.url, &org.schema_name)
        .await
        .expect("lock");
    let started = Instant::now();
    let refused = client
        .recreate_schema(pb::RecreateSchemaRequest {
            entity: Some(org_entity(&org.uuid)),
            skip_rebuild: true,
        })
        .await
        .expect_err("the lock is held");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(refused.code(), Code::Aborted, "{}", refused.message());
    assert!(
        refused
            .message()
            .contains("etl.recreate_lock_wait_seconds (1 s)")
            && refused.message().contains(&org.schema_name),
        "{}",
        refused.message()
    );
    lock.release().await.expect("release");
    client
        .recreate_schema(pb::RecreateSchemaRequest {
            entity: Some(org_entity(&org.uuid)),
            skip_rebuild: true,
        })
        .await
        .expect("recreate once the lock is free");
}
