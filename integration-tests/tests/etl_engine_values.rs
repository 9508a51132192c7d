//! Each table type, each concept type and its column type, coded answers as
//! names, question groups and repeatable question groups: exact values for
//! a small generated organisation with hand-written rows.

use integration_tests::avni::edit::{self, SourceTable};
use integration_tests::avni::{Org, Size, Spec};
use integration_tests::etl::{EtlFixture, rows};
use serde_json::{Map, Value, json};
use tokio_postgres::Client;

fn obj(pairs: &[(&str, Value)]) -> Value {
    let mut map = Map::new();
    for (k, v) in pairs {
        map.insert((*k).to_string(), v.clone());
    }
    Value::Object(map)
}

/// Answers to every question of the bundle's forms.
fn full_observations(org: &Org) -> Value {
    let b = &org.bundle;
    let c = |k: &str| b.concept(k).uuid.clone();
    obj(&[
        (&c("weight"), json!(72.5)),
        (&c("notes"), json!("Line one")),
        (&c("comments"), json!("All good")),
        // Midnight in Kolkata is 18:30 UTC the day before.
        (&c("visit_date"), json!("2024-03-31T18:30:00.000Z")),
        (&c("visit_time"), json!("2024-03-31T18:45:00.000Z")),
        (&c("wake_time"), json!("06:45")),
        (&c("illness"), json!("3 days")),
        (&c("photo"), json!("photo.jpg")),
        (
            &c("photo_v2"),
            json!([{"uri": "a.jpg", "description": "front"}]),
        ),
        (&c("beneficiary_id"), json!("BEN-001")),
        (&c("mother"), json!("5a9c1a4e-0000-4000-8000-000000000001")),
        (&c("home"), json!("5a9c1a4e-0000-4000-8000-000000000002")),
        (&c("blood_group"), json!(b.answer("blood_group", "O+"))),
        // Recorded order, not answer order.
        (
            &c("symptoms"),
            json!([b.answer("symptoms", "Rash"), b.answer("symptoms", "Fever")]),
        ),
        (
            &c("vitals"),
            obj(&[(&c("pulse"), json!(80)), (&c("remark"), json!("steady"))]),
        ),
        (
            &c("children"),
            json!([
                obj(&[
                    (&c("child_name"), json!("Asha")),
                    (&c("child_age"), json!(4)),
                    (&c("child_sex"), json!(b.answer("child_sex", "Girl"))),
                ]),
                // A single-select answer sometimes comes as a one-element array.
                obj(&[
                    (&c("child_name"), json!("Ravi")),
                    (&c("child_age"), json!(2)),
                    (&c("child_sex"), json!([b.answer("child_sex", "Boy")])),
                ]),
            ]),
        ),
    ])
}

/// The question columns every table gets from `full_observations`.
fn expected_questions() -> Vec<(&'static str, Value)> {
    vec![
        ("Weight", json!(72.5)),
        ("Notes", json!("Line one")),
        ("Comments", json!("All good")),
        ("Visit date", json!("2024-04-01")),
        ("Visit time", json!("2024-04-01T00:15:00")),
        ("Wake up time", json!("06:45:00")),
        ("Duration of illness", json!("3 days")),
        ("Photo", json!("photo.jpg")),
        (
            "Photo v2",
            json!([{"uri": "a.jpg", "description": "front"}]),
        ),
        ("Beneficiary id", json!("BEN-001")),
        ("Mother", json!("5a9c1a4e-0000-4000-8000-000000000001")),
        (
            "Home location",
            json!("5a9c1a4e-0000-4000-8000-000000000002"),
        ),
        ("Blood group", json!("O+")),
        ("Symptoms", json!("Rash, Fever")),
        ("Vitals Pulse", json!(80)),
        ("Vitals Remark", json!("steady")),
    ]
}

