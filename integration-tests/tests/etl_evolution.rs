//! Schema evolution (design/etl.md §5.2): each change to forms and entities
//! is applied by the next run with no manual step and no data lost, and the
//! metadata tables describe the schema as it is afterwards.

use etl_service::engine::schema::schema_diff::TableChange;
use integration_tests::avni::edit::{self, SourceTable};
use integration_tests::avni::evolve;
use integration_tests::avni::{Org, Spec};
use integration_tests::etl::{
    EtlFixture, assert_metadata_describes_schema, columns, rows, table_metadata,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use tokio_postgres::Client;

async fn fixture(seed: u64) -> (EtlFixture, Org) {
    let f = EtlFixture::new(&Spec {
        seed,
        ..Spec::default()
    })
    .await;
    let org = f.org(0).clone();
    f.run_org(&org).await;
    (f, org)
}

/// A column's values by row id.
async fn values(client: &Client, schema: &str, table: &str, column: &str) -> BTreeMap<i64, Value> {
    rows(client, schema, table)
        .await
        .into_iter()
        .map(|r| {
            (
                r["id"].as_i64().expect("id"),
                r.get(column)
                    .cloned()
                    .unwrap_or_else(|| panic!("{table} has no column {column}: {r}")),
            )
        })
        .collect()
}

async fn column_type(client: &Client, schema: &str, table: &str, column: &str) -> Option<String> {
    columns(client, schema, table)
        .await
        .into_iter()
        .find(|(n, _)| n == column)
        .map(|(_, t)| t)
}

async fn table_exists(client: &Client, schema: &str, table: &str) -> bool {
    client
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename = $2",
            &[&schema, &table],
        )
        .await
        .expect("pg_tables")
        .get::<_, i64>(0)
        == 1
}

fn non_null(values: &BTreeMap<i64, Value>) -> usize {
    values.values().filter(|v| !v.is_null()).count()
}

