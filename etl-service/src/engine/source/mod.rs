//! Reading the Avni source tables (design/etl.md §1): the organisation or
//! group being run, and the metadata its reporting schema is planned from
//! (subject types, programs, encounter types, form mappings, form elements
//! and concepts, address level types).

use crate::engine::entity::{EntityKind, EntityRef};
use crate::engine::schema::naming::MAX_IDENTIFIER_BYTES;
use crate::error::Error;
use diesel::QueryableByName;
use diesel::sql_types::{Array, Bool, Double, Integer, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use service_kit::prepared::prepared;
use std::collections::{BTreeMap, HashSet};

/// One organisation whose rows a run reads.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Member {
    #[diesel(sql_type = Integer)]
    pub id: i32,
    #[diesel(sql_type = Text)]
    pub uuid: String,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Text)]
    pub db_user: String,
    #[diesel(sql_type = Text)]
    pub schema_name: String,
}

/// What a run writes to and reads from: the entity's schema and role, and
/// its member organisations (the organisation itself when standalone).
#[derive(Debug, Clone)]
pub struct Target {
    pub entity: EntityRef,
    pub name: String,
    pub schema_name: String,
    pub db_user: String,
    pub members: Vec<Member>,
}

impl Target {
    pub fn member_ids(&self) -> Vec<i32> {
        self.members.iter().map(|m| m.id).collect()
    }

    /// Every role that may read the schema: the entity's own and, for a
    /// group, each member's.
    pub fn reader_roles(&self) -> Vec<String> {
        let mut roles = vec![self.db_user.clone()];
        for m in &self.members {
            if !roles.contains(&m.db_user) {
                roles.push(m.db_user.clone());
            }
        }
        roles
    }
}

/// The head row of a target (`o`: the organisation or group) and another
/// organisation or group whose schema is the same (the run of one would
/// write into, grant on and drop the other's tables).
#[derive(QueryableByName)]
struct Head {
    #[diesel(embed)]
    member: Member,
    #[diesel(sql_type = Nullable<Text>)]
    other_owner: Option<String>,
}

/// The `other_owner` column of [`Head`], for a row `o` of either table (a
/// literal for `concat!`: the query is [`prepared`], its text constant).
macro_rules! other_owner {
    () => {
        "(SELECT owner FROM (\
          SELECT 'organisation ' || x.uuid || ' (' || x.name || ')' AS owner FROM public.organisation x \
           WHERE x.schema_name = o.schema_name AND x.uuid <> o.uuid AND NOT x.is_voided \
          UNION ALL \
          SELECT 'organisation group ' || g.uuid || ' (' || g.name || ')' FROM public.organisation_group g \
           WHERE g.schema_name = o.schema_name AND g.uuid <> o.uuid \
          LIMIT 1) owners)"
    };
}

