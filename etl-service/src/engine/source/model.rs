//! The metadata a reporting schema is planned from, read from the Avni
//! source tables and merged over the member organisations: subject types,
//! programs, encounter types, form mappings, form elements and concepts,
//! address level types.
//!
//! Read as Avni shows it to each member ([`Visibility`]): its own and its
//! ancestors' rows, the nearest organisation's winning; questions an
//! organisation switched off (`non_applicable_form_element`) left out;
//! columns avni-server leaves NULL read as Avni reads them (a subject type
//! with no `type` is an `Individual`, with no `allow_middle_name` allows
//! none; one with no uuid cannot be told apart and is left out).

use crate::engine::source::Visibility;
use crate::error::Error;
use diesel::QueryableByName;
use diesel::pg::Pg;
use diesel::sql_types::{Array, Bool, Double, Integer, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use std::collections::{BTreeMap, HashSet};

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
    /// The group roles' (group subject type, member subject type) pairs,
    /// each once.
    pub group_roles: Vec<GroupRole>,
}

/// What a group role joins: members of one subject type to groups (or
/// households) of another.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct GroupRole {
    #[diesel(sql_type = Text)]
    pub group_subject_type_uuid: String,
    #[diesel(sql_type = Text)]
    pub member_subject_type_uuid: String,
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

/// Reads the metadata the organisations of `visibility` see.
pub async fn load_model(
    conn: &mut AsyncPgConnection,
    visibility: &Visibility,
) -> Result<SourceModel, Error> {
    let ids = &visibility.ids;
    // The five reads that depend on nothing but the organisations go out
    // together, as one pipeline: one round trip instead of five.
    let shared: &AsyncPgConnection = conn;
    let (subject_types, programs, encounter_types, mappings, address_level_types) = futures::join!(
        load_operational::<SubjectType>(
            shared,
            ids,
            "subject_type",
            "st",
            ", coalesce(st.type, 'Individual') AS kind, coalesce(st.allow_middle_name, false) AS allow_middle_name",
        ),
        load_operational::<NamedEntity>(shared, ids, "program", "p", ""),
        load_operational::<NamedEntity>(shared, ids, "encounter_type", "et", ""),
        load_mappings(shared, ids),
        load_address_level_types(shared, ids),
    );
    let subject_types = subject_types.map_err(reading(
        "subject types (subject_type, operational_subject_type)",
    ))?;
    let programs = programs.map_err(reading("programs (program, operational_program)"))?;
    let encounter_types = encounter_types.map_err(reading(
        "encounter types (encounter_type, operational_encounter_type)",
    ))?;
    let mappings = mappings.map_err(reading("form mappings (form_mapping, form)"))?;
    let address_level_types =
        address_level_types.map_err(reading("address level types (address_level_type)"))?;
    let form_elements = load_form_elements(conn, visibility, &mappings)
        .await
        .map_err(reading(
            "form elements (form_element, concept, non_applicable_form_element)",
        ))?;
    let answers = load_answers(conn, ids, &form_elements)
        .await
        .map_err(reading("coded answers (concept_answer, concept)"))?;
    let group_roles = load_group_roles(conn, ids)
        .await
        .map_err(reading("group roles (group_role, subject_type)"))?;
    Ok(SourceModel {
        answers,
        subject_types,
        programs,
        encounter_types,
        mappings,
        form_elements,
        address_level_types,
        group_roles,
    })
}

/// The subject types the organisations' group roles join, each pair once.
async fn load_group_roles(
    conn: &mut AsyncPgConnection,
    ids: &[i32],
) -> Result<Vec<GroupRole>, diesel::result::Error> {
    diesel::sql_query(
        "SELECT DISTINCT g.uuid AS group_subject_type_uuid, m.uuid AS member_subject_type_uuid \
         FROM public.group_role r \
         JOIN public.subject_type g ON g.id = r.group_subject_type_id AND NOT g.is_voided \
         JOIN public.subject_type m ON m.id = r.member_subject_type_id AND NOT m.is_voided \
         WHERE r.organisation_id = ANY($1) AND NOT r.is_voided \
           AND g.uuid IS NOT NULL AND m.uuid IS NOT NULL \
         ORDER BY 1, 2",
    )
    .bind::<Array<Integer>, _>(ids)
    .load(conn)
    .await
}

/// Names what was being read when a query of the source failed (a NULL
/// where the engine expects a value, a column a release of Avni lacks).
fn reading(what: &'static str) -> impl FnOnce(diesel::result::Error) -> Error {
    move |source| Error::SourceRead { what, source }
}

/// The entities of `table` (aliased `alias`, with the `extra` columns)
/// that the organisations define, each named as its organisation shows it.
///
/// The organisation's display name (operational_*) wins over the base
/// name, the nearest organisation's over its ancestors'; the same entity in
/// two members is read once, the nearest organisation's row winning.
async fn load_operational<T>(
    conn: &AsyncPgConnection,
    ids: &[i32],
    table: &str,
    alias: &str,
    extra: &str,
) -> Result<Vec<T>, diesel::result::Error>
where
    T: QueryableByName<Pg> + Send + 'static,
{
    let a = alias;
    let mut conn = conn;
    diesel::sql_query(format!(
        "SELECT DISTINCT ON ({a}.uuid) {a}.uuid, coalesce(nullif(o{a}.name, ''), {a}.name) AS name{extra} \
         FROM public.{table} {a} \
         LEFT JOIN public.operational_{table} o{a} \
           ON o{a}.{table}_id = {a}.id AND NOT o{a}.is_voided AND o{a}.organisation_id = ANY($1) \
         WHERE {a}.organisation_id = ANY($1) AND NOT {a}.is_voided AND {a}.uuid IS NOT NULL \
         ORDER BY {a}.uuid, array_position($1, {a}.organisation_id::int), \
                  array_position($1, o{a}.organisation_id::int), {a}.id"
    ))
    .bind::<Array<Integer>, _>(ids)
    .load(&mut conn)
    .await
}

