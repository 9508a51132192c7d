//! Transactional rows in bulk, generated inside PostgreSQL: one
//! `INSERT ... SELECT ... FROM generate_series` per subject type, program
//! and encounter type, with observations built from the row number, so
//! size costs one statement, not one round trip per row.
//!
//! Every value is a function of the row number and the bundle's seed:
//! some subjects are voided, some enrolments exited, some encounters
//! cancelled or voided, and repeatable groups have 0 to 2 elements.

use super::bundle::{Bundle, ConceptDef};
use super::{Org, Size};
use service_kit::sql::quote_literal;
use tokio_postgres::Client;

/// When generated rows were last modified: well before any run.
const ROW_TIME: &str = "timestamptz '2025-01-01 00:00:00+00'";

/// Fills `org` with rows of `size`.
pub async fn fill(client: &Client, org: &Org, size: Size) {
    if size.subjects_per_type == 0 {
        return;
    }
    let b = &org.bundle;
    let (admin, worker) = (org.user_ids[0], org.user_ids[1]);
    let villages: Vec<String> = org.villages.iter().map(|v| v.to_string()).collect();
    let villages = format!("ARRAY[{}]::bigint[]", villages.join(","));
    for st in &b.subject_types {
        let person = st.kind == "Person";
        let genders = format!(
            "ARRAY[{},{},{}]",
            org.gender_ids["Male"], org.gender_ids["Female"], org.gender_ids["Other"]
        );
        let sql = format!(
            "INSERT INTO individual (uuid, subject_type_id, first_name, middle_name, last_name, date_of_birth, \
                 gender_id, registration_date, address_id, registration_location, observations, is_voided, \
                 organisation_id, created_by_id, last_modified_by_id, created_date_time, last_modified_date_time) \
             SELECT md5({seed} || ':{org}:{st}:' || g)::uuid::text, {st_id}, 'First ' || g, \
                 {middle}, {last}, {dob}, {gender}, date '2024-01-01' + (g % 365)::int, \
                 ({villages})[1 + (g % {nv})], point(g % 90, g % 180), {obs}, g % 13 = 0, \
                 {org_id}, {admin}, CASE WHEN g % 2 = 0 THEN {worker} ELSE {admin} END, {ROW_TIME}, {ROW_TIME} \
             FROM generate_series(1, {n}::bigint) g",
            seed = b.seed,
            org = org.id,
            st = st.key,
            st_id = org.subject_type_id(st.key),
            middle = if st.allow_middle_name {
                "'Middle ' || g"
            } else {
                "NULL"
            },
            last = if person { "'Last ' || g" } else { "NULL" },
            dob = if person {
                "date '1990-01-01' + (g % 9000)::int"
            } else {
                "NULL"
            },
            gender = if person {
                format!("({genders})[1 + (g % 3)]")
            } else {
                "NULL".into()
            },
            nv = org.villages.len().max(1),
            obs = observations(b, "g"),
            org_id = org.id,
            n = size.subjects_per_type,
        );
        run(client, &sql).await;
    }
    for p in &b.programs {
        let sql = format!(
            "INSERT INTO program_enrolment (uuid, individual_id, program_id, enrolment_date_time, \
                 program_exit_date_time, observations, program_exit_observations, is_voided, organisation_id, \
                 created_by_id, last_modified_by_id, created_date_time, last_modified_date_time) \
             SELECT md5({seed} || ':{org}:enrolment:{p}:' || g)::uuid::text, i.id, {pid}, \
                 {ROW_TIME} - (g % 300) * interval '1 day', \
                 CASE WHEN g % 5 = 0 THEN {ROW_TIME} - interval '1 day' END, {obs}, \
                 CASE WHEN g % 5 = 0 THEN {exit_obs} END, g % 17 = 0, {org_id}, {admin}, {worker}, \
                 {ROW_TIME}, {ROW_TIME} \
             FROM individual i CROSS JOIN LATERAL (SELECT i.id AS g) n \
             WHERE i.organisation_id = {org_id} AND i.subject_type_id = {st_id}",
            seed = b.seed,
            org = org.id,
            p = p.key,
            pid = org.program_id(p.key),
            obs = observations(b, "g"),
            exit_obs = observations(b, "(g + 1)"),
            org_id = org.id,
            st_id = org.subject_type_id(p.subject_type),
        );
        run(client, &sql).await;
    }
    for e in &b.encounter_types {
        let eid = org.encounter_type_id(e.key);
        let (insert_into, parent_col, from) = match e.program {
            Some(p) => (
                "program_encounter",
                "program_enrolment_id",
                format!(
                    "program_enrolment parent CROSS JOIN generate_series(1, {k}::bigint) r \
                     CROSS JOIN LATERAL (SELECT parent.id * 1000 + r AS g) n \
                     WHERE parent.organisation_id = {org_id} AND parent.program_id = {pid}",
                    k = size.encounters_per_enrolment,
                    org_id = org.id,
                    pid = org.program_id(p),
                ),
            ),
            None => (
                "encounter",
                "individual_id",
                format!(
                    "individual parent CROSS JOIN generate_series(1, {k}::bigint) r \
                     CROSS JOIN LATERAL (SELECT parent.id * 1000 + r AS g) n \
                     WHERE parent.organisation_id = {org_id} AND parent.subject_type_id = {st_id}",
                    k = size.encounters_per_subject,
                    org_id = org.id,
                    st_id = org.subject_type_id(e.subject_type),
                ),
            ),
        };
        let sql = format!(
            "INSERT INTO {insert_into} (uuid, {parent_col}, encounter_type_id, name, earliest_visit_date_time, \
                 max_visit_date_time, encounter_date_time, cancel_date_time, observations, cancel_observations, \
                 is_voided, organisation_id, created_by_id, last_modified_by_id, created_date_time, \
                 last_modified_date_time) \
             SELECT md5({seed} || ':{org}:{e}:' || g)::uuid::text, parent.id, {eid}, {name}, \
                 {ROW_TIME} - (g % 100) * interval '1 day', {ROW_TIME} - (g % 100 - 7) * interval '1 day', \
                 CASE WHEN g % 7 <> 0 THEN {ROW_TIME} - (g % 90) * interval '1 day' END, \
                 CASE WHEN g % 7 = 0 THEN {ROW_TIME} - interval '2 days' END, \
                 CASE WHEN g % 7 <> 0 THEN {obs} END, CASE WHEN g % 7 = 0 THEN {cancel_obs} END, \
                 g % 11 = 0, {org_id}, {admin}, {worker}, {ROW_TIME}, {ROW_TIME} \
             FROM {from}",
            seed = b.seed,
            org = org.id,
            e = e.key,
            name = quote_literal(&e.name),
            obs = observations(b, "g"),
            cancel_obs = observations(b, "(g + 3)"),
            org_id = org.id,
        );
        run(client, &sql).await;
    }
    client
        .batch_execute("ANALYZE individual, program_enrolment, program_encounter, encounter")
        .await
        .unwrap_or_else(|e| panic!("analyze: {e}"));
}