/// Finds the organisation or group, with a message a person can act on
/// when it does not exist or cannot be run.
/// Takes a shared connection so callers can pipeline it with other
/// queries on the same connection; it is one round trip itself (GetJob
/// pays for it on every call).
pub async fn load_target(mut conn: &AsyncPgConnection, entity: EntityRef) -> Result<Target, Error> {
    let uuid = entity.uuid.to_string();
    let (head, members) = match entity.kind {
        EntityKind::Organisation => {
            let found: Vec<Head> = prepared(concat!(
                "SELECT o.id, o.uuid, o.name, o.db_user, o.schema_name, ",
                other_owner!(),
                " AS other_owner FROM public.organisation o WHERE o.uuid = $1 AND NOT o.is_voided"
            ))
            .bind_text(&uuid)
            .load(&mut conn)
            .await?;
            let org = found
                .into_iter()
                .next()
                .ok_or_else(|| Error::NotFound(format!("organisation {uuid} does not exist")))?;
            let members = vec![org.member.clone()];
            (org, members)
        }
        EntityKind::OrganisationGroup => {
            // Both pipelined: the members are found by the group's uuid.
            let group = prepared(concat!(
                "SELECT o.id, o.uuid, o.name, o.db_user, o.schema_name, ",
                other_owner!(),
                " AS other_owner FROM public.organisation_group o WHERE o.uuid = $1"
            ))
            .bind_text(&uuid)
            .load::<Head>(&mut conn);
            let members = prepared(
                "SELECT o.id, o.uuid, o.name, o.db_user, o.schema_name \
                 FROM public.organisation_group g \
                 JOIN public.organisation_group_organisation ogo ON ogo.organisation_group_id = g.id \
                 JOIN public.organisation o ON o.id = ogo.organisation_id \
                 WHERE g.uuid = $1 AND NOT o.is_voided ORDER BY o.id",
            )
            .bind_text(&uuid)
            .load::<Member>(&mut conn);
            let (found, members) = tokio::try_join!(group, members)?;
            let group = found.into_iter().next().ok_or_else(|| {
                Error::NotFound(format!("organisation group {uuid} does not exist"))
            })?;
            if members.is_empty() {
                return Err(Error::FailedPrecondition(format!(
                    "organisation group {uuid} ({}) has no member organisations",
                    group.member.name
                )));
            }
            (group, members)
        }
    };
    let Head {
        member: head,
        other_owner,
    } = head;
    let what = entity.kind.as_str().replace('_', " ");
    if head.schema_name.trim().is_empty() {
        return Err(Error::FailedPrecondition(format!(
            "{what} {uuid} ({}) has no schema_name; set one in the {} table",
            head.name,
            entity.kind.as_str()
        )));
    }
    if let Some(reason) = unusable_schema(&head.schema_name) {
        return Err(Error::FailedPrecondition(format!(
            "{what} {uuid} ({}) has schema_name {:?}, {reason}; give it a schema of its own",
            head.name, head.schema_name
        )));
    }
    for m in std::iter::once(&head).chain(members.iter()) {
        if m.db_user.trim().is_empty() {
            return Err(Error::FailedPrecondition(format!(
                "organisation {} ({}) has no db_user; set one so its role can be granted access",
                m.uuid, m.name
            )));
        }
        if let Some(reason) = unusable_role(&m.db_user) {
            return Err(Error::FailedPrecondition(format!(
                "{} {} ({}) has db_user {:?}, {reason}; give it a role of its own",
                if m.uuid == head.uuid {
                    what.as_str()
                } else {
                    "organisation"
                },
                m.uuid,
                m.name,
                m.db_user
            )));
        }
    }
    if let Some(other) = other_owner {
        return Err(Error::FailedPrecondition(format!(
            "{what} {uuid} ({}) has schema_name {:?}, which is also the schema of {other}; \
             each organisation and group needs a schema of its own",
            head.name, head.schema_name
        )));
    }
    Ok(Target {
        entity,
        name: head.name,
        schema_name: head.schema_name,
        db_user: head.db_user,
        members,
    })
}

/// Why a schema cannot be an organisation's reporting schema: the runs
/// create, grant and revoke in it as if it were theirs alone.
pub fn unusable_schema(schema: &str) -> Option<String> {
    let lower = schema.to_lowercase();
    if lower == "public" {
        Some("which holds the source and metadata tables".into())
    } else if lower == "information_schema" || lower.starts_with("pg_") {
        Some("which is a PostgreSQL system schema".into())
    } else if schema.len() > MAX_IDENTIFIER_BYTES {
        Some(too_long(schema, "organisations"))
    } else {
        None
    }
}

/// Why a `db_user` cannot be granted a reporting schema.
pub fn unusable_role(role: &str) -> Option<String> {
    if role == "public" {
        // `GRANT ... TO "public"` grants to every role.
        Some("which PostgreSQL reads as PUBLIC, every role".into())
    } else if role == "none" || role.starts_with("pg_") {
        Some("which PostgreSQL reserves".into())
    } else if role.len() > MAX_IDENTIFIER_BYTES {
        Some(too_long(role, "organisations"))
    } else {
        None
    }
}

fn too_long(name: &str, who: &str) -> String {
    format!(
        "which is {} bytes long; PostgreSQL cuts identifiers to {MAX_IDENTIFIER_BYTES} bytes \
         without a word, so two {who} could share one",
        name.len()
    )
}

/// The metadata a schema is planned from, merged over the member
/// organisations (entities with the same uuid are the same entity).
#[derive(Debug, Clone, Default)]
pub struct SourceModel {
    pub subject_types: Vec<SubjectType>,
    pub programs: Vec<NamedEntity>,
    pub encounter_types: Vec<NamedEntity>,
    pub mappings: Vec<FormMapping>,
    /// Each form's questions in form order, by form uuid.
    pub form_elements: BTreeMap<String, Vec<FormElement>>,
    /// Highest level first (State, District, ..., Village).
    pub address_level_types: Vec<String>,
    /// The answers of each coded question's concept: concept uuid ->
    /// (answer concept uuid, answer name).
    pub answers: BTreeMap<String, Vec<(String, String)>>,
}

