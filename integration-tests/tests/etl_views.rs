//! The reporting views (design/etl.md §2): rows land in the right view,
//! a schema with no subject or visit tables still has every view, the
//! organisation's role can read them and another's cannot, and a run
//! rebuilds a view only when its definition changed.

use integration_tests::avni::edit::{self, SourceTable};
use integration_tests::avni::evolve;
use integration_tests::avni::{Size, Spec};
use integration_tests::etl::{EtlFixture, view_rows};
use serde_json::{Value, json};
use service_kit::sql::{quote_ident, quote_qualified};
use std::collections::BTreeSet;
use tokio_postgres::Client;

const VIEWS: [&str; 5] = [
    "subject_view",
    "enrolment_view",
    "completed_visits_view",
    "due_visits_view",
    "overdue_visits_view",
];

/// The rows of a view as (reporting table, id): ids are unique only
/// within their source table.
fn ids(rows: &[Value]) -> BTreeSet<(String, i64)> {
    rows.iter()
        .map(|r| {
            (
                r["reporting_table"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                r["id"].as_i64().unwrap_or_default(),
            )
        })
        .collect()
}

fn set(rows: &[(&str, i64)]) -> BTreeSet<(String, i64)> {
    rows.iter().map(|(t, id)| (t.to_string(), *id)).collect()
}

fn find<'a>(rows: &'a [Value], table: &str, id: i64) -> &'a Value {
    rows.iter()
        .find(|r| r["reporting_table"] == json!(table) && r["id"] == json!(id))
        .unwrap_or_else(|| panic!("no row {table} {id}"))
}

/// Makes a visit scheduled and not done: due between the two offsets
/// from now (in days), with no encounter date.
async fn schedule(client: &Client, table: &str, id: i64, earliest_days: i32, max_days: i32) {
    let sql = format!(
        "UPDATE {table} SET encounter_date_time = NULL, \
             earliest_visit_date_time = now() + $2::int * interval '1 day', \
             max_visit_date_time = now() + $3::int * interval '1 day', \
             last_modified_date_time = clock_timestamp() WHERE id = $1"
    );
    let n = client
        .execute(&sql, &[&id, &earliest_days, &max_days])
        .await
        .expect("schedule");
    assert_eq!(n, 1);
}