async fn run(client: &Client, sql: &str) {
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("bulk insert failed: {e}\n{sql}"));
}

/// A jsonb expression of every question's answer for row number `g`.
/// `jsonb_build_object` takes at most 100 arguments, so pairs are built in
/// chunks and concatenated.
pub fn observations(b: &Bundle, g: &str) -> String {
    let pairs: Vec<String> = b
        .top_level_concepts()
        .enumerate()
        .map(|(k, c)| format!("{}, {}", quote_literal(&c.uuid), value(b, c, g, k)))
        .collect();
    if pairs.is_empty() {
        return "'{}'::jsonb".into();
    }
    pairs
        .chunks(40)
        .map(|chunk| format!("jsonb_build_object({})", chunk.join(", ")))
        .collect::<Vec<_>>()
        .join(" || ")
}

fn answer_array(c: &ConceptDef) -> String {
    let items: Vec<String> = c.answers.iter().map(|a| quote_literal(&a.uuid)).collect();
    format!("(ARRAY[{}]::text[])", items.join(", "))
}

/// The answer of concept `c` (the `k`-th question) for row number `g`.
fn value(b: &Bundle, c: &ConceptDef, g: &str, k: usize) -> String {
    match c.data_type {
        "Numeric" => format!("to_jsonb((({g} * 7 + {k}) % 1000) / 10.0)"),
        "Date" => format!(
            "to_jsonb(to_char(date '2024-01-01' + (({g} + {k}) % 365)::int, 'YYYY-MM-DD') || 'T00:00:00.000Z')"
        ),
        "DateTime" => format!(
            "to_jsonb(to_char(timestamp '2024-01-01' + (({g} + {k}) % 100000) * interval '1 minute', \
             'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'))"
        ),
        "Time" => format!("to_jsonb(lpad((({g} + {k}) % 24)::text, 2, '0') || ':30')"),
        "ImageV2" => {
            format!("jsonb_build_array(jsonb_build_object('uri', 'img' || {g} || '.jpg'))")
        }
        "Coded" if c.multi_select => {
            let a = answer_array(c);
            let n = c.answers.len().max(1);
            format!(
                "to_jsonb(ARRAY[{a}[1 + (({g} + {k}) % {n})], {a}[1 + (({g} + {k} + 1) % {n})]])"
            )
        }
        "Coded" => {
            let a = answer_array(c);
            let n = c.answers.len().max(1);
            format!("to_jsonb({a}[1 + (({g} + {k}) % {n})])")
        }
        "QuestionGroup" => {
            let children: Vec<String> = c
                .children
                .iter()
                .enumerate()
                .map(|(j, key)| {
                    let child = b.concept(key);
                    format!(
                        "{}, {}",
                        quote_literal(&child.uuid),
                        value(
                            b,
                            child,
                            if c.repeatable { "(r.e + g)" } else { g },
                            k + j + 1
                        )
                    )
                })
                .collect();
            let object = format!("jsonb_build_object({})", children.join(", "));
            if c.repeatable {
                format!(
                    "(SELECT coalesce(jsonb_agg({object} ORDER BY r.e), '[]'::jsonb) \
                     FROM generate_series(1, ({g} % 3)::int) AS r(e))"
                )
            } else {
                object
            }
        }
        _ => format!("to_jsonb('{}-' || {g})", c.key),
    }
}