#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct SubjectType {
    #[diesel(sql_type = Text)]
    pub uuid: String,
    #[diesel(sql_type = Text)]
    pub name: String,
    /// `Person`, `Individual`, `Household`, `Group` or `User`.
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Bool)]
    pub allow_middle_name: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct NamedEntity {
    #[diesel(sql_type = Text)]
    pub uuid: String,
    #[diesel(sql_type = Text)]
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct FormMapping {
    #[diesel(sql_type = Text)]
    pub form_uuid: String,
    #[diesel(sql_type = Text)]
    pub form_type: String,
    #[diesel(sql_type = Text)]
    pub subject_type_uuid: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub program_uuid: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub encounter_type_uuid: Option<String>,
}

/// One question of a form.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct FormElement {
    #[diesel(sql_type = Text)]
    pub form_uuid: String,
    #[diesel(sql_type = Text)]
    pub concept_uuid: String,
    #[diesel(sql_type = Text)]
    pub concept_name: String,
    #[diesel(sql_type = Text)]
    pub data_type: String,
    /// `SingleSelect` / `MultiSelect` for coded questions.
    #[diesel(sql_type = Nullable<Text>)]
    pub element_type: Option<String>,
    /// Marks a question group whose answer is an array of groups.
    #[diesel(sql_type = Bool)]
    pub repeatable: bool,
    #[diesel(sql_type = Nullable<Text>)]
    pub parent_concept_uuid: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub parent_concept_name: Option<String>,
    #[diesel(sql_type = Bool)]
    pub parent_repeatable: bool,
}

#[derive(QueryableByName)]
struct Answer {
    #[diesel(sql_type = Text)]
    concept_uuid: String,
    #[diesel(sql_type = Text)]
    answer_uuid: String,
    #[diesel(sql_type = Text)]
    answer_name: String,
}

#[derive(QueryableByName)]
struct LevelType {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Double)]
    #[allow(dead_code)]
    level: f64,
}

const REPEATABLE: &str = "(coalesce(x.key_values @> '[{\"key\": \"repeatable\", \"value\": true}]'::jsonb, false) \
     OR coalesce(x.key_values @> '{\"key\": \"repeatable\", \"value\": true}'::jsonb, false))";

