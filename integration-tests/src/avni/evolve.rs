//! What people do to an organisation's forms and entities while analytics
//! runs (design/etl.md §5.2): add, rename, remove and void questions,
//! change a concept's data type, rename subject types, programs and
//! encounter types, void and restore form mappings. Forms are named by the
//! generator's keys (`registration:person`, `encounter:anc`, ...).

use super::Org;
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

async fn exec(client: &Client, sql: &str, params: &[&(dyn ToSql + Sync)]) -> u64 {
    client
        .execute(sql, params)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{sql}"))
}

async fn exec_one(client: &Client, sql: &str, params: &[&(dyn ToSql + Sync)]) {
    let n = exec(client, sql, params).await;
    assert!(n >= 1, "expected to change a row: {sql}");
}

/// Adds a question of a new concept (`uuid`, `name`, `data_type`) at the
/// end of form `form_key`. The concept may already exist (a question
/// asked on several forms); it is created if not.
pub async fn add_question(
    client: &Client,
    org: &Org,
    form_key: &str,
    uuid: &str,
    name: &str,
    data_type: &str,
) {
    exec(
        client,
        "INSERT INTO concept (uuid, name, data_type, organisation_id, created_by_id, last_modified_by_id) \
         VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (uuid, organisation_id) DO NOTHING",
        &[&uuid, &name, &data_type, &org.id, &org.user_ids[0]],
    )
    .await;
    exec_one(
        client,
        "INSERT INTO form_element (uuid, name, display_order, concept_id, form_element_group_id, organisation_id) \
         SELECT gen_random_uuid()::text, $3, 1000 + (SELECT count(*) FROM form_element), c.id, feg.id, $4 \
         FROM concept c, form_element_group feg JOIN form f ON f.id = feg.form_id \
         WHERE c.uuid = $1 AND c.organisation_id = $4 AND f.name = $2 AND f.organisation_id = $4",
        &[&uuid, &form_key, &name, &org.id],
    )
    .await;
}

/// Renames a concept (every question asking it).
pub async fn rename_concept(client: &Client, org: &Org, uuid: &str, name: &str) {
    exec_one(
        client,
        "UPDATE concept SET name = $2, last_modified_date_time = now() WHERE uuid = $1 AND organisation_id = $3",
        &[&uuid, &name, &org.id],
    )
    .await;
}

/// Changes a concept's data type.
pub async fn change_concept_type(client: &Client, org: &Org, uuid: &str, data_type: &str) {
    exec_one(
        client,
        "UPDATE concept SET data_type = $2, last_modified_date_time = now() WHERE uuid = $1 AND organisation_id = $3",
        &[&uuid, &data_type, &org.id],
    )
    .await;
}

const FORM_ELEMENTS: &str = "form_element_group_id IN (SELECT feg.id FROM form_element_group feg \
     JOIN form f ON f.id = feg.form_id WHERE f.name = $1 AND f.organisation_id = $3) \
     AND concept_id IN (SELECT id FROM concept WHERE uuid = $2 AND organisation_id = $3)";

/// Voids (`voided`) or restores the question asking concept `uuid` on
/// form `form_key`.
pub async fn set_question_voided(
    client: &Client,
    org: &Org,
    form_key: &str,
    uuid: &str,
    voided: bool,
) {
    exec_one(
        client,
        &format!("UPDATE form_element SET is_voided = $4 WHERE {FORM_ELEMENTS}"),
        &[&form_key, &uuid, &org.id, &voided],
    )
    .await;
}

/// Deletes the question asking concept `uuid` from form `form_key`.
pub async fn remove_question(client: &Client, org: &Org, form_key: &str, uuid: &str) {
    exec_one(
        client,
        &format!("DELETE FROM form_element WHERE {FORM_ELEMENTS}"),
        &[&form_key, &uuid, &org.id],
    )
    .await;
}

/// Renames subject type `key`, as the organisation shows it (its
/// operational name, which wins) and at its base.
pub async fn rename_subject_type(client: &Client, org: &Org, key: &str, name: &str) {
    let id = org.subject_type_id(key);
    exec_one(
        client,
        "UPDATE subject_type SET name = $2 WHERE id = $1",
        &[&id, &name],
    )
    .await;
    exec_one(
        client,
        "UPDATE operational_subject_type SET name = $2 WHERE subject_type_id = $1",
        &[&id, &name],
    )
    .await;
}

pub async fn rename_program(client: &Client, org: &Org, key: &str, name: &str) {
    let id = org.program_id(key);
    exec_one(
        client,
        "UPDATE program SET name = $2 WHERE id = $1",
        &[&id, &name],
    )
    .await;
    exec_one(
        client,
        "UPDATE operational_program SET name = $2 WHERE program_id = $1",
        &[&id, &name],
    )
    .await;
}

pub async fn rename_encounter_type(client: &Client, org: &Org, key: &str, name: &str) {
    let id = org.encounter_type_id(key);
    exec_one(
        client,
        "UPDATE encounter_type SET name = $2 WHERE id = $1",
        &[&id, &name],
    )
    .await;
    exec_one(
        client,
        "UPDATE operational_encounter_type SET name = $2 WHERE encounter_type_id = $1",
        &[&id, &name],
    )
    .await;
}

/// Voids (`voided`) or restores the mapping of form `form_key`.
pub async fn set_mapping_voided(client: &Client, org: &Org, form_key: &str, voided: bool) {
    exec_one(
        client,
        "UPDATE form_mapping SET is_voided = $3 WHERE organisation_id = $2 \
         AND form_id IN (SELECT id FROM form WHERE name = $1 AND organisation_id = $2)",
        &[&form_key, &org.id, &voided],
    )
    .await;
}
