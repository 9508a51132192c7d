//! What users do to source rows between runs: add, edit, void, cancel,
//! un-cancel, exit. Each change stamps `last_modified_date_time` with the
//! clock, as Avni does, so the next run's window picks it up.

use super::Org;
use serde_json::Value;
use tokio_postgres::Client;

/// A source table with transactional rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceTable {
    Individual,
    ProgramEnrolment,
    ProgramEncounter,
    Encounter,
}

impl SourceTable {
    fn name(self) -> &'static str {
        match self {
            SourceTable::Individual => "individual",
            SourceTable::ProgramEnrolment => "program_enrolment",
            SourceTable::ProgramEncounter => "program_encounter",
            SourceTable::Encounter => "encounter",
        }
    }
}

async fn returning_id(
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

async fn update(client: &Client, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) {
    let n = client
        .execute(sql, params)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{sql}"));
    assert_eq!(n, 1, "expected to change one row: {sql}");
}

/// A new subject of subject type `key` (people get last name, birth date
/// 1990-02-03 and gender Female; every subject lives in the first village).
pub async fn insert_subject(
    client: &Client,
    org: &Org,
    key: &str,
    first_name: &str,
    obs: &Value,
) -> i64 {
    let st = org.bundle.subject_type(key);
    let person = st.kind == "Person";
    let gender: Option<i32> = person.then(|| org.gender_ids["Female"]);
    let last: Option<&str> = person.then_some("Last");
    let middle: Option<&str> = st.allow_middle_name.then_some("Middle");
    returning_id(
        client,
        "INSERT INTO individual (uuid, subject_type_id, first_name, middle_name, last_name, date_of_birth, \
             gender_id, registration_date, address_id, registration_location, observations, organisation_id, \
             created_by_id, last_modified_by_id, created_date_time, last_modified_date_time) \
         VALUES (gen_random_uuid()::text, $1, $2, $3, $4, CASE WHEN $5 THEN date '1990-02-03' END, $6, \
             date '2024-05-01', $7, point(1, 2), $8::text::jsonb, $9, $10, $11, clock_timestamp(), clock_timestamp()) \
         RETURNING id",
        &[
            &org.subject_type_id(key),
            &first_name,
            &middle,
            &last,
            &person,
            &gender,
            &org.villages[0],
            &obs.to_string(),
            &org.id,
            &org.user_ids[0],
            &org.user_ids[1],
        ],
    )
    .await
}

/// A new enrolment of `individual` in program `key`.
pub async fn insert_enrolment(
    client: &Client,
    org: &Org,
    individual: i64,
    key: &str,
    obs: &Value,
) -> i64 {
    returning_id(
        client,
        "INSERT INTO program_enrolment (uuid, individual_id, program_id, enrolment_date_time, observations, \
             organisation_id, created_by_id, last_modified_by_id, created_date_time, last_modified_date_time) \
         VALUES (gen_random_uuid()::text, $1, $2, timestamptz '2024-05-02 10:00:00+00', $3::text::jsonb, $4, $5, $6, \
             clock_timestamp(), clock_timestamp()) RETURNING id",
        &[&individual, &org.program_id(key), &obs.to_string(), &org.id, &org.user_ids[0], &org.user_ids[1]],
    )
    .await
}

/// A new completed program encounter of type `key`.
pub async fn insert_program_encounter(
    client: &Client,
    org: &Org,
    enrolment: i64,
    key: &str,
    obs: &Value,
) -> i64 {
    returning_id(
        client,
        "INSERT INTO program_encounter (uuid, program_enrolment_id, encounter_type_id, name, \
             earliest_visit_date_time, max_visit_date_time, encounter_date_time, observations, organisation_id, \
             created_by_id, last_modified_by_id, created_date_time, last_modified_date_time) \
         VALUES (gen_random_uuid()::text, $1, $2, 'Visit', timestamptz '2024-05-03 00:00:00+00', \
             timestamptz '2024-05-10 00:00:00+00', timestamptz '2024-05-04 09:30:00+00', $3::text::jsonb, $4, $5, $6, \
             clock_timestamp(), clock_timestamp()) RETURNING id",
        &[&enrolment, &org.encounter_type_id(key), &obs.to_string(), &org.id, &org.user_ids[0], &org.user_ids[1]],
    )
    .await
}

/// A new completed general encounter of type `key`.
pub async fn insert_encounter(
    client: &Client,
    org: &Org,
    individual: i64,
    key: &str,
    obs: &Value,
) -> i64 {
    returning_id(
        client,
        "INSERT INTO encounter (uuid, individual_id, encounter_type_id, name, earliest_visit_date_time, \
             max_visit_date_time, encounter_date_time, observations, organisation_id, created_by_id, \
             last_modified_by_id, created_date_time, last_modified_date_time) \
         VALUES (gen_random_uuid()::text, $1, $2, 'Visit', timestamptz '2024-05-03 00:00:00+00', \
             timestamptz '2024-05-10 00:00:00+00', timestamptz '2024-05-04 09:30:00+00', $3::text::jsonb, $4, $5, $6, \
             clock_timestamp(), clock_timestamp()) RETURNING id",
        &[&individual, &org.encounter_type_id(key), &obs.to_string(), &org.id, &org.user_ids[0], &org.user_ids[1]],
    )
    .await
}

/// Replaces a row's observations.
pub async fn set_observations(client: &Client, table: SourceTable, id: i64, obs: &Value) {
    let sql = format!(
        "UPDATE {} SET observations = $2::text::jsonb, last_modified_date_time = clock_timestamp() WHERE id = $1",
        table.name()
    );
    update(client, &sql, &[&id, &obs.to_string()]).await;
}

/// Voids (soft-deletes) a row.
pub async fn void(client: &Client, table: SourceTable, id: i64) {
    let sql = format!(
        "UPDATE {} SET is_voided = true, last_modified_date_time = clock_timestamp() WHERE id = $1",
        table.name()
    );
    update(client, &sql, &[&id]).await;
}

/// Cancels an encounter with the cancel form's answers.
pub async fn cancel(client: &Client, table: SourceTable, id: i64, cancel_obs: &Value) {
    let sql = format!(
        "UPDATE {} SET cancel_date_time = timestamptz '2024-05-05 08:00:00+00', encounter_date_time = NULL, \
             cancel_observations = $2::text::jsonb, last_modified_date_time = clock_timestamp() WHERE id = $1",
        table.name()
    );
    update(client, &sql, &[&id, &cancel_obs.to_string()]).await;
}

/// Takes a cancellation back.
pub async fn uncancel(client: &Client, table: SourceTable, id: i64) {
    let sql = format!(
        "UPDATE {} SET cancel_date_time = NULL, cancel_observations = NULL, \
             encounter_date_time = timestamptz '2024-05-06 08:00:00+00', \
             last_modified_date_time = clock_timestamp() WHERE id = $1",
        table.name()
    );
    update(client, &sql, &[&id]).await;
}

/// Exits an enrolment with the exit form's answers.
pub async fn exit(client: &Client, enrolment: i64, exit_obs: &Value) {
    update(
        client,
        "UPDATE program_enrolment SET program_exit_date_time = timestamptz '2024-06-01 12:00:00+00', \
             program_exit_observations = $2::text::jsonb, last_modified_date_time = clock_timestamp() WHERE id = $1",
        &[&enrolment, &exit_obs.to_string()],
    )
    .await;
}

/// Takes an exit back.
pub async fn unexit(client: &Client, enrolment: i64) {
    update(
        client,
        "UPDATE program_enrolment SET program_exit_date_time = NULL, program_exit_observations = NULL, \
             last_modified_date_time = clock_timestamp() WHERE id = $1",
        &[&enrolment],
    )
    .await;
}