/// Reads the metadata of the given organisations.
pub async fn load_model(
    conn: &mut AsyncPgConnection,
    organisation_ids: &[i32],
) -> Result<SourceModel, Error> {
    let ids = organisation_ids.to_vec();
    // The organisation's display name (operational_*) wins over the base
    // name; the same entity in two members is read once.
    let subject_types: Vec<SubjectType> = diesel::sql_query(
        "SELECT DISTINCT ON (st.uuid) st.uuid, coalesce(nullif(ost.name, ''), st.name) AS name, \
                st.type AS kind, st.allow_middle_name \
         FROM public.subject_type st \
         LEFT JOIN public.operational_subject_type ost \
           ON ost.subject_type_id = st.id AND NOT ost.is_voided AND ost.organisation_id = ANY($1) \
         WHERE st.organisation_id = ANY($1) AND NOT st.is_voided \
         ORDER BY st.uuid, st.organisation_id, st.id",
    )
    .bind::<Array<Integer>, _>(&ids)
    .load(conn)
    .await?;
    let programs: Vec<NamedEntity> = diesel::sql_query(
        "SELECT DISTINCT ON (p.uuid) p.uuid, coalesce(nullif(op.name, ''), p.name) AS name \
         FROM public.program p \
         LEFT JOIN public.operational_program op \
           ON op.program_id = p.id AND NOT op.is_voided AND op.organisation_id = ANY($1) \
         WHERE p.organisation_id = ANY($1) AND NOT p.is_voided \
         ORDER BY p.uuid, p.organisation_id, p.id",
    )
    .bind::<Array<Integer>, _>(&ids)
    .load(conn)
    .await?;
    let encounter_types: Vec<NamedEntity> = diesel::sql_query(
        "SELECT DISTINCT ON (et.uuid) et.uuid, coalesce(nullif(oet.name, ''), et.name) AS name \
         FROM public.encounter_type et \
         LEFT JOIN public.operational_encounter_type oet \
           ON oet.encounter_type_id = et.id AND NOT oet.is_voided AND oet.organisation_id = ANY($1) \
         WHERE et.organisation_id = ANY($1) AND NOT et.is_voided \
         ORDER BY et.uuid, et.organisation_id, et.id",
    )
    .bind::<Array<Integer>, _>(&ids)
    .load(conn)
    .await?;
    let mappings: Vec<FormMapping> = diesel::sql_query(
        "SELECT DISTINCT f.uuid AS form_uuid, f.form_type, st.uuid AS subject_type_uuid, \
                p.uuid AS program_uuid, et.uuid AS encounter_type_uuid \
         FROM public.form_mapping fm \
         JOIN public.form f ON f.id = fm.form_id AND NOT f.is_voided \
         JOIN public.subject_type st ON st.id = fm.subject_type_id AND NOT st.is_voided \
         LEFT JOIN public.program p ON p.id = fm.entity_id \
         LEFT JOIN public.encounter_type et ON et.id = fm.observations_type_entity_id \
         WHERE fm.organisation_id = ANY($1) AND NOT fm.is_voided \
           AND (fm.entity_id IS NULL OR NOT p.is_voided) \
           AND (fm.observations_type_entity_id IS NULL OR NOT et.is_voided) \
         ORDER BY f.uuid, st.uuid, p.uuid, et.uuid",
    )
    .bind::<Array<Integer>, _>(&ids)
    .load(conn)
    .await?;
    let form_uuids: Vec<String> = mappings
        .iter()
        .map(|m| m.form_uuid.clone())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let element_sql = format!(
        "SELECT f.uuid AS form_uuid, c.uuid AS concept_uuid, c.name AS concept_name, c.data_type, \
                fe.type AS element_type, {own} AS repeatable, \
                pc.uuid AS parent_concept_uuid, pc.name AS parent_concept_name, \
                coalesce({parent}, false) AS parent_repeatable \
         FROM public.form f \
         JOIN public.form_element_group feg ON feg.form_id = f.id AND NOT feg.is_voided \
         JOIN public.form_element fe ON fe.form_element_group_id = feg.id AND NOT fe.is_voided \
         JOIN public.concept c ON c.id = fe.concept_id \
         LEFT JOIN public.form_element pfe ON pfe.id = fe.group_id \
         LEFT JOIN public.concept pc ON pc.id = pfe.concept_id \
         WHERE f.uuid = ANY($1) AND f.organisation_id = ANY($2) \
         ORDER BY f.uuid, f.organisation_id, feg.display_order, fe.display_order, fe.id",
        own = REPEATABLE.replace("x.", "fe."),
        parent = REPEATABLE.replace("x.", "pfe."),
    );
    let elements: Vec<FormElement> = diesel::sql_query(element_sql)
        .bind::<Array<Text>, _>(&form_uuids)
        .bind::<Array<Integer>, _>(&ids)
        .load(conn)
        .await?;
    let mut form_elements: BTreeMap<String, Vec<FormElement>> = BTreeMap::new();
    for e in elements {
        let list = form_elements.entry(e.form_uuid.clone()).or_default();
        // A form shared by two members appears twice; its first copy counts.
        if !list.iter().any(|x| {
            x.concept_uuid == e.concept_uuid && x.parent_concept_uuid == e.parent_concept_uuid
        }) {
            list.push(e);
        }
    }
    let levels: Vec<LevelType> = diesel::sql_query(
        "SELECT name, max(level) AS level FROM public.address_level_type \
         WHERE organisation_id = ANY($1) AND NOT is_voided \
         GROUP BY name ORDER BY max(level) DESC, name",
    )
    .bind::<Array<Integer>, _>(&ids)
    .load(conn)
    .await?;
    let coded: Vec<String> = form_elements
        .values()
        .flatten()
        .filter(|e| e.data_type == "Coded")
        .map(|e| e.concept_uuid.clone())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    // A concept shared by two members is answered by the first member's
    // names; an answer missing here is still looked up row by row.
    let answer_rows: Vec<Answer> = diesel::sql_query(
        "SELECT DISTINCT ON (c.uuid, a.uuid) c.uuid AS concept_uuid, a.uuid AS answer_uuid, \
                a.name AS answer_name \
         FROM public.concept c \
         JOIN public.concept_answer ca ON ca.concept_id = c.id AND NOT ca.is_voided \
         JOIN public.concept a ON a.id = ca.answer_concept_id \
         WHERE c.uuid = ANY($1) AND c.organisation_id = ANY($2) \
         ORDER BY c.uuid, a.uuid, c.organisation_id",
    )
    .bind::<Array<Text>, _>(&coded)
    .bind::<Array<Integer>, _>(&ids)
    .load(conn)
    .await?;
    let mut answers: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for a in answer_rows {
        answers
            .entry(a.concept_uuid)
            .or_default()
            .push((a.answer_uuid, a.answer_name));
    }
    Ok(SourceModel {
        answers,
        subject_types,
        programs,
        encounter_types,
        mappings,
        form_elements,
        address_level_types: levels.into_iter().map(|l| l.name).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_and_source_schemas_are_refused() {
        for schema in [
            "public",
            "PUBLIC",
            "pg_catalog",
            "pg_toast",
            "information_schema",
        ] {
            assert!(unusable_schema(schema).is_some(), "{schema}");
        }
        for schema in ["org_a", "publication", "Org \"1\"; DROP"] {
            assert!(unusable_schema(schema).is_none(), "{schema}");
        }
        assert!(unusable_schema(&"s".repeat(64)).is_some());
        assert!(unusable_schema(&"स".repeat(21)).is_none(), "63 bytes fit");
    }

    #[test]
    fn roles_postgres_reads_otherwise_are_refused() {
        for role in ["public", "none", "pg_monitor", &"r".repeat(64)] {
            assert!(unusable_role(role).is_some(), "{role}");
        }
        for role in ["PUBLIC", "org_a", "etl test \"0\"; role", "  x "] {
            assert!(unusable_role(role).is_none(), "{role}");
        }
    }
}