/// Which forms fill which tables: each form mapped to a subject type and,
/// for a program's or an encounter's form, its program and encounter type.
async fn load_mappings(
    conn: &AsyncPgConnection,
    ids: &[i32],
) -> Result<Vec<FormMapping>, diesel::result::Error> {
    let mut conn = conn;
    diesel::sql_query(
        "SELECT DISTINCT f.uuid AS form_uuid, f.form_type, st.uuid AS subject_type_uuid, \
                p.uuid AS program_uuid, et.uuid AS encounter_type_uuid \
         FROM public.form_mapping fm \
         JOIN public.form f ON f.id = fm.form_id AND NOT f.is_voided \
         JOIN public.subject_type st ON st.id = fm.subject_type_id AND NOT st.is_voided \
           AND st.uuid IS NOT NULL \
         LEFT JOIN public.program p ON p.id = fm.entity_id \
         LEFT JOIN public.encounter_type et ON et.id = fm.observations_type_entity_id \
         WHERE fm.organisation_id = ANY($1) AND NOT fm.is_voided \
           AND (fm.entity_id IS NULL OR NOT p.is_voided) \
           AND (fm.observations_type_entity_id IS NULL OR NOT et.is_voided) \
         ORDER BY f.uuid, st.uuid, p.uuid, et.uuid",
    )
    .bind::<Array<Integer>, _>(ids)
    .load(&mut conn)
    .await
}

/// A question as read, with the organisations that switched it off.
#[derive(QueryableByName)]
struct ElementRow {
    #[diesel(embed)]
    element: FormElement,
    #[diesel(sql_type = Array<Integer>)]
    switched_off_by: Vec<i32>,
}

/// The questions of the mapped forms, by form uuid, in form order, less
/// those the run's organisations switched off.
async fn load_form_elements(
    conn: &mut AsyncPgConnection,
    visibility: &Visibility,
    mappings: &[FormMapping],
) -> Result<BTreeMap<String, Vec<FormElement>>, diesel::result::Error> {
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
                coalesce({parent}, false) AS parent_repeatable, \
                ARRAY(SELECT n.organisation_id::int FROM public.non_applicable_form_element n \
                      WHERE n.form_element_id = fe.id AND NOT n.is_voided \
                        AND n.organisation_id = ANY($2)) AS switched_off_by \
         FROM public.form f \
         JOIN public.form_element_group feg ON feg.form_id = f.id AND NOT feg.is_voided \
         JOIN public.form_element fe ON fe.form_element_group_id = feg.id AND NOT fe.is_voided \
         JOIN public.concept c ON c.id = fe.concept_id \
         LEFT JOIN public.form_element pfe ON pfe.id = fe.group_id \
         LEFT JOIN public.concept pc ON pc.id = pfe.concept_id \
         WHERE f.uuid = ANY($1) AND f.organisation_id = ANY($2) \
         ORDER BY f.uuid, array_position($2, f.organisation_id::int), feg.display_order, fe.display_order, fe.id",
        own = REPEATABLE.replace("x.", "fe."),
        parent = REPEATABLE.replace("x.", "pfe."),
    );
    let rows: Vec<ElementRow> = diesel::sql_query(element_sql)
        .bind::<Array<Text>, _>(&form_uuids)
        .bind::<Array<Integer>, _>(&visibility.ids)
        .load(conn)
        .await?;
    let mut form_elements: BTreeMap<String, Vec<FormElement>> = BTreeMap::new();
    for ElementRow {
        element: e,
        switched_off_by,
    } in rows
    {
        if visibility.hides(&switched_off_by) {
            continue;
        }
        let list = form_elements.entry(e.form_uuid.clone()).or_default();
        // A form shared by two members appears twice; its first copy counts.
        if !list.iter().any(|x| {
            x.concept_uuid == e.concept_uuid && x.parent_concept_uuid == e.parent_concept_uuid
        }) {
            list.push(e);
        }
    }
    Ok(form_elements)
}

/// The address level types' names, highest level first.
async fn load_address_level_types(
    conn: &AsyncPgConnection,
    ids: &[i32],
) -> Result<Vec<String>, diesel::result::Error> {
    let mut conn = conn;
    let levels: Vec<LevelType> = diesel::sql_query(
        "SELECT name, coalesce(max(level), 0)::float8 AS level FROM public.address_level_type \
         WHERE organisation_id = ANY($1) AND NOT is_voided \
         GROUP BY name ORDER BY max(level) DESC NULLS LAST, name",
    )
    .bind::<Array<Integer>, _>(ids)
    .load(&mut conn)
    .await?;
    Ok(levels.into_iter().map(|l| l.name).collect())
}

/// The answers of the coded questions among `form_elements`, by concept
/// uuid.
async fn load_answers(
    conn: &mut AsyncPgConnection,
    ids: &[i32],
    form_elements: &BTreeMap<String, Vec<FormElement>>,
) -> Result<BTreeMap<String, Vec<(String, String)>>, diesel::result::Error> {
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
         ORDER BY c.uuid, a.uuid, array_position($2, c.organisation_id::int)",
    )
    .bind::<Array<Text>, _>(&coded)
    .bind::<Array<Integer>, _>(ids)
    .load(conn)
    .await?;
    let mut answers: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for a in answer_rows {
        answers
            .entry(a.concept_uuid)
            .or_default()
            .push((a.answer_uuid, a.answer_name));
    }
    Ok(answers)
}
