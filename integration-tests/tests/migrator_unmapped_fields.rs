//! Fields with no column (issue 17, item 2) and RefillColumns: by default a
//! submission is written with the fields that have columns and each
//! unmapped field is recorded (ListUnmappedFields, GetStatus, a metric);
//! `strict` (per source or per form) keeps the failure; once a migration
//! adds the column, RefillColumns fills it from the archive.

use avni_proto::migrator::v1 as pb;
use integration_tests::drishti_forms::{element, sub_form};
use integration_tests::fake_upstream::{Data, FakeUpstream};
use integration_tests::migrator::{PATIENCE, count, source, wait_for, watermark};
use integration_tests::services::TestMigrator;
use migrator_service::config::FormMapping;

const SV: i64 = 1_424_200_000_000;

fn anc_visit(n: i64, extra: &[(&str, &str)]) -> serde_json::Value {
    let mut fields = vec![("id", "mother-1"), ("ancVisitNumber", "2")];
    fields.extend_from_slice(extra);
    element(
        &format!("visit-{n}"),
        "anc_visit",
        SV + n,
        "mother",
        &fields,
        vec![],
    )
}

fn pnc_visit(n: i64) -> serde_json::Value {
    let children = sub_form(
        "child_pnc_visit",
        "child",
        &[
            &[("id", "c-1"), ("weight", "2.9")],
            &[("id", "c-2"), ("weight", "3.1"), ("breathRate", "44")],
        ],
    );
    element(
        &format!("pnc-{n}"),
        "pnc_visit",
        SV + n,
        "mother",
        &[("id", "mother-2"), ("visitDate", "2015-2-3")],
        vec![children],
    )
}

async fn unmapped(migrator: &TestMigrator, include_resolved: bool) -> Vec<pb::UnmappedField> {
    migrator
        .client()
        .await
        .list_unmapped_fields(pb::ListUnmappedFieldsRequest {
            include_resolved,
            ..Default::default()
        })
        .await
        .expect("ListUnmappedFields")
        .into_inner()
        .fields
}