async fn view_oid(client: &Client, schema: &str, view: &str) -> u32 {
    client
        .query_one(
            "SELECT to_regclass($1)::oid",
            &[&quote_qualified(schema, view)],
        )
        .await
        .expect("oid")
        .get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_land_in_the_right_views() {
    let f = EtlFixture::new(&Spec {
        seed: 31,
        size: Size::EMPTY,
        ..Spec::default()
    })
    .await;
    let org = f.org(0).clone();
    let (client, s) = (&f.client, org.schema_name.as_str());
    let none = json!({});
    let person = edit::insert_subject(client, &org, "person", "Asha", &none).await;
    let household = edit::insert_subject(client, &org, "household", "House", &none).await;
    let voided_subject = edit::insert_subject(client, &org, "household", "Gone", &none).await;
    edit::void(client, SourceTable::Individual, voided_subject).await;
    let enrolment = edit::insert_enrolment(client, &org, person, "pregnancy", &none).await;

    let anc = |c| edit::insert_program_encounter(c, &org, enrolment, "anc", &none);
    let anc_done = anc(client).await;
    let anc_due = anc(client).await;
    schedule(client, "program_encounter", anc_due, -1, 7).await;
    let anc_later = anc(client).await;
    schedule(client, "program_encounter", anc_later, 3, 10).await;
    let anc_overdue = anc(client).await;
    schedule(client, "program_encounter", anc_overdue, -10, -3).await;
    let anc_cancelled = anc(client).await;
    schedule(client, "program_encounter", anc_cancelled, -1, 7).await;
    edit::cancel(client, SourceTable::ProgramEncounter, anc_cancelled, &none).await;
    let anc_voided = anc(client).await;
    schedule(client, "program_encounter", anc_voided, -10, -3).await;
    edit::void(client, SourceTable::ProgramEncounter, anc_voided).await;
    let survey = |c| edit::insert_encounter(c, &org, person, "survey", &none);
    let survey_done = survey(client).await;
    let survey_overdue = survey(client).await;
    schedule(client, "encounter", survey_overdue, -20, -1).await;
    let visit = edit::insert_encounter(client, &org, household, "home_visit", &none).await;
    schedule(client, "encounter", visit, 0, 1).await;

    f.run_org(&org).await;

    let subjects = view_rows(client, s, "subject_view").await;
    assert_eq!(
        ids(&subjects),
        set(&[
            ("person", person),
            ("household", household),
            ("household", voided_subject)
        ])
    );
    let asha = find(&subjects, "person", person);
    assert_eq!(asha["subject_type_name"], json!("Person"));
    assert_eq!(
        asha["subject_type_uuid"],
        json!(org.bundle.subject_type("person").uuid)
    );
    assert_eq!(asha["reporting_table"], json!("person"));
    assert_eq!(asha["first_name"], json!("Asha"));
    assert_eq!(asha["gender"], json!("Female"));
    assert_eq!(asha["organisation_id"], json!(org.id));
    let gone = find(&subjects, "household", voided_subject);
    assert_eq!(gone["is_voided"], json!(true));
    assert_eq!(gone["gender"], Value::Null, "households have no gender");

    let enrolments = view_rows(client, s, "enrolment_view").await;
    assert_eq!(ids(&enrolments), set(&[("person_pregnancy", enrolment)]));
    assert_eq!(enrolments[0]["program_name"], json!("Pregnancy"));
    assert_eq!(enrolments[0]["individual_id"], json!(person));

    let completed = view_rows(client, s, "completed_visits_view").await;
    const ANC: &str = "person_pregnancy_anc";
    const SURVEY: &str = "person_survey";
    assert_eq!(
        ids(&completed),
        set(&[(ANC, anc_done), (SURVEY, survey_done)])
    );
    let done = find(&completed, ANC, anc_done);
    assert_eq!(done["encounter_type_name"], json!("ANC"));
    assert_eq!(done["program_name"], json!("Pregnancy"));
    assert_eq!(done["program_enrolment_id"], json!(enrolment));
    assert_eq!(done["individual_id"], json!(person));
    let general = find(&completed, SURVEY, survey_done);
    assert_eq!(general["program_name"], Value::Null);
    assert_eq!(general["encounter_type_name"], json!("Survey"));
    assert_eq!(
        ids(&view_rows(client, s, "due_visits_view").await),
        set(&[
            (ANC, anc_due),
            (ANC, anc_later),
            ("household_home_visit", visit)
        ])
    );
    assert_eq!(
        ids(&view_rows(client, s, "overdue_visits_view").await),
        set(&[(ANC, anc_overdue), (SURVEY, survey_overdue)])
    );

    // A run that changes no table leaves the views alone; a rename
    // rebuilds them with the new names.
    let oid = view_oid(client, s, "subject_view").await;
    f.run_org(&org).await;
    assert_eq!(view_oid(client, s, "subject_view").await, oid);
    evolve::rename_subject_type(client, &org, "person", "Woman").await;
    f.run_org(&org).await;
    assert_ne!(view_oid(client, s, "subject_view").await, oid);
    let renamed = view_rows(client, s, "subject_view").await;
    let asha = find(&renamed, "woman", person);
    assert_eq!(asha["subject_type_name"], json!("Woman"));
    assert_eq!(asha["reporting_table"], json!("woman"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schema_without_subject_or_visit_tables_has_every_view_empty() {
    let f = EtlFixture::new(&Spec {
        seed: 32,
        ..Spec::default()
    })
    .await;
    let org = f.org(0).clone();
    let (client, s) = (&f.client, org.schema_name.as_str());
    let forms: Vec<String> = client
        .query(
            "SELECT name FROM form WHERE organisation_id = $1",
            &[&org.id],
        )
        .await
        .expect("forms")
        .iter()
        .map(|r| r.get(0))
        .collect();
    for form in &forms {
        evolve::set_mapping_voided(client, &org, form, true).await;
    }
    let report = f.run_org(&org).await;
    let tables: Vec<&str> = report.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(tables, vec!["address", "users", "sync_telemetry"]);

    let reader = f.db.client().await;
    reader
        .batch_execute(&format!("SET ROLE {}", quote_ident(&org.db_user)))
        .await
        .expect("set role");
    for view in VIEWS {
        let sql = format!("SELECT count(*) FROM {}", quote_qualified(s, view));
        let n: i64 = reader
            .query_one(&sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{view}: {e}"))
            .get(0);
        assert_eq!(n, 0, "{view}");
    }
    let columns: Vec<String> = client
        .query(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = $1 AND table_name = 'due_visits_view' ORDER BY ordinal_position",
            &[&s],
        )
        .await
        .expect("columns")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(columns.contains(&"earliest_visit_date_time".to_string()));
    assert!(columns.contains(&"encounter_type_name".to_string()));
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_organisations_role_can_read_its_views() {
    let f = EtlFixture::new(&Spec {
        seed: 33,
        organisations: 2,
        ..Spec::default()
    })
    .await;
    let (a, b) = (f.org(0).clone(), f.org(1).clone());
    f.run_org(&a).await;
    f.run_org(&b).await;

    let reader = f.db.client().await;
    reader
        .batch_execute(&format!("SET ROLE {}", quote_ident(&a.db_user)))
        .await
        .expect("set role");
    for view in VIEWS {
        let own = format!(
            "SELECT count(*) FROM {}",
            quote_qualified(&a.schema_name, view)
        );
        reader
            .query_one(&own, &[])
            .await
            .unwrap_or_else(|e| panic!("{view} of its own schema: {e}"));
        let other = format!(
            "SELECT count(*) FROM {}",
            quote_qualified(&b.schema_name, view)
        );
        let refused = reader
            .query_one(&other, &[])
            .await
            .expect_err("another organisation's view must be refused");
        assert_eq!(
            refused.code(),
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{view}: {refused:?}"
        );
    }
    let subjects: i64 = reader
        .query_one(
            &format!(
                "SELECT count(*) FROM {}",
                quote_qualified(&a.schema_name, "subject_view")
            ),
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(subjects, 4 * Size::SMALL.subjects_per_type);
}
