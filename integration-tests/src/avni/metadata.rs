//! Inserting an organisation's metadata rows: the organisation, users,
//! genders, address levels, concepts and answers, subject types, programs,
//! encounter types with their operational names, forms and form mappings.

use super::bundle::{Bundle, ConceptDef, uuid_for};
use super::{Group, Org, Spec};
use std::collections::HashMap;
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

async fn one_id(client: &Client, sql: &str, params: &[&(dyn ToSql + Sync)]) -> i32 {
    client
        .query_one(sql, params)
        .await
        .unwrap_or_else(|e| panic!("generator statement failed: {e}\n{sql}"))
        .get(0)
}

async fn exec(client: &Client, sql: &str, params: &[&(dyn ToSql + Sync)]) {
    client
        .execute(sql, params)
        .await
        .unwrap_or_else(|e| panic!("generator statement failed: {e}\n{sql}"));
}

/// An organisation with all of `bundle`'s metadata; `tag` tells it apart.
pub async fn organisation(client: &Client, spec: &Spec, tag: &str, bundle: Bundle) -> Org {
    let seed = spec.seed;
    let (name, db_user, schema_name) = if spec.hostile {
        (
            format!("Org \"{tag}\"; DROP"),
            format!("etl test \"{tag}\"; role"),
            format!("Org \"{tag}\"; DROP SCHEMA public; --"),
        )
    } else {
        (
            format!("Org {tag}"),
            format!("etl_test_org_{tag}"),
            format!("org_{tag}"),
        )
    };
    let uuid = uuid_for(seed, &format!("organisation:{tag}"));
    let id = one_id(
        client,
        "INSERT INTO organisation (uuid, name, db_user, schema_name) VALUES ($1, $2, $3, $4) RETURNING id",
        &[&uuid, &name, &db_user, &schema_name],
    )
    .await;

    let mut user_ids = Vec::new();
    let mut usernames = Vec::new();
    for who in ["admin", "worker"] {
        let username = format!("{who}@{tag}.{seed}");
        let uid: i64 = client
            .query_one(
                "INSERT INTO users (uuid, username, organisation_id) VALUES ($1, $2, $3) RETURNING id",
                &[&uuid_for(seed, &format!("user:{tag}:{who}")), &username, &id],
            )
            .await
            .unwrap_or_else(|e| panic!("insert user: {e}"))
            .get(0);
        user_ids.push(uid);
        usernames.push(username);
    }
    let audit = user_ids[0];

    let mut gender_ids = HashMap::new();
    for g in ["Male", "Female", "Other"] {
        let gid = one_id(
            client,
            "INSERT INTO gender (uuid, name, organisation_id) VALUES ($1, $2, $3) RETURNING id",
            &[&uuid_for(bundle.seed, &format!("gender:{g}")), &g, &id],
        )
        .await;
        gender_ids.insert(g.to_string(), gid);
    }

    let villages = address_levels(client, &bundle, id, audit).await;
    let concept_ids = concepts(client, &bundle, id, audit).await;

    let mut subject_type_ids = HashMap::new();
    for st in &bundle.subject_types {
        let sid = one_id(
            client,
            "INSERT INTO subject_type (uuid, name, type, allow_middle_name, organisation_id) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[&st.uuid, &st.name, &st.kind, &st.allow_middle_name, &id],
        )
        .await;
        // The operational name is what the organisation shows: it wins.
        exec(
            client,
            "INSERT INTO operational_subject_type (uuid, name, subject_type_id, organisation_id) VALUES ($1, $2, $3, $4)",
            &[&uuid_for(bundle.seed, &format!("ost:{}", st.key)), &st.name, &sid, &id],
        )
        .await;
        subject_type_ids.insert(st.key.to_string(), sid);
    }
    let mut program_ids = HashMap::new();
    for p in &bundle.programs {
        let pid = one_id(
            client,
            "INSERT INTO program (uuid, name, organisation_id) VALUES ($1, $2, $3) RETURNING id",
            &[&p.uuid, &p.name, &id],
        )
        .await;
        exec(
            client,
            "INSERT INTO operational_program (uuid, name, program_id, organisation_id) VALUES ($1, $2, $3, $4)",
            &[&uuid_for(bundle.seed, &format!("op:{}", p.key)), &p.name, &pid, &id],
        )
        .await;
        program_ids.insert(p.key.to_string(), pid);
    }
    let mut encounter_type_ids = HashMap::new();
    for e in &bundle.encounter_types {
        let eid = one_id(
            client,
            "INSERT INTO encounter_type (uuid, name, organisation_id) VALUES ($1, $2, $3) RETURNING id",
            &[&e.uuid, &e.name, &id],
        )
        .await;
        exec(
            client,
            "INSERT INTO operational_encounter_type (uuid, name, encounter_type_id, organisation_id) VALUES ($1, $2, $3, $4)",
            &[&uuid_for(bundle.seed, &format!("oet:{}", e.key)), &e.name, &eid, &id],
        )
        .await;
        encounter_type_ids.insert(e.key.to_string(), eid);
    }

    let org = Org {
        id,
        uuid,
        name,
        db_user,
        schema_name,
        bundle,
        user_ids,
        usernames,
        gender_ids,
        subject_type_ids,
        program_ids,
        encounter_type_ids,
        villages,
    };
    forms(client, &org, &concept_ids).await;
    org
}