async fn status(migrator: &TestMigrator) -> pb::SourceStatus {
    migrator
        .client()
        .await
        .get_status(pb::GetStatusRequest::default())
        .await
        .expect("status")
        .into_inner()
        .sources
        .remove(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn fields_without_a_column_are_left_out_recorded_and_refilled_once_the_column_exists() {
    let upstream = FakeUpstream::start(Data::Elements(vec![
        anc_visit(1, &[("previousBpSystolic", "128")]),
        anc_visit(2, &[]),
        anc_visit(
            3,
            &[("previousBpSystolic", "131"), ("previousBpSystolic", "")],
        ),
        pnc_visit(4),
    ]))
    .await;
    let mut settings = source("drishti", &upstream, 100, 3600.0);
    // RefillColumns by hand: no refill on its own racing the test's.
    settings.refill_after_migrations = false;
    let migrator = TestMigrator::start(|c| c.sources = vec![settings]).await;
    let db = migrator.db.client().await;
    wait_for("the page", PATIENCE, || async {
        watermark(&db, "drishti").await == SV + 4
    })
    .await;
    assert_eq!(count(&db, "error_audit").await, 0, "nothing failed");
    assert_eq!(count(&db, "anc_visit").await, 3, "every visit written");
    assert_eq!(count(&db, "child_pnc_visit").await, 2);
    let archived: String = db
        .query_one(
            "SELECT payload::text FROM form_submission WHERE instance_id = 'visit-1'",
            &[],
        )
        .await
        .expect("archived")
        .get(0);
    assert!(
        archived.contains("previousBpSystolic"),
        "the archive keeps it"
    );

    let fields = unmapped(&migrator, false).await;
    let summary: Vec<(&str, &str, &str, &str, &str, i64)> = fields
        .iter()
        .map(|f| {
            (
                f.form_name.as_str(),
                f.sub_form_name.as_str(),
                f.field_name.as_str(),
                f.table_name.as_str(),
                f.column_name.as_str(),
                f.submissions,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "anc_visit",
                "",
                "previousBpSystolic",
                "anc_visit",
                "previous_bp_systolic",
                2
            ),
            (
                "pnc_visit",
                "child_pnc_visit",
                "breathRate",
                "child_pnc_visit",
                "breath_rate",
                1
            ),
        ]
    );
    assert!(["visit-1", "visit-3"].contains(&fields[0].example_instance_id.as_str()));
    assert!(
        fields
            .iter()
            .all(|f| f.first_seen.is_some() && f.resolved_time.is_none())
    );
    assert_eq!(status(&migrator).await.unmapped_fields, 2);
    let scrape = migrator.service.scrape().await;
    assert!(
        scrape.contains(
            "migrator_unmapped_field_values_total{source=\"drishti\",form=\"anc_visit\"}"
        ),
        "{scrape}"
    );

    // Before the migration: nothing to refill.
    let mut client = migrator.client().await;
    let early = client
        .refill_columns(pb::RefillColumnsRequest::default())
        .await
        .expect("RefillColumns")
        .into_inner();
    assert_eq!(
        (
            early.rows_updated,
            early.still_unmapped,
            early.resolved.len()
        ),
        (0, 2, 0)
    );

    db.batch_execute(
        "ALTER TABLE anc_visit ADD COLUMN previous_bp_systolic integer; \
         ALTER TABLE child_pnc_visit ADD COLUMN breath_rate integer;",
    )
    .await
    .expect("the migration");
    let report = client
        .refill_columns(pb::RefillColumnsRequest::default())
        .await
        .expect("RefillColumns")
        .into_inner();
    assert_eq!(report.rows_updated, 3, "two visits and one child");
    assert_eq!(report.values_failed, 0);
    assert_eq!(report.resolved.len(), 2);
    let visits: Vec<(String, Option<i32>)> = db
        .query(
            "SELECT instance_id, previous_bp_systolic FROM anc_visit ORDER BY instance_id",
            &[],
        )
        .await
        .expect("visits")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        visits,
        vec![
            ("visit-1".to_string(), Some(128)),
            ("visit-2".to_string(), None),
            ("visit-3".to_string(), Some(131)),
        ]
    );
    let children: Vec<(String, Option<i32>)> = db
        .query(
            "SELECT child_id, breath_rate FROM child_pnc_visit ORDER BY child_id",
            &[],
        )
        .await
        .expect("children")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        children,
        vec![("c-1".to_string(), None), ("c-2".to_string(), Some(44))]
    );
    assert!(unmapped(&migrator, false).await.is_empty(), "resolved");
    let all = unmapped(&migrator, true).await;
    assert!(all.len() == 2 && all.iter().all(|f| f.resolved_time.is_some()));
    assert_eq!(status(&migrator).await.unmapped_fields, 0);
    let again = client
        .refill_columns(pb::RefillColumnsRequest::default())
        .await
        .expect("RefillColumns")
        .into_inner();
    assert_eq!(again.rows_updated, 0, "nothing left to fill");
}

