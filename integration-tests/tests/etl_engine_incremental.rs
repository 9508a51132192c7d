//! Incremental runs: editing, voiding, cancelling, un-cancelling and exiting
//! source rows moves exactly those rows; a run with no changes writes none.

use etl_service::engine::RunReport;
use integration_tests::avni::edit::{self, SourceTable};
use integration_tests::avni::{Org, Spec};
use integration_tests::etl::{EtlFixture, snapshot};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use tokio_postgres::Client;

async fn first_id(
    client: &Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> i64 {
    client
        .query_one(sql, params)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{sql}"))
        .get(0)
}

/// Which source table each reporting table's rows come from, and the
/// column holding the source row's id.
async fn row_sources(
    client: &Client,
    schema: &str,
) -> BTreeMap<String, (&'static str, &'static str)> {
    let source = |t: &str| match t {
        "Person" | "Individual" | "Household" | "Group" => ("individual", "individual_id"),
        "ProgramEnrolment" | "ProgramExit" => ("program_enrolment", "program_enrolment_id"),
        "ProgramEncounter" | "ProgramEncounterCancellation" => {
            ("program_encounter", "program_encounter_id")
        }
        "Encounter" | "IndividualEncounterCancellation" => ("encounter", "encounter_id"),
        _ => ("address_level", "parent_id"),
    };
    client
        .query(
            "SELECT t.name, t.type, x.parent_table_type FROM public.table_metadata t \
             JOIN etl_service.table_metadata_ext x ON x.table_metadata_id = t.id WHERE t.schema_name = $1",
            &[&schema],
        )
        .await
        .expect("metadata")
        .iter()
        .map(|r| {
            let name: String = r.get(0);
            let ty: String = r.get(1);
            let parent: Option<String> = r.get(2);
            let entry = match parent {
                Some(p) => {
                    let (table, column) = source(&p);
                    (table, column)
                }
                None => (source(&ty).0, "id"),
            };
            (name, entry)
        })
        .collect()
}

fn assert_no_writes(report: &RunReport) {
    for t in &report.tables {
        assert_eq!(
            (t.rows_upserted, t.rows_deleted),
            (0, 0),
            "table {} was written by a run with no changes",
            t.name
        );
    }
}

fn upserted(report: &RunReport, table: &str) -> (u64, u64) {
    let t = report
        .tables
        .iter()
        .find(|t| t.name == table)
        .unwrap_or_else(|| panic!("no table {table} in the report"));
    (t.rows_upserted, t.rows_deleted)
}

fn row(rows: &[Value], id: i64) -> Option<&Value> {
    rows.iter().find(|r| r["id"] == json!(id))
}

#[tokio::test(flavor = "multi_thread")]
async fn edits_move_exactly_the_changed_rows() {
    let f = EtlFixture::new(&Spec {
        seed: 11,
        ..Spec::default()
    })
    .await;
    let org: Org = f.org(0).clone();
    let client = &f.client;
    let s = org.schema_name.as_str();
    f.run_org(&org).await;
    let quiet = f.run_org(&org).await;
    assert_no_writes(&quiet);
    let before = snapshot(client, s).await;

    let weight = org.bundle.concept("weight").uuid.clone();
    let children = org.bundle.concept("children").uuid.clone();
    let edited = first_id(
        client,
        "SELECT id FROM individual WHERE subject_type_id = $1 AND NOT is_voided ORDER BY id LIMIT 1",
        &[&org.subject_type_id("person")],
    )
    .await;
    client
        .execute(
            "UPDATE individual SET observations = jsonb_set(observations, ARRAY[$2], '99.5'), \
                 last_modified_date_time = clock_timestamp() WHERE id = $1",
            &[&edited, &weight],
        )
        .await
        .expect("edit");
    let added = edit::insert_subject(client, &org, "person", "Newcomer", &json!({})).await;
    let voided = first_id(
        client,
        "SELECT id FROM encounter WHERE encounter_type_id = $1 AND cancel_date_time IS NULL \
         AND NOT is_voided ORDER BY id LIMIT 1",
        &[&org.encounter_type_id("home_visit")],
    )
    .await;
    edit::void(client, SourceTable::Encounter, voided).await;
    let cancelled = first_id(
        client,
        "SELECT id FROM program_encounter WHERE encounter_type_id = $1 AND cancel_date_time IS NULL \
         AND NOT is_voided ORDER BY id LIMIT 1",
        &[&org.encounter_type_id("anc")],
    )
    .await;
    edit::cancel(client, SourceTable::ProgramEncounter, cancelled, &json!({})).await;
    let uncancelled = first_id(
        client,
        "SELECT id FROM program_encounter WHERE encounter_type_id = $1 AND cancel_date_time IS NOT NULL \
         AND jsonb_array_length(cancel_observations -> $2) > 0 ORDER BY id LIMIT 1",
        &[&org.encounter_type_id("anc"), &children],
    )
    .await;
    edit::uncancel(client, SourceTable::ProgramEncounter, uncancelled).await;
    let exited = first_id(
        client,
        "SELECT id FROM program_enrolment WHERE program_id = $1 AND program_exit_date_time IS NULL \
         ORDER BY id LIMIT 1",
        &[&org.program_id("pregnancy")],
    )
    .await;
    edit::exit(client, exited, &json!({})).await;

    let report = f.run_org(&org).await;
    let after = snapshot(client, s).await;

    // Every row whose source row was not touched is exactly as it was.
    let touched: BTreeSet<(&str, i64)> = [
        ("individual", edited),
        ("individual", added),
        ("encounter", voided),
        ("program_encounter", cancelled),
        ("program_encounter", uncancelled),
        ("program_enrolment", exited),
    ]
    .into_iter()
    .collect();
    let sources = row_sources(client, s).await;
    for (table, rows) in &after {
        let (source, id_column) = sources[table];
        let untouched = |r: &&Value| {
            let id = r[id_column].as_i64().unwrap_or_default();
            !touched.contains(&(source, id))
        };
        let was: Vec<&Value> = before[table].iter().filter(untouched).collect();
        let now: Vec<&Value> = rows.iter().filter(untouched).collect();
        assert_eq!(was, now, "untouched rows of {table} changed");
    }

    // The touched rows moved as their source did.
    let person = &after["person"];
    assert_eq!(
        row(person, edited).map(|r| r["Weight"].clone()),
        Some(json!(99.5))
    );
    assert_eq!(
        row(person, added).map(|r| r["first_name"].clone()),
        Some(json!("Newcomer"))
    );
    assert_eq!(upserted(&report, "person"), (2, 0));
    assert_eq!(
        row(&after["household_home_visit"], voided).map(|r| r["is_voided"].clone()),
        Some(json!(true)),
        "a voided row stays, marked voided"
    );
    assert_eq!(upserted(&report, "household_home_visit"), (1, 0));
    let cancel_table = &after["person_pregnancy_anc_cancel"];
    assert!(
        row(cancel_table, cancelled).is_some(),
        "cancelled row added"
    );
    assert!(row(&before["person_pregnancy_anc_cancel"], uncancelled).is_some());
    assert!(
        row(cancel_table, uncancelled).is_none(),
        "un-cancelled row left"
    );
    assert_eq!(upserted(&report, "person_pregnancy_anc_cancel"), (1, 1));
    assert!(
        after["person_pregnancy_anc_cancel_children"]
            .iter()
            .all(|r| r["program_encounter_id"] != json!(uncancelled)),
        "the un-cancelled encounter's cancel-form groups left too"
    );
    assert!(
        before["person_pregnancy_anc_cancel_children"]
            .iter()
            .any(|r| r["program_encounter_id"] == json!(uncancelled))
    );
    let anc = &after["person_pregnancy_anc"];
    assert!(row(anc, cancelled).is_some_and(|r| !r["cancel_date_time"].is_null()));
    assert!(row(anc, uncancelled).is_some_and(|r| r["cancel_date_time"].is_null()));
    assert_eq!(upserted(&report, "person_pregnancy_anc"), (2, 0));
    assert!(row(&before["person_pregnancy_exit"], exited).is_none());
    assert!(
        row(&after["person_pregnancy_exit"], exited)
            .is_some_and(|r| r["program_exit_date_time"] == json!("2024-06-01T12:00:00+00:00"))
    );
    assert_eq!(upserted(&report, "person_pregnancy_exit"), (1, 0));
    for untouched in [
        "individual",
        "household",
        "group",
        "individual_child",
        "address",
    ] {
        assert_eq!(upserted(&report, untouched), (0, 0), "{untouched}");
    }

    // And nothing more happens without changes.
    assert_no_writes(&f.run_org(&org).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn un_exiting_removes_the_exit_row_and_shrunk_groups_lose_rows() {
    let f = EtlFixture::new(&Spec {
        seed: 12,
        ..Spec::default()
    })
    .await;
    let org = f.org(0).clone();
    let client = &f.client;
    let s = org.schema_name.as_str();
    let children = org.bundle.concept("children").uuid.clone();
    f.run_org(&org).await;
    let exited = first_id(
        client,
        "SELECT id FROM program_enrolment WHERE program_id = $1 AND program_exit_date_time IS NOT NULL \
         ORDER BY id LIMIT 1",
        &[&org.program_id("pregnancy")],
    )
    .await;
    let with_two = first_id(
        client,
        "SELECT id FROM individual WHERE subject_type_id = $1 \
         AND jsonb_array_length(observations -> $2) = 2 ORDER BY id LIMIT 1",
        &[&org.subject_type_id("person"), &children],
    )
    .await;
    let before = snapshot(client, s).await;
    assert!(row(&before["person_pregnancy_exit"], exited).is_some());
    assert_eq!(
        before["person_children"]
            .iter()
            .filter(|r| r["individual_id"] == json!(with_two))
            .count(),
        2
    );

    edit::unexit(client, exited).await;
    client
        .execute(
            "UPDATE individual SET observations = jsonb_set(observations, ARRAY[$2], \
                 jsonb_build_array(observations -> $2 -> 1)), last_modified_date_time = clock_timestamp() \
             WHERE id = $1",
            &[&with_two, &children],
        )
        .await
        .expect("shrink group");
    let report = f.run_org(&org).await;
    let after = snapshot(client, s).await;
    assert!(row(&after["person_pregnancy_exit"], exited).is_none());
    assert_eq!(upserted(&report, "person_pregnancy_exit"), (0, 1));
    let remaining: Vec<&Value> = after["person_children"]
        .iter()
        .filter(|r| r["individual_id"] == json!(with_two))
        .collect();
    assert_eq!(remaining.len(), 1, "the second element is gone");
    let was_second = before["person_children"]
        .iter()
        .find(|r| r["individual_id"] == json!(with_two) && r["index"] == json!(1))
        .expect("second element before");
    assert_eq!(remaining[0]["Child name"], was_second["Child name"]);
    assert_eq!(upserted(&report, "person_children"), (1, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_question_adds_a_column_backfilled_from_existing_rows() {
    let f = EtlFixture::new(&Spec {
        seed: 13,
        ..Spec::default()
    })
    .await;
    let org = f.org(0).clone();
    let client = &f.client;
    let s = org.schema_name.as_str();
    f.run_org(&org).await;

    // A question added to the person registration form, whose answers are
    // already in the rows (recorded before the form change reached the ETL):
    // the rows' modification times do not change.
    client
        .batch_execute(&format!(
            "INSERT INTO concept (uuid, name, data_type, organisation_id, created_by_id, last_modified_by_id) \
             VALUES ('6e3f1d2a-0000-4000-8000-00000000abcd', 'Height', 'Numeric', {org}, {user}, {user}); \
             INSERT INTO form_element (uuid, name, display_order, concept_id, form_element_group_id, organisation_id) \
             SELECT 'fe-height', 'Height', 99, c.id, feg.id, {org} FROM concept c, form_element_group feg \
             JOIN form f ON f.id = feg.form_id \
             WHERE c.uuid = '6e3f1d2a-0000-4000-8000-00000000abcd' AND f.name = 'registration:person'; \
             UPDATE individual SET observations = observations || jsonb_build_object('6e3f1d2a-0000-4000-8000-00000000abcd', id * 10) \
             WHERE subject_type_id = {person};",
            org = org.id,
            user = org.user_ids[0],
            person = org.subject_type_id("person"),
        ))
        .await
        .expect("add a question");

    let report = f.run_org(&org).await;
    let person = report
        .tables
        .iter()
        .find(|t| t.name == "person")
        .expect("person");
    assert_eq!(
        person.change,
        etl_service::engine::schema::schema_diff::TableChange::Altered
    );
    assert_eq!(
        person.rows_upserted as i64,
        integration_tests::avni::Size::SMALL.subjects_per_type
    );
    let rows = integration_tests::etl::rows(client, s, "person").await;
    assert!(!rows.is_empty());
    for r in &rows {
        assert_eq!(
            r["Height"],
            json!(r["id"].as_i64().unwrap_or_default() * 10),
            "{r}"
        );
    }
    let others_altered = report
        .tables
        .iter()
        .filter(|t| {
            t.name != "person"
                && t.change != etl_service::engine::schema::schema_diff::TableChange::Unchanged
        })
        .count();
    assert_eq!(others_altered, 0);
    assert_no_writes(&f.run_org(&org).await);
}