async fn address_levels(client: &Client, bundle: &Bundle, org: i32, audit: i64) -> Vec<i64> {
    let mut parent_type: Option<i32> = None;
    let mut type_ids = Vec::new();
    let levels = bundle.address_level_types.len();
    for (i, name) in bundle.address_level_types.iter().enumerate() {
        let level = (levels - i) as f64;
        let tid = one_id(
            client,
            "INSERT INTO address_level_type (uuid, name, level, parent_id, organisation_id) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[
                &uuid_for(bundle.seed, &format!("alt:{name}")),
                name,
                &level,
                &parent_type,
                &org,
            ],
        )
        .await;
        type_ids.push((tid, name.clone()));
        parent_type = Some(tid);
    }
    // Two children under each level: 2 states, 4 districts, 8 villages.
    let mut parents: Vec<(Option<i64>, String)> = vec![(None, String::new())];
    for (tid, type_name) in type_ids {
        let mut next = Vec::new();
        for (parent, parent_title) in &parents {
            for k in 1..=2 {
                let title = if parent_title.is_empty() {
                    format!("{type_name} {k}")
                } else {
                    format!("{parent_title}.{k}")
                };
                let aid: i64 = client
                    .query_one(
                        "INSERT INTO address_level (uuid, title, type_id, parent_id, organisation_id, \
                             created_by_id, last_modified_by_id, created_date_time, last_modified_date_time) \
                         VALUES ($1, $2, $3, $4, $5, $6, $6, '2024-01-01', '2024-01-01') RETURNING id::bigint",
                        &[
                            &uuid_for(bundle.seed, &format!("address:{org}:{title}")),
                            &title,
                            &tid,
                            &parent.map(|p| p as i32),
                            &org,
                            &audit,
                        ],
                    )
                    .await
                    .unwrap_or_else(|e| panic!("insert address level: {e}"))
                    .get(0);
                next.push((Some(aid), title));
            }
        }
        parents = next;
    }
    parents.into_iter().filter_map(|(id, _)| id).collect()
}

async fn concepts(client: &Client, bundle: &Bundle, org: i32, audit: i64) -> HashMap<String, i32> {
    let mut ids = HashMap::new();
    let insert = "INSERT INTO concept (uuid, name, data_type, organisation_id, created_by_id, last_modified_by_id) \
                  VALUES ($1, $2, $3, $4, $5, $5) RETURNING id";
    for c in &bundle.concepts {
        let cid = one_id(
            client,
            insert,
            &[&c.uuid, &c.name, &c.data_type, &org, &audit],
        )
        .await;
        for (order, a) in c.answers.iter().enumerate() {
            let aid = one_id(client, insert, &[&a.uuid, &a.name, &"NA", &org, &audit]).await;
            exec(
                client,
                "INSERT INTO concept_answer (uuid, concept_id, answer_concept_id, answer_order, organisation_id) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &uuid_for(bundle.seed, &format!("ca:{}:{}", c.key, a.name)),
                    &cid,
                    &aid,
                    &(order as f64),
                    &org,
                ],
            )
            .await;
        }
        ids.insert(c.key.clone(), cid);
    }
    ids
}