#[tokio::test(flavor = "multi_thread")]
async fn strict_per_source_or_per_form_keeps_the_failure() {
    // Per form: anc_visit is strict, pnc_visit is not.
    let upstream = FakeUpstream::start(Data::Elements(vec![
        anc_visit(1, &[("previousBpSystolic", "128")]),
        pnc_visit(2),
    ]))
    .await;
    // Per source: everything strict.
    let strict_upstream = FakeUpstream::start(Data::Elements(vec![element(
        "strict-pnc",
        "pnc_visit",
        SV + 3,
        "mother",
        &[("id", "mother-3"), ("bloodPressure", "120/80")],
        vec![],
    )]))
    .await;
    let lenient = source("drishti", &upstream, 100, 3600.0);
    let mut strict = source("strict", &strict_upstream, 100, 3600.0);
    strict.strict = true;
    let migrator = TestMigrator::start(|c| {
        c.sources = vec![lenient, strict];
        c.form_mapping.insert(
            "anc_visit".into(),
            FormMapping {
                strict: Some(true),
                ..FormMapping::default()
            },
        );
    })
    .await;
    let db = migrator.db.client().await;
    wait_for("both pages", PATIENCE, || async {
        watermark(&db, "drishti").await == SV + 2 && watermark(&db, "strict").await == SV + 3
    })
    .await;
    let errors: Vec<(String, String)> = db
        .query(
            "SELECT instance_id, failure_reason FROM error_audit ORDER BY instance_id",
            &[],
        )
        .await
        .expect("errors")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        errors,
        vec![
            (
                "strict-pnc".to_string(),
                "Unknown field: bloodPressure".to_string()
            ),
            (
                "visit-1".to_string(),
                "Unknown field: previousBpSystolic".to_string()
            ),
        ]
    );
    assert_eq!(
        count(&db, "pnc_visit").await,
        1,
        "the lenient form is written"
    );
    let fields = unmapped(&migrator, false).await;
    assert_eq!(fields.len(), 1, "{fields:?}");
    assert_eq!(fields[0].field_name, "breathRate");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_received_value_that_does_not_fit_the_new_column_leaves_the_field_unresolved() {
    let upstream = FakeUpstream::start(Data::Elements(vec![
        anc_visit(1, &[("previousBpSystolic", "128")]),
        anc_visit(2, &[("previousBpSystolic", "high")]),
    ]))
    .await;
    let mut settings = source("drishti", &upstream, 100, 3600.0);
    settings.refill_after_migrations = false;
    let migrator = TestMigrator::start(|c| c.sources = vec![settings]).await;
    let db = migrator.db.client().await;
    wait_for("the page", PATIENCE, || async {
        watermark(&db, "drishti").await == SV + 2
    })
    .await;
    db.batch_execute("ALTER TABLE anc_visit ADD COLUMN previous_bp_systolic integer")
        .await
        .expect("the migration");
    let mut client = migrator.client().await;
    let report = client
        .refill_columns(pb::RefillColumnsRequest {
            form_name: "anc_visit".into(),
            ..Default::default()
        })
        .await
        .expect("RefillColumns")
        .into_inner();
    assert_eq!((report.rows_updated, report.values_failed), (1, 1));
    assert!(report.resolved.is_empty(), "not every value is in");
    let left = unmapped(&migrator, false).await;
    assert_eq!(left.len(), 1, "still listed: {left:?}");
    let filled: Option<i32> = db
        .query_one(
            "SELECT previous_bp_systolic FROM anc_visit WHERE instance_id = 'visit-1'",
            &[],
        )
        .await
        .expect("row")
        .get(0);
    assert_eq!(filled, Some(128), "what fits is filled");
    // A form with none: nothing listed for it.
    let none = client
        .list_unmapped_fields(pb::ListUnmappedFieldsRequest {
            form_name: "pnc_visit".into(),
            ..Default::default()
        })
        .await
        .expect("ListUnmappedFields")
        .into_inner()
        .fields;
    assert!(none.is_empty(), "{none:?}");
}

/// `previous_bp_systolic` of visit-1..3, by instance id.
async fn previous_bp(db: &tokio_postgres::Client) -> Vec<Option<i32>> {
    db.query(
        "SELECT previous_bp_systolic FROM anc_visit ORDER BY instance_id",
        &[],
    )
    .await
    .expect("visits")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Issue 17's "on its own after the catalog change": a migration run while
/// the service runs adds the column of an unmapped field; the next batch
/// sees it and, once committed, the values already received are filled in
/// from the archive and the field is resolved, with no RefillColumns. With
/// `refill_after_migrations: false` the old rows wait for RefillColumns.
#[tokio::test(flavor = "multi_thread")]
async fn a_column_added_while_running_is_filled_after_the_next_batch_unless_turned_off() {
    for on in [true, false] {
        let upstream = FakeUpstream::start(Data::Elements(vec![
            anc_visit(1, &[("previousBpSystolic", "128")]),
            anc_visit(2, &[("previousBpSystolic", "131")]),
        ]))
        .await;
        let mut settings = source("drishti", &upstream, 100, 3600.0);
        settings.refill_after_migrations = on;
        let migrator = TestMigrator::start(|c| c.sources = vec![settings]).await;
        let db = migrator.db.client().await;
        wait_for("the first page", PATIENCE, || async {
            watermark(&db, "drishti").await == SV + 2
        })
        .await;
        assert_eq!(unmapped(&migrator, false).await.len(), 1);

        db.batch_execute("ALTER TABLE anc_visit ADD COLUMN previous_bp_systolic integer")
            .await
            .expect("the migration");
        upstream.push_elements([anc_visit(3, &[("previousBpSystolic", "140")])]);
        migrator
            .client()
            .await
            .run_now(pb::RunNowRequest::default())
            .await
            .expect("RunNow");
        wait_for("the next batch", PATIENCE, || async {
            watermark(&db, "drishti").await == SV + 3
        })
        .await;
        if on {
            wait_for("the refill", PATIENCE, || async {
                previous_bp(&db).await == [Some(128), Some(131), Some(140)]
            })
            .await;
            assert!(unmapped(&migrator, false).await.is_empty(), "resolved");
            assert_eq!(status(&migrator).await.unmapped_fields, 0);
        } else {
            tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
            assert_eq!(previous_bp(&db).await, [None, None, Some(140)]);
            assert_eq!(
                unmapped(&migrator, false).await.len(),
                1,
                "left to RefillColumns"
            );
        }
    }
}