fn change_of(report: &etl_service::engine::RunReport, table: &str) -> TableChange {
    report
        .tables
        .iter()
        .find(|t| t.name == table)
        .unwrap_or_else(|| panic!("{table} not in the report"))
        .change
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_question_adds_a_column_backfilled_from_existing_rows() {
    let (f, org) = fixture(21).await;
    let (client, s) = (&f.client, org.schema_name.as_str());
    assert_eq!(column_type(client, s, "person", "Height").await, None);
    let height = "0b4b3f00-0000-4000-8000-000000000021";
    // The answers are in the rows before the form change reaches the ETL:
    // the rows' modification times do not move.
    client
        .execute(
            "UPDATE individual SET observations = observations || jsonb_build_object($1::text, id * 10) \
             WHERE subject_type_id = $2",
            &[&height, &org.subject_type_id("person")],
        )
        .await
        .expect("answers");
    evolve::add_question(
        client,
        &org,
        "registration:person",
        height,
        "Height",
        "Numeric",
    )
    .await;
    let report = f.run_org(&org).await;
    assert_eq!(change_of(&report, "person"), TableChange::Altered);

    assert_eq!(
        column_type(client, s, "person", "Height").await.as_deref(),
        Some("numeric")
    );
    let filled = values(client, s, "person", "Height").await;
    assert!(!filled.is_empty());
    for (id, v) in &filled {
        assert_eq!(*v, json!(id * 10), "row {id}");
    }
    assert_metadata_describes_schema(client, s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_renamed_concept_renames_its_column_and_keeps_its_values() {
    let (f, org) = fixture(22).await;
    let (client, s) = (&f.client, org.schema_name.as_str());
    let weight_before = values(client, s, "person", "Weight").await;
    let notes_before = values(client, s, "person", "Notes").await;
    assert!(non_null(&weight_before) > 0 && non_null(&notes_before) > 0);

    evolve::rename_concept(
        client,
        &org,
        &org.bundle.concept("weight").uuid,
        "Body weight",
    )
    .await;
    let report = f.run_org(&org).await;
    assert_eq!(change_of(&report, "person"), TableChange::Altered);
    let person = report
        .tables
        .iter()
        .find(|t| t.name == "person")
        .expect("person");
    assert_eq!(person.rows_upserted, 0, "a rename moves no rows");
    assert_eq!(column_type(client, s, "person", "Weight").await, None);
    assert_eq!(
        column_type(client, s, "person", "Body weight")
            .await
            .as_deref(),
        Some("numeric")
    );
    assert_eq!(
        values(client, s, "person", "Body weight").await,
        weight_before
    );
    // Every table asking the concept renames its column.
    assert!(
        column_type(client, s, "household_home_visit", "Body weight")
            .await
            .is_some()
    );

    // Two concepts trade names: each column follows its concept.
    evolve::rename_concept(client, &org, &org.bundle.concept("weight").uuid, "Notes").await;
    evolve::rename_concept(
        client,
        &org,
        &org.bundle.concept("notes").uuid,
        "Body weight",
    )
    .await;
    f.run_org(&org).await;
    assert_eq!(
        column_type(client, s, "person", "Notes").await.as_deref(),
        Some("numeric")
    );
    assert_eq!(
        column_type(client, s, "person", "Body weight")
            .await
            .as_deref(),
        Some("text")
    );
    assert_eq!(values(client, s, "person", "Notes").await, weight_before);
    assert_eq!(
        values(client, s, "person", "Body weight").await,
        notes_before
    );
    assert_metadata_describes_schema(client, s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn renamed_entities_rename_their_tables_with_their_rows() {
    let (f, org) = fixture(23).await;
    let (client, s) = (&f.client, org.schema_name.as_str());
    let renames = [
        ("person", "member"),
        ("person_children", "member_children"),
        ("person_pregnancy", "member_motherhood"),
        ("person_pregnancy_exit", "member_motherhood_exit"),
        ("person_pregnancy_anc", "member_motherhood_antenatal"),
        (
            "person_pregnancy_anc_cancel",
            "member_motherhood_antenatal_cancel",
        ),
        (
            "person_pregnancy_anc_children",
            "member_motherhood_antenatal_children",
        ),
        ("person_survey", "member_survey"),
    ];
    let mut before = BTreeMap::new();
    for (old, _) in renames {
        let r = rows(client, s, old).await;
        assert!(!r.is_empty(), "{old} has rows");
        before.insert(old, (columns(client, s, old).await, r));
    }

    evolve::rename_subject_type(client, &org, "person", "Member").await;
    evolve::rename_program(client, &org, "pregnancy", "Motherhood").await;
    evolve::rename_encounter_type(client, &org, "anc", "Antenatal").await;
    let report = f.run_org(&org).await;
    assert_eq!(report.rows_upserted(), 0, "renames move no rows");
    for (old, new) in renames {
        assert!(!table_exists(client, s, old).await, "{old} still exists");
        assert_eq!(change_of(&report, new), TableChange::Altered);
        let (cols, r) = &before[old];
        assert_eq!(&columns(client, s, new).await, cols, "columns of {new}");
        assert_eq!(&rows(client, s, new).await, r, "rows of {new}");
    }
    let (voided, _) = table_metadata(client, s, "member").await;
    assert!(!voided);

    // Two subject types trade names: the tables trade theirs.
    let household = rows(client, s, "household").await;
    evolve::rename_subject_type(client, &org, "person", "Household").await;
    evolve::rename_subject_type(client, &org, "household", "Member").await;
    f.run_org(&org).await;
    assert_eq!(rows(client, s, "household").await, before["person"].1);
    assert_eq!(rows(client, s, "member").await, household);
    assert!(table_exists(client, s, "household_motherhood").await);
    assert!(table_exists(client, s, "member_home_visit").await);
    assert_metadata_describes_schema(client, s).await;

    // The renamed tables keep syncing.
    let added = edit::insert_subject(client, &org, "person", "After rename", &json!({})).await;
    f.run_org(&org).await;
    assert!(
        rows(client, s, "household")
            .await
            .iter()
            .any(|r| r["id"] == json!(added))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn removed_and_voided_questions_keep_their_columns_as_voided() {
    let (f, org) = fixture(24).await;
    let (client, s) = (&f.client, org.schema_name.as_str());
    let notes = values(client, s, "person", "Notes").await;
    let comments = values(client, s, "person", "Comments").await;
    assert!(non_null(&notes) > 0 && non_null(&comments) > 0);

    evolve::remove_question(
        client,
        &org,
        "registration:person",
        &org.bundle.concept("notes").uuid,
    )
    .await;
    evolve::set_question_voided(
        client,
        &org,
        "registration:person",
        &org.bundle.concept("comments").uuid,
        true,
    )
    .await;
    let report = f.run_org(&org).await;
    assert_eq!(change_of(&report, "person"), TableChange::Altered);
    assert_eq!(column_type(client, s, "person", "Notes").await, None);
    assert_eq!(column_type(client, s, "person", "Comments").await, None);
    assert_eq!(
        column_type(client, s, "person", "voided_Notes")
            .await
            .as_deref(),
        Some("text")
    );
    assert_eq!(values(client, s, "person", "voided_Notes").await, notes);
    assert_eq!(
        values(client, s, "person", "voided_Comments").await,
        comments
    );
    let (_, meta) = table_metadata(client, s, "person").await;
    assert_eq!(meta["voided_Notes"], ("text".to_string(), true));
    assert_eq!(meta["voided_Comments"], ("text".to_string(), true));
    assert_eq!(meta["Weight"], ("numeric".to_string(), false));
    // Other forms still ask the question.
    assert!(
        column_type(client, s, "individual", "Notes")
            .await
            .is_some()
    );

    // A voided column is no longer written: a new row leaves it empty.
    let obs = json!({ org.bundle.concept("notes").uuid.clone(): "new note" });
    let added = edit::insert_subject(client, &org, "person", "Later", &obs).await;
    f.run_org(&org).await;
    assert_eq!(
        values(client, s, "person", "voided_Notes").await[&added],
        Value::Null
    );

    // The question comes back: its column is revived and filled again.
    evolve::set_question_voided(
        client,
        &org,
        "registration:person",
        &org.bundle.concept("comments").uuid,
        false,
    )
    .await;
    f.run_org(&org).await;
    assert_eq!(
        column_type(client, s, "person", "voided_Comments").await,
        None
    );
    let revived = values(client, s, "person", "Comments").await;
    for (id, v) in &comments {
        assert_eq!(&revived[id], v, "row {id}");
    }
    assert_metadata_describes_schema(client, s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_concept_type_voids_the_old_column_and_backfills_a_new_one() {
    let (f, org) = fixture(25).await;
    let (client, s) = (&f.client, org.schema_name.as_str());
    let weight = values(client, s, "person", "Weight").await;
    assert!(non_null(&weight) > 0);
    assert_eq!(
        column_type(client, s, "person", "Weight").await.as_deref(),
        Some("numeric")
    );

    evolve::change_concept_type(client, &org, &org.bundle.concept("weight").uuid, "Text").await;
    let report = f.run_org(&org).await;
    assert_eq!(change_of(&report, "person"), TableChange::Altered);
    assert_eq!(
        column_type(client, s, "person", "voided_Weight")
            .await
            .as_deref(),
        Some("numeric")
    );
    assert_eq!(
        column_type(client, s, "person", "Weight").await.as_deref(),
        Some("text")
    );
    assert_eq!(values(client, s, "person", "voided_Weight").await, weight);
    // Backfilled: every row has the answer as text now.
    let differing: i64 = client
        .query_one(
            &format!(
                "SELECT count(*) FROM {}.person WHERE \"Weight\" IS DISTINCT FROM \"voided_Weight\"::text",
                service_kit::sql::quote_ident(s)
            ),
            &[],
        )
        .await
        .expect("compare")
        .get(0);
    assert_eq!(differing, 0);
    let (_, meta) = table_metadata(client, s, "person").await;
    assert_eq!(meta["voided_Weight"], ("numeric".to_string(), true));
    assert_eq!(meta["Weight"], ("text".to_string(), false));
    assert_metadata_describes_schema(client, s).await;

    // The reference system failed every run from here on; this one runs on.
    let again = f.run_org(&org).await;
    assert_eq!(again.rows_upserted(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_voided_mapping_keeps_its_table_unsynced_until_restored() {
    let (f, org) = fixture(26).await;
    let (client, s) = (&f.client, org.schema_name.as_str());
    let table = "household_home_visit";
    let before = rows(client, s, table).await;
    assert!(!before.is_empty());
    let household: i64 = client
        .query_one(
            "SELECT min(id) FROM individual WHERE subject_type_id = $1",
            &[&(org.subject_type_id("household"))],
        )
        .await
        .expect("household")
        .get(0);

    evolve::set_mapping_voided(client, &org, "encounter:home_visit", true).await;
    let added = edit::insert_encounter(client, &org, household, "home_visit", &json!({})).await;
    let report = f.run_org(&org).await;
    assert!(
        report.tables.iter().all(|t| t.name != table),
        "a voided table is not synced"
    );
    assert_eq!(rows(client, s, table).await, before, "kept as it was");
    let (voided, _) = table_metadata(client, s, table).await;
    assert!(voided, "marked voided in the metadata");
    let visits: i64 = client
        .query_one(
            &format!(
                "SELECT count(*) FROM {}.completed_visits_view WHERE reporting_table = $1",
                service_kit::sql::quote_ident(s)
            ),
            &[&table],
        )
        .await
        .expect("view")
        .get(0);
    assert_eq!(visits, 0, "the views leave voided tables out");
    assert_metadata_describes_schema(client, s).await;

    evolve::set_mapping_voided(client, &org, "encounter:home_visit", false).await;
    let report = f.run_org(&org).await;
    assert_eq!(change_of(&report, table), TableChange::Altered);
    let (voided, _) = table_metadata(client, s, table).await;
    assert!(!voided);
    let after = rows(client, s, table).await;
    assert_eq!(after.len(), before.len() + 1);
    assert!(after.iter().any(|r| r["id"] == json!(added)));
    edit::void(client, SourceTable::Encounter, added).await;
    f.run_org(&org).await;
    let voided_row = rows(client, s, table)
        .await
        .into_iter()
        .find(|r| r["id"] == json!(added))
        .expect("row");
    assert_eq!(voided_row["is_voided"], json!(true), "synced again");
}

#[tokio::test(flavor = "multi_thread")]
async fn allowing_middle_names_adds_the_fixed_column_backfilled() {
    let (f, org) = fixture(27).await;
    let (client, s) = (&f.client, org.schema_name.as_str());
    assert_eq!(
        column_type(client, s, "household", "middle_name").await,
        None
    );
    client
        .execute(
            "UPDATE subject_type SET allow_middle_name = true WHERE id = $1",
            &[&org.subject_type_id("household")],
        )
        .await
        .expect("allow");
    client
        .execute(
            "UPDATE individual SET middle_name = 'M' || id WHERE subject_type_id = $1",
            &[&org.subject_type_id("household")],
        )
        .await
        .expect("names");
    f.run_org(&org).await;
    let middle = values(client, s, "household", "middle_name").await;
    assert!(!middle.is_empty());
    for (id, v) in &middle {
        assert_eq!(*v, json!(format!("M{id}")));
    }
    assert_metadata_describes_schema(client, s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_answer_empties_its_cell_and_nothing_else() {
    let (f, org) = fixture(28).await;
    let (client, s) = (&f.client, org.schema_name.as_str());
    let c = |k: &str| org.bundle.concept(k).uuid.clone();
    let bad = json!({
        c("visit_date"): "2024-13-45",
        c("visit_time"): "2023-02-29T10:00:00.000Z",
        c("wake_time"): "25:99",
        c("weight"): "1e999999",
        c("comments"): "still here",
    });
    let odd_but_valid = json!({
        c("visit_date"): "2024-02-29T00:00:00.000Z",
        c("visit_time"): "2024-02-29 10:00:00+00",
        c("wake_time"): "24:00:00",
        c("weight"): " 12.5 ",
    });
    let bad_id = edit::insert_subject(client, &org, "person", "Bad", &bad).await;
    let odd_id = edit::insert_subject(client, &org, "person", "Odd", &odd_but_valid).await;
    let report = f.run_org(&org).await;
    assert!(
        report
            .tables
            .iter()
            .any(|t| t.name == "person" && t.rows_upserted == 2)
    );

    let all = rows(client, s, "person").await;
    let row = |id: i64| {
        all.iter()
            .find(|r| r["id"] == json!(id))
            .expect("row")
            .clone()
    };
    let b = row(bad_id);
    for column in ["Visit date", "Visit time", "Wake up time", "Weight"] {
        assert_eq!(b[column], Value::Null, "{column} of {b}");
    }
    assert_eq!(b["Comments"], json!("still here"));
    assert_eq!(b["first_name"], json!("Bad"));
    let o = row(odd_id);
    assert_eq!(o["Visit date"], json!("2024-02-29"));
    assert_eq!(o["Visit time"], json!("2024-02-29T15:30:00"));
    assert_eq!(o["Wake up time"], json!("24:00:00"));
    assert_eq!(o["Weight"], json!(12.5));
}