/// A form's key, type, subject type, program and encounter type.
type Mapping = (String, &'static str, i32, Option<i32>, Option<i32>);

/// One form per mapping, each asking every question of the bundle.
async fn forms(client: &Client, org: &Org, concept_ids: &HashMap<String, i32>) {
    let b = &org.bundle;
    let mut mappings: Vec<Mapping> = Vec::new();
    for st in &b.subject_types {
        mappings.push((
            format!("registration:{}", st.key),
            "IndividualProfile",
            org.subject_type_id(st.key),
            None,
            None,
        ));
    }
    for p in &b.programs {
        let st = org.subject_type_id(p.subject_type);
        let pid = Some(org.program_id(p.key));
        mappings.push((
            format!("enrolment:{}", p.key),
            "ProgramEnrolment",
            st,
            pid,
            None,
        ));
        if p.has_exit_form {
            mappings.push((format!("exit:{}", p.key), "ProgramExit", st, pid, None));
        }
    }
    for e in &b.encounter_types {
        let st = org.subject_type_id(e.subject_type);
        let eid = Some(org.encounter_type_id(e.key));
        let pid = e.program.map(|p| org.program_id(p));
        let (kind, cancel) = if pid.is_some() {
            ("ProgramEncounter", "ProgramEncounterCancellation")
        } else {
            ("Encounter", "IndividualEncounterCancellation")
        };
        mappings.push((format!("encounter:{}", e.key), kind, st, pid, eid));
        if e.has_cancel_form {
            mappings.push((format!("cancel:{}", e.key), cancel, st, pid, eid));
        }
    }
    for (key, form_type, st, program, encounter_type) in mappings {
        let form_id = one_id(
            client,
            "INSERT INTO form (uuid, name, form_type, organisation_id) VALUES ($1, $2, $3, $4) RETURNING id",
            &[&uuid_for(b.seed, &format!("form:{key}")), &key, &form_type, &org.id],
        )
        .await;
        exec(
            client,
            "INSERT INTO form_mapping (uuid, form_id, subject_type_id, entity_id, observations_type_entity_id, organisation_id) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &uuid_for(b.seed, &format!("mapping:{key}")),
                &form_id,
                &st,
                &program,
                &encounter_type,
                &org.id,
            ],
        )
        .await;
        let group_id = one_id(
            client,
            "INSERT INTO form_element_group (uuid, name, form_id, display_order, organisation_id) \
             VALUES ($1, 'Questions', $2, 1, $3) RETURNING id",
            &[&uuid_for(b.seed, &format!("feg:{key}")), &form_id, &org.id],
        )
        .await;
        let mut order = 0.0f64;
        for c in b.top_level_concepts() {
            order += 1.0;
            let parent = element(client, org, &key, group_id, c, concept_ids, order, None).await;
            for child_key in &c.children {
                order += 1.0;
                let child = b.concept(child_key);
                element(
                    client,
                    org,
                    &key,
                    group_id,
                    child,
                    concept_ids,
                    order,
                    Some(parent),
                )
                .await;
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn element(
    client: &Client,
    org: &Org,
    form_key: &str,
    group_id: i32,
    c: &ConceptDef,
    concept_ids: &HashMap<String, i32>,
    order: f64,
    parent: Option<i32>,
) -> i32 {
    let element_type: Option<&str> = match (c.data_type, c.multi_select) {
        ("Coded", true) => Some("MultiSelect"),
        ("Coded", false) => Some("SingleSelect"),
        _ => None,
    };
    let key_values = if c.repeatable {
        "[{\"key\": \"repeatable\", \"value\": true}]"
    } else {
        "[]"
    };
    one_id(
        client,
        "INSERT INTO form_element (uuid, name, display_order, key_values, concept_id, form_element_group_id, \
             type, group_id, organisation_id) \
         VALUES ($1, $2, $3, $4::text::jsonb, $5, $6, $7, $8, $9) RETURNING id",
        &[
            &uuid_for(org.bundle.seed, &format!("fe:{}:{form_key}:{}", org.id, c.key)),
            &c.name,
            &order,
            &key_values,
            &concept_ids[&c.key],
            &group_id,
            &element_type,
            &parent,
            &org.id,
        ],
    )
    .await
}

/// An organisation group of `members`.
pub async fn group(client: &Client, spec: &Spec, members: Vec<Org>) -> Group {
    let (name, db_user, schema_name) = if spec.hostile {
        (
            "Group \"all\"; DROP".to_string(),
            "etl test \"group\"; role".to_string(),
            "Group \"g\"; DROP SCHEMA public; --".to_string(),
        )
    } else {
        (
            "Org group".to_string(),
            "etl_test_group".to_string(),
            "org_group".to_string(),
        )
    };
    let uuid = uuid_for(spec.seed, "organisation_group");
    let id = one_id(
        client,
        "INSERT INTO organisation_group (uuid, name, db_user, schema_name) VALUES ($1, $2, $3, $4) RETURNING id",
        &[&uuid, &name, &db_user, &schema_name],
    )
    .await;
    for m in &members {
        exec(
            client,
            "INSERT INTO organisation_group_organisation (name, organisation_group_id, organisation_id) VALUES ($1, $2, $3)",
            &[&m.name, &id, &m.id],
        )
        .await;
    }
    Group {
        id,
        uuid,
        name,
        db_user,
        schema_name,
        members,
    }
}