const QUESTION_TYPES: &[(&str, &str)] = &[
    ("Weight", "numeric"),
    ("Notes", "text"),
    ("Comments", "text"),
    ("Visit date", "date"),
    ("Visit time", "timestamp without time zone"),
    ("Wake up time", "time without time zone"),
    ("Duration of illness", "text"),
    ("Photo", "text"),
    ("Photo v2", "jsonb"),
    ("Beneficiary id", "text"),
    ("Mother", "text"),
    ("Home location", "text"),
    ("Blood group", "text"),
    ("Symptoms", "text"),
    ("Vitals Pulse", "numeric"),
    ("Vitals Remark", "text"),
];

async fn columns(client: &Client, schema: &str, table: &str) -> Vec<(String, String)> {
    client
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
            &[&schema, &table],
        )
        .await
        .expect("columns")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

fn assert_row(row: &Value, expected: &[(&str, Value)], what: &str) {
    for (column, value) in expected {
        assert_eq!(
            row.get(*column),
            Some(value),
            "{what}: column {column:?} in {row}"
        );
    }
}

async fn single_row(client: &Client, schema: &str, table: &str) -> Value {
    let mut all = rows(client, schema, table).await;
    assert_eq!(all.len(), 1, "{table}: {all:?}");
    all.remove(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_table_type_and_concept_type_has_exact_values() {
    let f = EtlFixture::new(&Spec {
        seed: 7,
        size: Size::EMPTY,
        ..Spec::default()
    })
    .await;
    let org = f.org(0).clone();
    let client = &f.client;
    let s = org.schema_name.as_str();
    let obs = full_observations(&org);

    let person = edit::insert_subject(client, &org, "person", "Asha Devi", &obs).await;
    let household = edit::insert_subject(client, &org, "household", "House 9", &obs).await;
    let enrolment = edit::insert_enrolment(client, &org, person, "pregnancy", &obs).await;
    edit::exit(client, enrolment, &obs).await;
    let anc = edit::insert_program_encounter(client, &org, enrolment, "anc", &obs).await;
    let anc_cancelled = edit::insert_program_encounter(client, &org, enrolment, "anc", &obs).await;
    edit::cancel(client, SourceTable::ProgramEncounter, anc_cancelled, &obs).await;
    let survey = edit::insert_encounter(client, &org, person, "survey", &obs).await;
    let survey_cancelled = edit::insert_encounter(client, &org, person, "survey", &obs).await;
    edit::cancel(client, SourceTable::Encounter, survey_cancelled, &obs).await;

    let report = f.run_org(&org).await;
    assert!(
        report
            .tables
            .iter()
            .all(|t| t.change == etl_service::engine::schema::schema_diff::TableChange::Created)
    );

    let questions = expected_questions();
    let audit = vec![
        ("is_voided", json!(false)),
        ("organisation_id", json!(org.id)),
        ("created_by", json!(org.usernames[0])),
        ("last_modified_by", json!(org.usernames[1])),
    ];

    // Subject: a person has names, birth date and gender.
    let row = single_row(client, s, "person").await;
    assert_row(&row, &questions, "person");
    assert_row(&row, &audit, "person");
    assert_row(
        &row,
        &[
            ("id", json!(person)),
            ("first_name", json!("Asha Devi")),
            ("middle_name", json!("Middle")),
            ("last_name", json!("Last")),
            ("date_of_birth", json!("1990-02-03")),
            ("date_of_birth_verified", json!(false)),
            ("gender", json!("Female")),
            ("registration_date", json!("2024-05-01")),
            ("address_id", json!(org.villages[0])),
            ("registration_location", json!("(1,2)")),
        ],
        "person",
    );
    let mut expected_columns: Vec<(String, String)> = [
        ("id", "bigint"),
        ("uuid", "text"),
        ("first_name", "text"),
        ("middle_name", "text"),
        ("last_name", "text"),
        ("date_of_birth", "date"),
        ("date_of_birth_verified", "boolean"),
        ("gender", "text"),
        ("registration_date", "date"),
        ("address_id", "bigint"),
        ("registration_location", "text"),
        ("is_voided", "boolean"),
        ("organisation_id", "integer"),
        ("created_by", "text"),
        ("last_modified_by", "text"),
        ("created_date_time", "timestamp with time zone"),
        ("last_modified_date_time", "timestamp with time zone"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    expected_columns.extend(
        QUESTION_TYPES
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string())),
    );
    assert_eq!(columns(client, s, "person").await, expected_columns);

    // Subject of another kind: a name and no person fields.
    let row = single_row(client, s, "household").await;
    assert_row(&row, &questions, "household");
    assert_row(
        &row,
        &[("id", json!(household)), ("first_name", json!("House 9"))],
        "household",
    );
    assert!(row.get("gender").is_none() && row.get("last_name").is_none());

    // Enrolment, and exit with the exit form's answers.
    for table in ["person_pregnancy", "person_pregnancy_exit"] {
        let row = single_row(client, s, table).await;
        assert_row(&row, &questions, table);
        assert_row(&row, &audit, table);
        assert_row(
            &row,
            &[
                ("id", json!(enrolment)),
                ("individual_id", json!(person)),
                ("enrolment_date_time", json!("2024-05-02T10:00:00+00:00")),
                ("program_exit_date_time", json!("2024-06-01T12:00:00+00:00")),
            ],
            table,
        );
    }

    // Program encounters: both rows in the encounter table, the cancelled
    // one also in the cancel table with the cancel form's answers.
    let all = rows(client, s, "person_pregnancy_anc").await;
    assert_eq!(all.len(), 2);
    assert_row(&all[0], &questions, "anc");
    assert_row(
        &all[0],
        &[
            ("id", json!(anc)),
            ("name", json!("Visit")),
            ("individual_id", json!(person)),
            ("program_enrolment_id", json!(enrolment)),
            (
                "earliest_visit_date_time",
                json!("2024-05-03T00:00:00+00:00"),
            ),
            ("max_visit_date_time", json!("2024-05-10T00:00:00+00:00")),
            ("encounter_date_time", json!("2024-05-04T09:30:00+00:00")),
            ("cancel_date_time", Value::Null),
        ],
        "anc",
    );
    assert_row(
        &all[1],
        &[
            ("id", json!(anc_cancelled)),
            ("encounter_date_time", Value::Null),
            ("cancel_date_time", json!("2024-05-05T08:00:00+00:00")),
        ],
        "anc cancelled",
    );
    let row = single_row(client, s, "person_pregnancy_anc_cancel").await;
    assert_row(&row, &questions, "anc cancel");
    assert_row(
        &row,
        &[
            ("id", json!(anc_cancelled)),
            ("program_enrolment_id", json!(enrolment)),
            ("cancel_date_time", json!("2024-05-05T08:00:00+00:00")),
        ],
        "anc cancel",
    );

    // General encounters and their cancellations.
    let all = rows(client, s, "person_survey").await;
    assert_eq!(
        all.iter().map(|r| r["id"].clone()).collect::<Vec<_>>(),
        vec![json!(survey), json!(survey_cancelled)]
    );
    assert_row(&all[0], &questions, "survey");
    let row = single_row(client, s, "person_survey_cancel").await;
    assert_row(&row, &questions, "survey cancel");
    assert_row(
        &row,
        &[
            ("id", json!(survey_cancelled)),
            ("individual_id", json!(person)),
        ],
        "survey cancel",
    );

    // Repeatable question groups: one row per element, with the parent's id
    // and the element's index; single-select as one-element array resolved.
    let children = |parent_column: &'static str, parent: i64| {
        vec![
            vec![
                (parent_column, json!(parent)),
                ("index", json!(0)),
                ("Child name", json!("Asha")),
                ("Child age", json!(4)),
                ("Child sex", json!("Girl")),
            ],
            vec![
                (parent_column, json!(parent)),
                ("index", json!(1)),
                ("Child name", json!("Ravi")),
                ("Child age", json!(2)),
                ("Child sex", json!("Boy")),
            ],
        ]
    };
    for (table, expected) in [
        ("person_children", children("individual_id", person)),
        ("household_children", children("individual_id", household)),
        (
            "person_pregnancy_children",
            children("program_enrolment_id", enrolment),
        ),
        (
            "person_pregnancy_exit_children",
            children("program_enrolment_id", enrolment),
        ),
        (
            "person_survey_cancel_children",
            children("encounter_id", survey_cancelled),
        ),
        (
            "person_pregnancy_anc_cancel_children",
            children("program_encounter_id", anc_cancelled),
        ),
    ] {
        let all = rows(client, s, table).await;
        assert_eq!(all.len(), 2, "{table}: {all:?}");
        for (row, exp) in all.iter().zip(&expected) {
            assert_row(row, exp, table);
        }
    }
    // A cancelled encounter keeps its own answers in the encounter table.
    for (table, parent_column, ids) in [
        (
            "person_pregnancy_anc_children",
            "program_encounter_id",
            [anc, anc_cancelled],
        ),
        (
            "person_survey_children",
            "encounter_id",
            [survey, survey_cancelled],
        ),
    ] {
        let all = rows(client, s, table).await;
        let expected: Vec<Vec<(&str, Value)>> = ids
            .iter()
            .flat_map(|id| children(parent_column, *id))
            .collect();
        assert_eq!(
            all.len(),
            expected.len(),
            "{table}: both encounters' groups"
        );
        for (row, exp) in all.iter().zip(&expected) {
            assert_row(row, exp, table);
        }
    }
    assert_eq!(
        columns(client, s, "person_children")
            .await
            .iter()
            .filter(|(n, _)| n.starts_with("Child"))
            .cloned()
            .collect::<Vec<_>>(),
        vec![
            ("Child name".to_string(), "text".to_string()),
            ("Child age".to_string(), "numeric".to_string()),
            ("Child sex".to_string(), "text".to_string()),
        ]
    );

    // Address: one row per level, with each ancestor's title and id.
    let address = rows(client, s, "address").await;
    assert_eq!(address.len(), 14, "2 states, 4 districts, 8 villages");
    let village = address
        .iter()
        .find(|r| r["id"] == json!(org.villages[0]))
        .expect("first village");
    let district_id = village["parent_id"].clone();
    let district = address
        .iter()
        .find(|r| r["id"] == district_id)
        .expect("its district");
    assert_row(
        village,
        &[
            ("title", json!("State 1.1.1")),
            ("type", json!("Village")),
            ("Village", json!("State 1.1.1")),
            ("Village id", json!(org.villages[0])),
            ("District", json!("State 1.1")),
            ("District id", district_id.clone()),
            ("State", json!("State 1")),
            ("State id", district["parent_id"].clone()),
        ],
        "village",
    );
    assert_row(
        district,
        &[
            ("Village", Value::Null),
            ("Village id", Value::Null),
            ("District", json!("State 1.1")),
        ],
        "district",
    );

    // Metadata describes the tables: every column with its type and concept.
    let described: i64 = client
        .query_one(
            "SELECT count(*) FROM column_metadata c JOIN table_metadata t ON t.id = c.table_id \
             WHERE t.schema_name = $1 AND t.name = 'person' AND c.concept_uuid IS NOT NULL",
            &[&s],
        )
        .await
        .expect("metadata")
        .get(0);
    assert_eq!(described as usize, QUESTION_TYPES.len());
    let numeric: String = client
        .query_one(
            "SELECT c.type FROM column_metadata c JOIN table_metadata t ON t.id = c.table_id \
             WHERE t.schema_name = $1 AND t.name = 'person' AND c.concept_uuid = $2",
            &[&s, &org.bundle.concept("weight").uuid],
        )
        .await
        .expect("weight metadata")
        .get(0);
    assert_eq!(numeric, "numeric");
}
