//! The forms migrator against a real PostgreSQL and the fake upstream: the
//! sample page, draining a backlog, page boundaries, repeats, a failure
//! before the batch commits, ReprocessErrors, the gRPC listings, and the
//! `poll-once` command.

use avni_proto::migrator::v1 as pb;
use integration_tests::binaries::{binary, run_binary};
use integration_tests::fake_upstream::{
    Data, FakeUpstream, Fault, Generator, load_elements, sample_path,
};
use integration_tests::migrator::{
    PATIENCE, assert_generated_exactly_once, count, form_rows, scalar, source, wait_for, watermark,
};
use integration_tests::services::TestMigrator;
use migrator_service::config::Secret;
use serde_json::Value;

const SAMPLE_WATERMARK: i64 = 1_424_200_000_003;

async fn start_on_sample() -> (FakeUpstream, TestMigrator) {
    let upstream = FakeUpstream::sample().await;
    upstream.require_basic_auth("drishti-user", "s3cret pass");
    let mut settings = source("drishti", &upstream, 100, 3600.0);
    settings.username = Some("drishti-user".into());
    settings.password = Some(Secret::new("s3cret pass"));
    let migrator = TestMigrator::start(|c| c.sources = vec![settings]).await;
    let db = migrator.db.client().await;
    wait_for("the sample page to be committed", PATIENCE, || async {
        watermark(&db, "drishti").await == SAMPLE_WATERMARK
    })
    .await;
    (upstream, migrator)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sample_page_writes_four_submissions_and_three_errors() {
    let (_upstream, migrator) = start_on_sample().await;
    let db = migrator.db.client().await;

    let ec = db
        .query_one(
            "SELECT anm_id, entity_id, eligible_couple_id, wife_name, husband_name, wife_age, \
             number_of_living_children, registration_date::text, family_planning_method, \
             (extract(epoch FROM client_version) * 1000)::int8, (extract(epoch FROM server_version) * 1000)::int8, \
             form_data_definition_version, form_name \
             FROM ec_registration",
            &[],
        )
        .await
        .expect("exactly one ec_registration row");
    assert_eq!(ec.get::<_, Option<String>>(0).as_deref(), Some("anm042"));
    assert_eq!(
        ec.get::<_, Option<String>>(1).as_deref(),
        Some("7d1e0c3b-5a9f-4e2d-8c61-2b3a4c5d6e7f")
    );
    assert_eq!(
        ec.get::<_, Option<String>>(2).as_deref(),
        Some("7d1e0c3b-5a9f-4e2d-8c61-2b3a4c5d6e7f")
    );
    assert_eq!(ec.get::<_, Option<String>>(3).as_deref(), Some("Lakshmi"));
    assert_eq!(ec.get::<_, Option<String>>(4).as_deref(), Some("Ravi"));
    assert_eq!(ec.get::<_, Option<i32>>(5), Some(24));
    assert_eq!(ec.get::<_, Option<i32>>(6), Some(1));
    assert_eq!(
        ec.get::<_, Option<String>>(7).as_deref(),
        Some("2014-03-11")
    );
    assert_eq!(ec.get::<_, Option<String>>(8), None, "no answer is NULL");
    assert_eq!(ec.get::<_, Option<i64>>(9), Some(1_394_521_200_000));
    assert_eq!(ec.get::<_, Option<i64>>(10), Some(1_394_524_800_123));
    assert_eq!(ec.get::<_, Option<String>>(11).as_deref(), Some("1"));
    assert_eq!(
        ec.get::<_, Option<String>>(12).as_deref(),
        Some("ec_registration")
    );

    let anc = db
        .query_one(
            "SELECT mother_id, ec_id, lmp::text, edd::text, is_high_risk, weight::text, height::text FROM anc_registration",
            &[],
        )
        .await
        .expect("exactly one anc_registration row");
    assert_eq!(
        anc.get::<_, Option<String>>(0).as_deref(),
        Some("1c9e2f40-8a7b-4d3c-9e1f-5a6b7c8d9e0f")
    );
    assert_eq!(
        anc.get::<_, Option<String>>(1).as_deref(),
        Some("7d1e0c3b-5a9f-4e2d-8c61-2b3a4c5d6e7f")
    );
    assert_eq!(
        anc.get::<_, Option<String>>(2).as_deref(),
        Some("2014-05-04"),
        "RFC 1123 date"
    );
    assert_eq!(
        anc.get::<_, Option<String>>(3).as_deref(),
        Some("2015-02-08")
    );
    assert_eq!(anc.get::<_, Option<bool>>(4), Some(false));
    assert_eq!(
        anc.get::<_, Option<String>>(5).as_deref(),
        Some("48"),
        "\"48.\" is 48"
    );
    assert_eq!(anc.get::<_, Option<String>>(6), None, "NaN is no value");

    let visit = db
        .query_one(
            "SELECT instance_id, anc_visit_number, anc_visit_date::text, bp_systolic, bp_diastolic, hb_level::text, next_visit_date::text FROM anc_visit",
            &[],
        )
        .await
        .expect("exactly one anc_visit row (the other failed)");
    assert_eq!(
        visit.get::<_, String>(0),
        "3c7e2a4f-8b9d-4cae-9f10-2b3c4d5e6f70"
    );
    assert_eq!(visit.get::<_, Option<i32>>(1), Some(1));
    assert_eq!(
        visit.get::<_, Option<String>>(2).as_deref(),
        Some("2014-06-02")
    );
    assert_eq!(visit.get::<_, Option<i32>>(3), Some(118));
    assert_eq!(visit.get::<_, Option<i32>>(4), Some(76));
    assert_eq!(visit.get::<_, Option<String>>(5), None, "\"\" is no value");
    assert_eq!(
        visit.get::<_, Option<String>>(6),
        None,
        "Invalid Date is no value"
    );

    let pnc = db
        .query_one(
            "SELECT id, mother_id, discharge_date::text, visit_date::text, delivery_outcome, client_version > server_version FROM pnc_visit",
            &[],
        )
        .await
        .expect("exactly one pnc_visit row");
    let pnc_id: i64 = pnc.get(0);
    assert_eq!(
        pnc.get::<_, Option<String>>(2).as_deref(),
        Some("2015-02-12"),
        "the last repeated field with a value wins"
    );
    assert_eq!(
        pnc.get::<_, Option<String>>(3).as_deref(),
        Some("2015-02-14")
    );
    assert_eq!(
        pnc.get::<_, Option<String>>(4).as_deref(),
        Some("live_birth")
    );
    assert_eq!(
        pnc.get::<_, Option<bool>>(5),
        Some(true),
        "serverVersion below clientVersion is kept as sent"
    );

    let children = db
        .query(
            "SELECT pnc_visit_id, child_id, weight::text, temperature::text, gender FROM child_pnc_visit ORDER BY child_id",
            &[],
        )
        .await
        .expect("children");
    assert_eq!(children.len(), 2);
    for child in &children {
        assert_eq!(child.get::<_, i64>(0), pnc_id, "linked to the parent row");
    }
    assert_eq!(
        children[0].get::<_, Option<String>>(1).as_deref(),
        Some("5e0b7a21-3c4d-4e5f-8a9b-0c1d2e3f4a5b")
    );
    assert_eq!(
        children[0].get::<_, Option<String>>(2).as_deref(),
        Some("2.9")
    );
    assert_eq!(
        children[0].get::<_, Option<String>>(3).as_deref(),
        Some("99.1")
    );
    assert_eq!(
        children[0].get::<_, Option<String>>(4).as_deref(),
        Some("female")
    );
    assert_eq!(
        children[1].get::<_, Option<String>>(2).as_deref(),
        Some("3")
    );
    assert_eq!(children[1].get::<_, Option<String>>(3), None);

    // The three failures, with reasons for people, full causes and raw payloads.
    let elements = load_elements(&sample_path()).expect("sample");
    let errors = db
        .query(
            "SELECT instance_id, form_name, failure_reason, detailed_reason, raw_payload, server_version, resolved_at IS NULL \
             FROM error_audit ORDER BY id",
            &[],
        )
        .await
        .expect("errors");
    assert_eq!(errors.len(), 3);
    let expected = [
        (4, "ec_edit_v9", "Unknown form name: ec_edit_v9"),
        (
            5,
            "anc_visit",
            "Invalid value for ancVisitNumber: \"second\" is not a number",
        ),
        (
            6,
            "ec_registration",
            "Invalid submission: formInstance is not valid JSON",
        ),
    ];
    for (row, (index, form, reason)) in errors.iter().zip(expected) {
        let element = &elements[index];
        assert_eq!(
            row.get::<_, Option<String>>(0).as_deref(),
            element["instanceId"].as_str()
        );
        assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some(form));
        assert_eq!(row.get::<_, String>(2), reason);
        let detail: String = row.get(3);
        assert!(
            detail.len() > reason.len(),
            "the full cause is kept: {detail}"
        );
        let raw: Value =
            serde_json::from_str(&row.get::<_, String>(4)).expect("raw payload is JSON");
        assert_eq!(&raw, element, "the raw payload is the element as received");
        assert_eq!(
            row.get::<_, Option<i64>>(5),
            element["serverVersion"]
                .as_str()
                .and_then(|s| s.parse().ok())
        );
        assert!(row.get::<_, bool>(6));
    }
    let anc_detail: String = errors[1].get(3);
    assert!(
        anc_detail.contains("anc_visit.anc_visit_number"),
        "{anc_detail}"
    );

    // The archive holds all seven; one audit row carries the watermark.
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM form_submission WHERE status = 'written'"
        )
        .await,
        4
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM form_submission WHERE status = 'failed'"
        )
        .await,
        3
    );
    let audit = db
        .query_one(
            "SELECT last_polled_timestamp, total_no_of_form_entries, successfully_processed_form_entries, failed_form_entries FROM migration_audit",
            &[],
        )
        .await
        .expect("one audit row for the one non-empty batch");
    assert_eq!(audit.get::<_, i64>(0), SAMPLE_WATERMARK);
    assert_eq!(audit.get::<_, i32>(1), 7);
    assert_eq!(audit.get::<_, i32>(2), 4);
    assert_eq!(audit.get::<_, i32>(3), 3);

    // The same through the API.
    let mut client = migrator.client().await;
    let status = client
        .get_status(pb::GetStatusRequest {
            source: "drishti".into(),
        })
        .await
        .expect("status")
        .into_inner();
    let s = &status.sources[0];
    assert_eq!(s.watermark, SAMPLE_WATERMARK);
    assert_eq!(
        (s.total_written, s.total_failed, s.unresolved_errors),
        (4, 3, 3)
    );
    assert_eq!(s.last_error, "");
    assert!(!s.url.contains("s3cret"), "no credentials in the status");
    assert_eq!(
        s.last_batch.as_ref().map(|b| b.failed_form_entries),
        Some(3)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_lists_pages_filters_and_refuses_bad_input() {
    let (_upstream, migrator) = start_on_sample().await;
    let mut client = migrator.client().await;

    let first = client
        .list_errors(pb::ListErrorsRequest {
            page_size: 2,
            include_payload: true,
            ..Default::default()
        })
        .await
        .expect("page 1")
        .into_inner();
    assert_eq!(first.errors.len(), 2);
    assert!(first.errors[0].id > first.errors[1].id, "newest first");
    assert!(!first.errors[0].raw_payload.is_empty());
    assert!(!first.next_page_token.is_empty());
    let second = client
        .list_errors(pb::ListErrorsRequest {
            page_size: 2,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .expect("page 2")
        .into_inner();
    assert_eq!(second.errors.len(), 1);
    assert!(second.next_page_token.is_empty());
    assert!(
        second.errors[0].raw_payload.is_empty(),
        "payload only when asked"
    );

    let anc = client
        .list_errors(pb::ListErrorsRequest {
            form_name: "anc_visit".into(),
            ..Default::default()
        })
        .await
        .expect("by form")
        .into_inner();
    assert_eq!(anc.errors.len(), 1);
    assert_eq!(anc.errors[0].form_name, "anc_visit");

    let audits = client
        .list_audits(pb::ListAuditsRequest {
            source: "drishti".into(),
            ..Default::default()
        })
        .await
        .expect("audits")
        .into_inner();
    assert_eq!(audits.audits.len(), 1);
    assert_eq!(audits.audits[0].last_polled_timestamp, SAMPLE_WATERMARK);

    let bad_token = client
        .list_audits(pb::ListAuditsRequest {
            page_token: "not-a-token".into(),
            ..Default::default()
        })
        .await
        .expect_err("bad token");
    assert_eq!(bad_token.code(), tonic::Code::InvalidArgument);
    let negative = client
        .list_errors(pb::ListErrorsRequest {
            page_size: -1,
            ..Default::default()
        })
        .await
        .expect_err("negative page size");
    assert_eq!(negative.code(), tonic::Code::InvalidArgument);
    for status in [
        client
            .get_status(pb::GetStatusRequest {
                source: "nope".into(),
            })
            .await
            .map(|_| ()),
        client
            .run_now(pb::RunNowRequest {
                source: "nope".into(),
            })
            .await
            .map(|_| ()),
        client
            .list_audits(pb::ListAuditsRequest {
                source: "nope".into(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        client
            .list_errors(pb::ListErrorsRequest {
                source: "nope".into(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        client
            .reprocess_errors(pb::ReprocessErrorsRequest {
                source: "nope".into(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
    ] {
        assert_eq!(
            status.expect_err("unknown source").code(),
            tonic::Code::NotFound
        );
    }
    let bad_ids = client
        .reprocess_errors(pb::ReprocessErrorsRequest {
            error_ids: vec![-3],
            ..Default::default()
        })
        .await
        .expect_err("negative id");
    assert_eq!(bad_ids.code(), tonic::Code::InvalidArgument);
    let unauthenticated = migrator
        .client_with(None)
        .await
        .get_status(pb::GetStatusRequest::default())
        .await
        .expect_err("no token");
    assert_eq!(unauthenticated.code(), tonic::Code::Unauthenticated);

    let woken = client
        .run_now(pb::RunNowRequest::default())
        .await
        .expect("run now")
        .into_inner();
    assert_eq!(woken.sources, vec!["drishti".to_string()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn reprocess_errors_writes_what_a_new_migration_made_possible() {
    let (_upstream, migrator) = start_on_sample().await;
    let db = migrator.db.client().await;
    let mut client = migrator.client().await;

    // Before the table exists, retrying changes nothing.
    let before = client
        .reprocess_errors(pb::ReprocessErrorsRequest {
            form_name: "ec_edit_v9".into(),
            ..Default::default()
        })
        .await
        .expect("reprocess")
        .into_inner();
    assert_eq!(
        (before.attempted, before.resolved, before.still_failing),
        (1, 0, 1)
    );

    // What a later migration adds: the form table of ec_edit_v9.
    db.batch_execute(
        "CREATE TABLE ec_edit_v9 (
            id bigserial PRIMARY KEY, anm_id text, instance_id text NOT NULL UNIQUE, entity_id text,
            form_name text, client_version timestamptz, server_version timestamptz,
            form_data_definition_version text, eligible_couple_id text)",
    )
    .await
    .expect("migration");

    let after = client
        .reprocess_errors(pb::ReprocessErrorsRequest::default())
        .await
        .expect("reprocess")
        .into_inner();
    assert_eq!(after.attempted, 3);
    assert_eq!(after.resolved, 1, "only ec_edit_v9 can be written now");
    assert_eq!(after.still_failing, 2);
    let row = db
        .query_one(
            "SELECT instance_id, eligible_couple_id FROM ec_edit_v9",
            &[],
        )
        .await
        .expect("the reprocessed row");
    assert_eq!(
        row.get::<_, String>(0),
        "5e904c61-adbf-4ec0-b132-4d5e6f708192"
    );
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("7d1e0c3b-5a9f-4e2d-8c61-2b3a4c5d6e7f")
    );
    let resolved: Vec<i64> = db
        .query(
            "SELECT id FROM error_audit WHERE resolved_at IS NOT NULL",
            &[],
        )
        .await
        .expect("resolved")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(resolved, after.resolved_ids);
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM form_submission WHERE status = 'written' AND form_name = 'ec_edit_v9'").await,
        1
    );
    let open = client
        .list_errors(pb::ListErrorsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(
        open.errors.len(),
        2,
        "resolved errors are hidden unless asked for"
    );
    let all = client
        .list_errors(pb::ListErrorsRequest {
            include_resolved: true,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(all.errors.len(), 3);
    assert!(all.errors.iter().any(|e| e.resolved_time.is_some()));

    // Reprocessing again does not write the row twice.
    let again = client
        .reprocess_errors(pb::ReprocessErrorsRequest::default())
        .await
        .expect("reprocess")
        .into_inner();
    assert_eq!((again.attempted, again.resolved), (2, 0));
    assert_eq!(count(&db, "ec_edit_v9").await, 1);
    let status = client
        .get_status(pb::GetStatusRequest::default())
        .await
        .expect("status")
        .into_inner();
    assert_eq!(status.sources[0].total_written, 5);
    assert_eq!(status.sources[0].unresolved_errors, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backlog_of_ten_pages_drains_in_one_run() {
    let upstream = FakeUpstream::start(Data::Generated(Generator::new(100))).await;
    // An hour between polls: only the drain of the first run can write it all.
    let settings = source("drishti", &upstream, 10, 3600.0);
    let migrator = TestMigrator::start(|c| c.sources = vec![settings]).await;
    let db = migrator.db.client().await;
    wait_for("100 submissions", PATIENCE, || async {
        form_rows(&db).await.1 == 100
    })
    .await;
    let mut client = migrator.client().await;
    wait_for("the drain to end", PATIENCE, || {
        let mut client = client.clone();
        async move {
            let s = client
                .get_status(pb::GetStatusRequest::default())
                .await
                .expect("status")
                .into_inner();
            s.sources[0].state == pb::SourceState::Idle as i32
                && s.sources[0].last_poll_time.is_some()
        }
    })
    .await;
    assert_generated_exactly_once(&db, 100).await;
    let requests = upstream.requests();
    assert!(
        requests.len() >= 11,
        "at least 10 pages and an empty one: {requests:?}"
    );
    assert!(
        requests.iter().all(|(_, n)| *n == 10),
        "batch-size as configured"
    );
    assert!(count(&db, "migration_audit").await >= 10);
    let status = client
        .get_status(pb::GetStatusRequest::default())
        .await
        .expect("status")
        .into_inner();
    assert_eq!(
        status.sources[0].watermark,
        Generator::new(100).server_version(99)
    );
    assert_eq!(status.sources[0].lag_millis, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn submissions_sharing_a_server_version_across_pages_are_all_written() {
    // Four per serverVersion on pages of ten: every page ends inside a group.
    let shared = Generator {
        count: 62,
        base: 1_600_000_000_000,
        per_version: 4,
        seed: 1,
    };
    // Twenty-five per serverVersion: more than a page holds.
    let crowded = Generator {
        count: 60,
        base: 1_700_000_000_000,
        per_version: 25,
        seed: 2,
    };
    let up_shared = FakeUpstream::start(Data::Generated(shared)).await;
    let up_crowded = FakeUpstream::start(Data::Generated(crowded)).await;
    let sources = vec![
        source("shared", &up_shared, 10, 3600.0),
        source("crowded", &up_crowded, 10, 3600.0),
    ];
    let migrator = TestMigrator::start(|c| c.sources = sources).await;
    let db = migrator.db.client().await;
    wait_for("both sources drained", PATIENCE, || async {
        watermark(&db, "shared").await == shared.server_version(61)
            && watermark(&db, "crowded").await == crowded.server_version(59)
    })
    .await;
    let (total, distinct) = form_rows(&db).await;
    assert_eq!(distinct, 122, "every submission of both sources is written");
    assert_eq!(total, 122, "none twice");
    assert_eq!(count(&db, "child_pnc_visit").await, 2 * (15 + 15));
    assert_eq!(count(&db, "error_audit").await, 0);
    let processed = scalar(
        &db,
        "SELECT sum(successfully_processed_form_entries + duplicate_form_entries)::int8 FROM migration_audit",
    )
    .await;
    assert!(
        processed >= 122,
        "every element of both sources was taken: {processed}"
    );
    assert!(
        up_crowded.requests().iter().any(|(_, n)| *n > 10),
        "a page of one shared serverVersion is re-asked larger: {:?}",
        up_crowded.requests()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_served_twice_writes_nothing_twice() {
    let upstream = FakeUpstream::start(Data::Generated(Generator::new(40))).await;
    upstream.fail_next([
        Fault::Pass,
        Fault::RepeatLastPage,
        Fault::Pass,
        Fault::RepeatLastPage,
        Fault::RepeatLastPage,
    ]);
    let settings = source("drishti", &upstream, 10, 3600.0);
    let migrator = TestMigrator::start(|c| c.sources = vec![settings]).await;
    let db = migrator.db.client().await;
    wait_for("40 submissions", PATIENCE, || async {
        form_rows(&db).await.1 == 40
    })
    .await;
    wait_for("the last empty page", PATIENCE, || async {
        upstream
            .requests()
            .last()
            .is_some_and(|(t, _)| *t == Generator::new(40).server_version(39))
    })
    .await;
    assert_generated_exactly_once(&db, 40).await;
    let repeats = scalar(
        &db,
        "SELECT count(*) FROM migration_audit WHERE duplicate_form_entries = total_no_of_form_entries AND total_no_of_form_entries >= 10",
    )
    .await;
    assert!(repeats >= 2, "the repeated pages were received and skipped");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_before_the_commit_leaves_nothing_and_the_refetch_writes_once() {
    let upstream = FakeUpstream::start(Data::Generated(Generator::new(30))).await;
    let db_handle = integration_tests::migrator::migrated_repository().await;
    let db = db_handle.client().await;
    // Fails every batch at its last statement, after its form rows, errors
    // and archive rows were written in the same transaction.
    db.batch_execute(
        "CREATE TABLE fail_batches (reason text);
         INSERT INTO fail_batches VALUES ('injected failure before commit');
         CREATE FUNCTION fail_batch() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF EXISTS (SELECT 1 FROM fail_batches) THEN
             RAISE EXCEPTION 'injected failure before commit';
           END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER fail_batch BEFORE INSERT ON migration_audit
           FOR EACH ROW EXECUTE FUNCTION fail_batch();",
    )
    .await
    .expect("trigger");
    let settings = source("drishti", &upstream, 10, 0.2);
    let service = integration_tests::services::start_migrator_on(&db_handle.url, |c| {
        c.sources = vec![settings]
    })
    .await;
    wait_for("several failed attempts", PATIENCE, || async {
        upstream.request_count() >= 3
    })
    .await;
    for table in [
        "ec_registration",
        "anc_registration",
        "anc_visit",
        "pnc_visit",
        "child_pnc_visit",
        "form_submission",
        "error_audit",
        "migration_audit",
    ] {
        assert_eq!(
            count(&db, table).await,
            0,
            "{table}: nothing of a failed batch is kept"
        );
    }
    let channel = service.channel().await;
    let mut client =
        avni_proto::migrator::v1::forms_migrator_client::FormsMigratorClient::with_interceptor(
            channel,
            integration_tests::services::Bearer::new(Some(integration_tests::services::TEST_TOKEN)),
        );
    let status = client
        .get_status(pb::GetStatusRequest::default())
        .await
        .expect("status")
        .into_inner();
    assert!(
        status.sources[0].last_error.contains("injected failure"),
        "{}",
        status.sources[0].last_error
    );
    assert_eq!(status.sources[0].watermark, 0);

    db.batch_execute("DELETE FROM fail_batches")
        .await
        .expect("heal");
    wait_for("30 submissions", PATIENCE, || async {
        form_rows(&db).await.1 == 30
    })
    .await;
    wait_for("the drain to finish", PATIENCE, || async {
        watermark(&db, "drishti").await == Generator::new(30).server_version(29)
    })
    .await;
    assert_generated_exactly_once(&db, 30).await;
    drop(service);
}

#[tokio::test(flavor = "multi_thread")]
async fn poll_once_drains_a_source_and_prints_a_summary() {
    let upstream = FakeUpstream::sample().await;
    let db = integration_tests::migrator::migrated_repository().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("migrator.yaml");
    std::fs::write(
        &config,
        format!(
            "sources:\n  - name: drishti\n    url: {}\n    request_timeout_seconds: 2\n  - name: other\n    url: http://127.0.0.1:9/x\n",
            upstream.url()
        ),
    )
    .expect("config");
    let exe = binary("migrator-service", "migrator-service");
    let config_arg = config.to_string_lossy().to_string();
    let env = [("DATABASE_URL", db.url.as_str())];

    let ambiguous = run_binary(&exe, &["--config", &config_arg, "poll-once"], &env);
    assert!(!ambiguous.status.success());
    assert!(String::from_utf8_lossy(&ambiguous.stderr).contains("--source"));
    let unknown = run_binary(
        &exe,
        &["--config", &config_arg, "poll-once", "--source", "nope"],
        &env,
    );
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no source named \"nope\""));

    let run = tokio::task::spawn_blocking({
        let exe = exe.clone();
        let config_arg = config_arg.clone();
        let url = db.url.clone();
        move || {
            run_binary(
                &exe,
                &["--config", &config_arg, "poll-once", "--source", "drishti"],
                &[("DATABASE_URL", url.as_str())],
            )
        }
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "poll-once failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains(
            "drishti: 1 batches, 4 written, 3 failed, 0 duplicates skipped, watermark 1424200000003"
        ),
        "{stdout}"
    );
    let client = db.client().await;
    assert_eq!(watermark(&client, "drishti").await, SAMPLE_WATERMARK);

    // Nothing new: a second run writes nothing.
    let again = tokio::task::spawn_blocking({
        let (exe, config_arg, url) = (exe.clone(), config_arg.clone(), db.url.clone());
        move || {
            run_binary(
                &exe,
                &["--config", &config_arg, "poll-once", "--source", "drishti"],
                &[("DATABASE_URL", url.as_str())],
            )
        }
    })
    .await
    .expect("join");
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 batches, 0 written"));

    // An upstream that refuses: non-zero exit, a clear message.
    upstream.require_basic_auth("u", "p");
    let refused = tokio::task::spawn_blocking({
        let url = db.url.clone();
        move || {
            run_binary(
                &exe,
                &["--config", &config_arg, "poll-once", "--source", "drishti"],
                &[("DATABASE_URL", url.as_str())],
            )
        }
    })
    .await
    .expect("join");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("HTTP 401"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn form_mapping_renames_and_too_long_text_fails_instead_of_being_cut() {
    let upstream = FakeUpstream::sample().await;
    let db_handle = integration_tests::migrator::migrated_repository().await;
    let db = db_handle.client().await;
    db.batch_execute(
        "CREATE TABLE \"EC Edits\" (
            id bigserial PRIMARY KEY, instance_id text NOT NULL UNIQUE, anm_id text,
            entity_id text, form_name text, server_version timestamptz, \"couple id\" text);
         ALTER TABLE pnc_visit ALTER COLUMN delivery_outcome TYPE varchar(5);",
    )
    .await
    .expect("tables");
    let settings = source("drishti", &upstream, 100, 3600.0);
    let service = integration_tests::services::start_migrator_on(&db_handle.url, |c| {
        c.sources = vec![settings];
        c.form_mapping.insert(
            "ec_edit_v9".into(),
            migrator_service::config::FormMapping {
                table: Some("EC Edits".into()),
                columns: [("id".to_string(), "couple id".to_string())].into(),
                ..Default::default()
            },
        );
    })
    .await;
    wait_for("the sample page", PATIENCE, || async {
        watermark(&db, "drishti").await == SAMPLE_WATERMARK
    })
    .await;
    let row = db
        .query_one(
            "SELECT instance_id, \"couple id\", anm_id FROM \"EC Edits\"",
            &[],
        )
        .await
        .expect("the mapped form is written to its mapped table");
    assert_eq!(
        row.get::<_, String>(0),
        "5e904c61-adbf-4ec0-b132-4d5e6f708192"
    );
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("7d1e0c3b-5a9f-4e2d-8c61-2b3a4c5d6e7f")
    );
    assert_eq!(
        count(&db, "pnc_visit").await,
        0,
        "not written cut to 5 characters"
    );
    assert_eq!(
        count(&db, "child_pnc_visit").await,
        0,
        "nor its sub-form rows"
    );
    let reason: String = db
        .query_one(
            "SELECT failure_reason FROM error_audit WHERE form_name = 'pnc_visit'",
            &[],
        )
        .await
        .expect("pnc_visit failed")
        .get(0);
    assert_eq!(
        reason,
        "Invalid value for deliveryOutcome: \"live_birth\" is 10 characters long, more than the column's limit of 5"
    );
    assert_eq!(count(&db, "error_audit").await, 3);
    drop(service);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_page_records_no_failure_twice() {
    let upstream = FakeUpstream::sample().await;
    // An element without an instanceId: the archive cannot recognise it.
    upstream.push_elements([serde_json::json!({
        "formName": "ec_registration",
        "serverVersion": "1424300000000",
        "formInstance": "{}"
    })]);
    upstream.fail_next([Fault::Pass, Fault::RepeatLastPage]);
    let settings = source("drishti", &upstream, 100, 3600.0);
    let migrator = TestMigrator::start(|c| c.sources = vec![settings]).await;
    let db = migrator.db.client().await;
    wait_for("the repeat and the empty page", PATIENCE, || async {
        upstream.requests().len() >= 3
    })
    .await;
    wait_for("two audit rows", PATIENCE, || async {
        count(&db, "migration_audit").await == 2
    })
    .await;
    assert_eq!(
        count(&db, "error_audit").await,
        4,
        "no failure recorded twice"
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM error_audit WHERE failure_reason = 'Invalid submission: no instanceId'"
        )
        .await,
        1
    );
    assert_eq!(count(&db, "form_submission").await, 7);
    assert_eq!(
        scalar(
            &db,
            "SELECT duplicate_form_entries::int8 FROM migration_audit ORDER BY id DESC LIMIT 1"
        )
        .await,
        7
    );
    assert_eq!(watermark(&db, "drishti").await, 1_424_300_000_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_draining_one_source_at_once_write_each_submission_once() {
    let generator = Generator {
        per_version: 3,
        ..Generator::new(300)
    };
    let upstream = FakeUpstream::start(Data::Generated(generator)).await;
    let db = integration_tests::migrator::migrated_repository().await;
    let mut config = migrator_service::Config::default();
    config.database.url = db.url.clone();
    config.database.pool_size = 2;
    config.sources = vec![source("drishti", &upstream, 20, 3600.0)];
    let replicas: Vec<_> = (0..2)
        .map(|_| {
            let pool = service_kit::db::build_pool(&config.database);
            std::sync::Arc::new(
                migrator_service::app::build_migrator(pool, &config).expect("the mapping"),
            )
        })
        .collect();
    let stop = tokio_util::sync::CancellationToken::new();
    let runs = replicas.iter().map(|m| {
        let m = m.clone();
        let stop = stop.clone();
        async move {
            let source = m.source("drishti").cloned().expect("source");
            m.drain(&source, &stop, |_| {}).await
        }
    });
    let results = futures::future::join_all(runs).await;
    let written: usize = results
        .iter()
        .map(|r| r.as_ref().expect("both drains succeed").written)
        .sum();
    assert_eq!(written, 300, "the two replicas share the work: {results:?}");
    let client = db.client().await;
    assert_generated_exactly_once(&client, 300).await;
    assert_eq!(
        watermark(&client, "drishti").await,
        generator.server_version(299)
    );
}

/// A metric's value in a Prometheus scrape, summed over its label sets that
/// contain `labels` (0 when absent).
fn metric(scrape: &str, name: &str, labels: &str) -> f64 {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(n, _)| (*n == name || n.starts_with(&format!("{name}{{"))) && n.contains(labels))
        .filter_map(|(_, v)| v.trim().parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_written_and_failed_submissions_per_form() {
    let (_upstream, migrator) = start_on_sample().await;
    // The recorder is shared by every App of this test process; the source
    // name keeps this test's series apart from the others' ("drishti" is
    // shared too, so counts are at least, not exactly, this test's).
    let scrape = migrator.service.scrape().await;
    let written = |form: &str| {
        metric(
            &scrape,
            "migrator_submissions_written_total",
            &format!("form=\"{form}\""),
        )
    };
    for form in [
        "ec_registration",
        "anc_registration",
        "anc_visit",
        "pnc_visit",
    ] {
        assert!(written(form) >= 1.0, "{form} not counted:\n{scrape}");
    }
    assert!(
        metric(
            &scrape,
            "migrator_submissions_failed_total",
            "form=\"ec_edit_v9\""
        ) >= 1.0,
        "{scrape}"
    );
    assert!(
        metric(&scrape, "migrator_batches_total", "source=\"drishti\"") >= 1.0,
        "{scrape}"
    );
    assert!(
        scrape.contains("migrator_watermark_lag_ms{source=\"drishti\"}"),
        "{scrape}"
    );
}
