//! A reporting schema as avni-etl builds it, for the takeover tests
//! (issue 14): written from the facts in docs/real-systems/avni-etl.md, not
//! from its code. One run of avni-etl for an organisation of the
//! avni-server fixture ([`crate::avni_server`]):
//!
//! - its tables (§1.1: a subject, a program enrolment and exit, a program
//!   encounter and its cancel table, an encounter and its cancel table,
//!   `address`, and the fixed `users`, `sync_telemetry` and `media`), made as its `CreateTable`
//!   does: `drop table if exists ... cascade; create table` with unquoted
//!   names, its table mappers' fixed columns in CREATE order with
//!   `CommonColumns` (§1.4), the concept columns of the form after them
//!   (§2), **no primary key**, one index per indexed column named
//!   `<schema>_<uuid>_idx` (§3.5), and `grant all` on the schema's tables to
//!   the organisation's role;
//! - its metadata in `public` in its vocabulary (§3.1-3.3): `table_metadata`
//!   rows by type and uuids, `column_metadata` rows with `integer`, `bool`,
//!   `timestampWithTimezone`, `point`, ... and `SingleSelect` /
//!   `MultiSelect` concept types, `index_metadata` rows;
//! - its rows, as its SQL templates write them (§4.3): plain
//!   `INSERT ... SELECT` under `SET ROLE <db_user>` over the window
//!   (epoch, boundary], the boundary being the run's start less 10 s; coded
//!   answers as names (multi-select joined with `", "` in answer order,
//!   §2.3); dates at Asia/Kolkata; the latest approval status written by
//!   its approval action (§4.4); address rows one per level with their
//!   ancestors' titles and ids;
//! - what it leaves behind: an equal-timestamp copy of a subject row and of
//!   a visit row (a sync-status reset, oddity 26: its duplicate delete
//!   never removes them);
//! - its `entity_sync_status` row per table (db_user = the organisation's,
//!   `last_sync_time` = the boundary, `Success`), written as `openchs`;
//! - its `subject_view` (§5, with its `indvidual_uuid` column), made under
//!   the organisation's role.

use crate::avni_server::{AvniGroup, AvniOrg, AvniServerDb, pg_error};
use service_kit::sql::{quote_ident, quote_literal, quote_qualified};
use tokio_postgres::Client;

/// avni-etl's `CommonColumns`, in order, with their `Column.Type` names.
const COMMON: [(&str, &str); 7] = [
    ("uuid", "text"),
    ("is_voided", "bool"),
    ("created_by_id", "integer"),
    ("last_modified_by_id", "integer"),
    ("created_date_time", "timestampWithTimezone"),
    ("last_modified_date_time", "timestampWithTimezone"),
    ("organisation_id", "integer"),
];

/// Fixed columns avni-etl indexes (`Column.ColumnType.index`).
const INDEXED: [&str; 17] = [
    "id",
    "uuid",
    "created_by_id",
    "last_modified_by_id",
    "created_date_time",
    "organisation_id",
    "address_id",
    "registration_date",
    "date_of_birth",
    "individual_id",
    "encounter_date_time",
    "cancel_date_time",
    "filled_by_id",
    "enrolment_date_time",
    "program_exit_date_time",
    "program_enrolment_id",
    "entity_id",
];

/// The PostgreSQL type of one of avni-etl's `Column.Type` names.
pub fn pg_type(avni_type: &str) -> &'static str {
    match avni_type {
        "serial" => "serial",
        "integer" => "integer",
        "numeric" => "numeric",
        "date" => "date",
        "time" => "time",
        "bool" => "boolean",
        "point" => "point",
        "timestamp" => "timestamp",
        "timestampWithTimezone" => "timestamp with time zone",
        "jsonb" => "jsonb",
        _ => "text",
    }
}

/// One column of an avni-etl table: its name, `Column.Type`, and, for a
/// question, its concept (uuid, id, ConceptType name).
#[derive(Debug, Clone)]
pub struct EtlColumn {
    pub name: String,
    pub avni_type: &'static str,
    pub concept: Option<(String, i32, String)>,
}

fn fixed(name: &str, avni_type: &'static str) -> EtlColumn {
    EtlColumn {
        name: name.to_string(),
        avni_type,
        concept: None,
    }
}

/// One table avni-etl built.
#[derive(Debug, Clone)]
pub struct EtlTable {
    pub name: String,
    /// `table_metadata.type`.
    pub kind: &'static str,
    pub subject_type_uuid: Option<String>,
    pub program_uuid: Option<String>,
    pub encounter_type_uuid: Option<String>,
    pub form_uuid: Option<String>,
    pub columns: Vec<EtlColumn>,
    /// Its `table_metadata.id`.
    pub id: i32,
}

impl EtlTable {
    pub fn column_names(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.name.clone()).collect()
    }
}

/// The schema one avni-etl run left.
#[derive(Debug, Clone)]
pub struct AvniEtlSchema {
    pub schema: String,
    pub db_user: String,
    /// The run's boundary: every table's `last_sync_time`.
    pub boundary: chrono::DateTime<chrono::Utc>,
    pub tables: Vec<EtlTable>,
}

impl AvniEtlSchema {
    pub fn table(&self, kind: &str) -> &EtlTable {
        self.tables
            .iter()
            .find(|t| t.kind == kind)
            .unwrap_or_else(|| panic!("no {kind} table"))
    }

    /// The tables the ETL adopts and goes on filling: the form tables,
    /// `address`, `users` and `sync_telemetry` (not `media`).
    pub fn adopted_tables(&self) -> impl Iterator<Item = &EtlTable> {
        self.tables.iter().filter(|t| t.kind != "Media")
    }

    /// The tables avni-etl made from the organisation's forms and
    /// locations (not `users`, `sync_telemetry` or `media`).
    pub fn form_tables(&self) -> impl Iterator<Item = &EtlTable> {
        self.tables
            .iter()
            .filter(|t| !matches!(t.kind, "User" | "Media" | "SyncTelemetry"))
    }
}

/// The concepts of a form's questions as avni-etl's `getFormTables` finds
/// them (non-voided, applicable elements; a coded one typed by its element).
async fn form_concepts(owner: &Client, org: &AvniOrg, form: &str) -> Vec<EtlColumn> {
    owner
        .query(
            "SELECT c.name, c.data_type, fe.type, c.uuid, c.id FROM public.form f \
             JOIN public.form_element_group g ON g.form_id = f.id \
             JOIN public.form_element fe ON fe.form_element_group_id = g.id \
             JOIN public.concept c ON c.id = fe.concept_id \
             WHERE f.name = $1 AND f.organisation_id = $2::integer AND NOT fe.is_voided \
               AND NOT EXISTS (SELECT 1 FROM public.non_applicable_form_element n \
                               WHERE n.form_element_id = fe.id AND n.organisation_id = $2::integer) \
             ORDER BY g.display_order, fe.display_order",
            &[&form, &org.id],
        )
        .await
        .unwrap_or_else(|e| panic!("concepts of {form}: {}", pg_error(&e)))
        .iter()
        .map(|r| {
            let data_type: String = r.get(1);
            let element_type: Option<String> = r.get(2);
            let concept_type = if data_type == "Coded" {
                element_type.unwrap_or_else(|| "SingleSelect".into())
            } else {
                data_type.clone()
            };
            let avni_type = match data_type.as_str() {
                "Numeric" => "numeric",
                "Date" => "date",
                "DateTime" => "timestamp",
                "Time" => "time",
                "ImageV2" => "jsonb",
                _ => "text",
            };
            EtlColumn {
                name: r.get::<_, String>(0).replace('"', ""),
                avni_type,
                concept: Some((r.get(3), r.get(4), concept_type)),
            }
        })
        .collect()
}

async fn uuid_of(owner: &Client, table: &str, name: &str, org: &AvniOrg) -> String {
    owner
        .query_one(
            &format!(
                "SELECT uuid::text FROM public.{} WHERE name = $1 AND organisation_id = $2::integer",
                quote_ident(table)
            ),
            &[&name, &org.id],
        )
        .await
        .unwrap_or_else(|e| panic!("{table} {name}: {}", pg_error(&e)))
        .get(0)
}

fn subject_columns() -> Vec<EtlColumn> {
    let mut c = vec![fixed("id", "integer")];
    c.extend(COMMON.iter().map(|(n, t)| fixed(n, t)));
    for (n, t) in [
        ("address_id", "integer"),
        ("registration_date", "date"),
        ("first_name", "text"),
        ("last_name", "text"),
        ("registration_location", "point"),
        ("legacy_id", "text"),
        ("latest_approval_status", "text"),
        // PersonTable (allow_middle_name is off).
        ("date_of_birth", "date"),
        ("date_of_birth_verified", "bool"),
        ("gender", "text"),
    ] {
        c.push(fixed(n, t));
    }
    c
}

fn enrolment_columns() -> Vec<EtlColumn> {
    let mut c = vec![fixed("id", "integer")];
    c.extend(COMMON.iter().map(|(n, t)| fixed(n, t)));
    for (n, t) in [
        ("individual_id", "integer"),
        ("address_id", "integer"),
        ("enrolment_date_time", "timestampWithTimezone"),
        ("program_exit_date_time", "timestampWithTimezone"),
        ("enrolment_location", "point"),
        ("exit_location", "point"),
        ("legacy_id", "text"),
        ("latest_approval_status", "text"),
    ] {
        c.push(fixed(n, t));
    }
    c
}

fn encounter_columns(program: bool) -> Vec<EtlColumn> {
    let mut c = vec![fixed("id", "integer")];
    c.extend(COMMON.iter().map(|(n, t)| fixed(n, t)));
    for (n, t) in [
        ("name", "text"),
        ("individual_id", "integer"),
        ("address_id", "integer"),
        ("earliest_visit_date_time", "timestampWithTimezone"),
        ("max_visit_date_time", "timestampWithTimezone"),
        ("encounter_date_time", "timestampWithTimezone"),
        ("encounter_location", "point"),
        ("cancel_date_time", "timestampWithTimezone"),
        ("cancel_location", "point"),
        ("legacy_id", "text"),
        ("latest_approval_status", "text"),
        ("filled_by_id", "integer"),
    ] {
        c.push(fixed(n, t));
    }
    if program {
        c.push(fixed("program_enrolment_id", "integer"));
    }
    c
}

fn address_columns(levels: &[String]) -> Vec<EtlColumn> {
    let mut c: Vec<EtlColumn> = levels.iter().map(|l| fixed(l, "text")).collect();
    c.push(fixed("gps_coordinates", "point"));
    c.extend(levels.iter().map(|l| fixed(&format!("{l} id"), "integer")));
    c.push(fixed("id", "integer"));
    c.extend(COMMON.iter().map(|(n, t)| fixed(n, t)));
    c
}

fn users_columns() -> Vec<EtlColumn> {
    let mut c = vec![
        fixed("id", "integer"),
        fixed("username", "text"),
        fixed("catchment_id", "integer"),
        fixed("email", "text"),
        fixed("phone_number", "text"),
        fixed("name", "text"),
    ];
    c.extend(COMMON.iter().map(|(n, t)| fixed(n, t)));
    c
}

fn sync_telemetry_columns() -> Vec<EtlColumn> {
    let mut c = vec![fixed("id", "serial")];
    c.extend(COMMON.iter().map(|(n, t)| fixed(n, t)));
    c.push(fixed("user_id", "integer"));
    c.push(fixed("sync_status", "text"));
    c.push(fixed("sync_start_time", "timestampWithTimezone"));
    c.push(fixed("sync_end_time", "timestampWithTimezone"));
    for n in [
        "device_name",
        "android_version",
        "app_version",
        "device_info",
        "sync_source",
        "latest_approval_status",
    ] {
        c.push(fixed(n, "text"));
    }
    c
}

fn media_columns() -> Vec<EtlColumn> {
    let mut c = vec![fixed("id", "serial")];
    c.extend(COMMON.iter().map(|(n, t)| fixed(n, t)));
    c.push(fixed("address_id", "integer"));
    for n in [
        "image_url",
        "sync_parameter_key1",
        "sync_parameter_value1",
        "sync_parameter_key2",
        "sync_parameter_value2",
        "subject_type_name",
        "encounter_type_name",
        "program_name",
        "concept_name",
    ] {
        c.push(fixed(n, "text"));
    }
    c.push(fixed("entity_id", "integer"));
    for n in [
        "subject_first_name",
        "subject_last_name",
        "subject_middle_name",
    ] {
        c.push(fixed(n, "text"));
    }
    c.push(fixed("media_metadata", "jsonb"));
    c.push(fixed("question_group_concept_name", "text"));
    c.push(fixed("repeatable_question_group_index", "integer"));
    c
}

/// A table of `kind` named `name` with `fixed` columns and the questions of
/// `form`, if any.
#[allow(clippy::too_many_arguments)]
async fn table(
    owner: &Client,
    org: &AvniOrg,
    name: &str,
    kind: &'static str,
    uuids: [Option<&String>; 3],
    form: Option<&str>,
    mut columns: Vec<EtlColumn>,
) -> EtlTable {
    let mut form_uuid = None;
    if let Some(form) = form {
        columns.extend(form_concepts(owner, org, form).await);
        form_uuid = Some(uuid_of(owner, "form", form, org).await);
    }
    EtlTable {
        name: name.to_string(),
        kind,
        subject_type_uuid: uuids[0].cloned(),
        program_uuid: uuids[1].cloned(),
        encounter_type_uuid: uuids[2].cloned(),
        form_uuid,
        columns,
        id: 0,
    }
}

/// The tables avni-etl makes for an organisation of the avni-server
/// fixture (its Person subject type, Maternal program with ANC, Home visit
/// encounter, two location levels), in its processing order.
async fn plan(owner: &Client, org: &AvniOrg) -> Vec<EtlTable> {
    let st = uuid_of(owner, "subject_type", "Person", org).await;
    let program = uuid_of(owner, "program", "Maternal", org).await;
    let anc = uuid_of(owner, "encounter_type", "ANC", org).await;
    let visit = uuid_of(owner, "encounter_type", "Home visit", org).await;
    let levels: Vec<String> = owner
        .query(
            "SELECT name FROM public.address_level_type WHERE organisation_id = $1 AND NOT is_voided \
             ORDER BY level DESC",
            &[&org.id],
        )
        .await
        .unwrap_or_else(|e| panic!("level types: {}", pg_error(&e)))
        .iter()
        .map(|r| r.get(0))
        .collect();
    let s = Some(&st);
    let p = Some(&program);
    vec![
        table(
            owner,
            org,
            "person",
            "Person",
            [s, None, None],
            Some("Person registration"),
            subject_columns(),
        )
        .await,
        table(
            owner,
            org,
            "person_maternal",
            "ProgramEnrolment",
            [s, p, None],
            Some("Maternal enrolment"),
            enrolment_columns(),
        )
        .await,
        table(
            owner,
            org,
            "person_maternal_exit",
            "ProgramExit",
            [s, p, None],
            Some("Maternal exit"),
            enrolment_columns(),
        )
        .await,
        table(
            owner,
            org,
            "person_maternal_anc",
            "ProgramEncounter",
            [s, p, Some(&anc)],
            Some("ANC"),
            encounter_columns(true),
        )
        .await,
        table(
            owner,
            org,
            "person_maternal_anc_cancel",
            "ProgramEncounterCancellation",
            [s, p, Some(&anc)],
            Some("ANC cancel"),
            encounter_columns(true),
        )
        .await,
        table(
            owner,
            org,
            "person_home_visit",
            "Encounter",
            [s, None, Some(&visit)],
            Some("Home visit"),
            encounter_columns(false),
        )
        .await,
        table(
            owner,
            org,
            "person_home_visit_cancel",
            "IndividualEncounterCancellation",
            [s, None, Some(&visit)],
            Some("Home visit cancel"),
            encounter_columns(false),
        )
        .await,
        table(
            owner,
            org,
            "address",
            "Address",
            [None, None, None],
            None,
            address_columns(&levels),
        )
        .await,
        table(
            owner,
            org,
            "users",
            "User",
            [None, None, None],
            None,
            users_columns(),
        )
        .await,
        table(
            owner,
            org,
            "sync_telemetry",
            "SyncTelemetry",
            [None, None, None],
            None,
            sync_telemetry_columns(),
        )
        .await,
        table(
            owner,
            org,
            "media",
            "Media",
            [None, None, None],
            None,
            media_columns(),
        )
        .await,
    ]
}

/// `CreateTable`: the table (no key), the grants, the indexes; and its
/// metadata rows. Returns the table's `table_metadata.id`.
async fn create(owner: &Client, schema: &str, db_user: &str, t: &EtlTable) -> i32 {
    let definitions: Vec<String> = t
        .columns
        .iter()
        .map(|c| format!("{} {}", quote_ident(&c.name), pg_type(c.avni_type)))
        .collect();
    // avni-etl leaves table names unquoted in its DDL (they are plain
    // lower-case identifiers).
    let qualified = format!("{}.{}", quote_ident(schema), t.name);
    owner
        .batch_execute(&format!(
            "drop table if exists {qualified} cascade; create table {qualified} ({}); \
             grant all privileges on all tables in schema {s} to {u}; \
             grant all privileges on all sequences in schema {s} to {u};",
            definitions.join(", "),
            s = quote_ident(schema),
            u = quote_ident(db_user),
        ))
        .await
        .unwrap_or_else(|e| panic!("create {}: {}", t.name, pg_error(&e)));
    let id: i32 = owner
        .query_one(
            "INSERT INTO public.table_metadata (name, type, schema_name, subject_type_uuid, program_uuid, \
             encounter_type_uuid, form_uuid) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            &[
                &t.name,
                &t.kind,
                &schema,
                &t.subject_type_uuid,
                &t.program_uuid,
                &t.encounter_type_uuid,
                &t.form_uuid,
            ],
        )
        .await
        .unwrap_or_else(|e| panic!("table_metadata {}: {}", t.name, pg_error(&e)))
        .get(0);
    let indexed = t.kind != "User";
    for c in &t.columns {
        let (concept_uuid, concept_id, concept_type) = match &c.concept {
            Some((u, i, ty)) => (Some(u.clone()), Some(*i), Some(ty.clone())),
            None => (None, None, None),
        };
        let column_id: i32 = owner
            .query_one(
                "INSERT INTO public.column_metadata (table_id, name, type, concept_id, concept_type, \
                 concept_uuid, schema_name, concept_voided) VALUES ($1, $2, $3, $4, $5, $6, $7, false) \
                 RETURNING id",
                &[
                    &id,
                    &c.name,
                    &c.avni_type,
                    &concept_id,
                    &concept_type,
                    &concept_uuid,
                    &schema,
                ],
            )
            .await
            .unwrap_or_else(|e| panic!("column_metadata {}.{}: {}", t.name, c.name, pg_error(&e)))
            .get(0);
        let level_id = t.kind == "Address" && c.name.ends_with(" id");
        if indexed && c.concept.is_none() && (INDEXED.contains(&c.name.as_str()) || level_id) {
            let index = format!("{schema}_{}_idx", uuid::Uuid::new_v4());
            owner
                .batch_execute(&format!(
                    "create index {} on {} ({})",
                    quote_ident(&index),
                    quote_qualified(schema, &t.name),
                    quote_ident(&c.name)
                ))
                .await
                .unwrap_or_else(|e| panic!("index {}.{}: {}", t.name, c.name, pg_error(&e)));
            owner
                .execute(
                    "INSERT INTO public.index_metadata (table_metadata_id, column_id, name) \
                     VALUES ($1, $2, $3)",
                    &[&id, &column_id, &index],
                )
                .await
                .unwrap_or_else(|e| panic!("index_metadata: {}", pg_error(&e)));
        }
    }
    id
}

/// avni-etl's value expression for a question (§2.3) over `obs`.
fn concept_expr(c: &EtlColumn, obs: &str) -> String {
    let Some((uuid, _, concept_type)) = &c.concept else {
        return "NULL".into();
    };
    let u = quote_literal(uuid);
    match concept_type.as_str() {
        "Numeric" => format!("({obs}->>{u})::NUMERIC"),
        "Date" => format!("(({obs}->>{u})::timestamptz AT TIME ZONE 'asia/kolkata')::date"),
        "DateTime" => format!("({obs}->>{u})::timestamptz AT TIME ZONE 'asia/kolkata'"),
        // get_coded_string_value: the answers' names, an array's joined
        // with ', ' in its order.
        "SingleSelect" | "MultiSelect" => format!(
            "(CASE WHEN jsonb_typeof({obs}->{u}) = 'array' THEN \
               (SELECT string_agg(ac.name, ', ' ORDER BY a.ord) \
                  FROM jsonb_array_elements_text({obs}->{u}) WITH ORDINALITY a(v, ord) \
                  JOIN public.concept ac ON ac.uuid = a.v) \
             ELSE (SELECT ac.name FROM public.concept ac WHERE ac.uuid = {obs}->>{u}) END)::TEXT"
        ),
        _ => format!("({obs}->>{u})::TEXT"),
    }
}

/// The INSERT ... SELECT of a table's rows changed in (epoch, `boundary`].
fn insert_statement(schema: &str, t: &EtlTable, boundary: &str) -> Option<String> {
    let (from, obs, filter): (&str, &str, String) = match t.kind {
        "Person" => (
            "public.individual entity JOIN public.subject_type st ON st.id = entity.subject_type_id \
             LEFT JOIN public.gender g ON g.id = entity.gender_id",
            "entity.observations",
            format!(
                "st.uuid = {}",
                quote_literal(t.subject_type_uuid.as_deref()?)
            ),
        ),
        "ProgramEnrolment" | "ProgramExit" => (
            "public.program_enrolment entity JOIN public.program p ON p.id = entity.program_id \
             JOIN public.individual ind ON ind.id = entity.individual_id \
             JOIN public.subject_type st ON st.id = ind.subject_type_id",
            if t.kind == "ProgramExit" {
                "entity.program_exit_observations"
            } else {
                "entity.observations"
            },
            format!(
                "p.uuid = {} AND st.uuid = {}{}",
                quote_literal(t.program_uuid.as_deref()?),
                quote_literal(t.subject_type_uuid.as_deref()?),
                if t.kind == "ProgramExit" {
                    " AND entity.program_exit_date_time IS NOT NULL"
                } else {
                    ""
                }
            ),
        ),
        "ProgramEncounter" | "ProgramEncounterCancellation" => (
            "public.program_encounter entity JOIN public.encounter_type et ON et.id = entity.encounter_type_id \
             JOIN public.program_enrolment pe ON pe.id = entity.program_enrolment_id \
             JOIN public.program p ON p.id = pe.program_id \
             JOIN public.individual ind ON ind.id = pe.individual_id \
             JOIN public.subject_type st ON st.id = ind.subject_type_id",
            if t.kind == "ProgramEncounterCancellation" {
                "entity.cancel_observations"
            } else {
                "entity.observations"
            },
            format!(
                "et.uuid = {} AND p.uuid = {} AND st.uuid = {}{}",
                quote_literal(t.encounter_type_uuid.as_deref()?),
                quote_literal(t.program_uuid.as_deref()?),
                quote_literal(t.subject_type_uuid.as_deref()?),
                if t.kind == "ProgramEncounterCancellation" {
                    " AND entity.cancel_date_time IS NOT NULL"
                } else {
                    ""
                }
            ),
        ),
        "Encounter" | "IndividualEncounterCancellation" => (
            "public.encounter entity JOIN public.encounter_type et ON et.id = entity.encounter_type_id \
             JOIN public.individual ind ON ind.id = entity.individual_id \
             JOIN public.subject_type st ON st.id = ind.subject_type_id",
            if t.kind == "IndividualEncounterCancellation" {
                "entity.cancel_observations"
            } else {
                "entity.observations"
            },
            format!(
                "et.uuid = {} AND st.uuid = {}{}",
                quote_literal(t.encounter_type_uuid.as_deref()?),
                quote_literal(t.subject_type_uuid.as_deref()?),
                if t.kind == "IndividualEncounterCancellation" {
                    " AND entity.cancel_date_time IS NOT NULL"
                } else {
                    ""
                }
            ),
        ),
        "User" => ("public.users entity", "NULL::jsonb", "true".to_string()),
        _ => return None,
    };
    let mut names = Vec::new();
    let mut exprs = Vec::new();
    for c in &t.columns {
        let expr = match (c.concept.is_some(), c.name.as_str()) {
            (true, _) => concept_expr(c, obs),
            // Filled later by its approval action.
            (_, "latest_approval_status") => continue,
            (_, "gender") => "g.name".to_string(),
            (_, "individual_id") if t.kind.starts_with("ProgramEncounter") => {
                "entity.individual_id".into()
            }
            (_, name) => format!("entity.{}", quote_ident(name)),
        };
        names.push(quote_ident(&c.name));
        exprs.push(expr);
    }
    let b = quote_literal(boundary);
    Some(format!(
        "insert into {} ({}) select {} from {from} where {filter} \
         and entity.last_modified_date_time > '1970-01-01T00:00:00.000' \
         and entity.last_modified_date_time <= {b}",
        quote_qualified(schema, &t.name),
        names.join(", "),
        exprs.join(", ")
    ))
}

/// `AddressTableSyncAction`: each level's rows with its own title and id,
/// then its ancestors' filled in.
fn address_statements(
    schema: &str,
    t: &EtlTable,
    levels: &[String],
    boundary: &str,
) -> Vec<String> {
    let table = quote_qualified(schema, &t.name);
    let b = quote_literal(boundary);
    let mut statements = Vec::new();
    for level in levels {
        statements.push(format!(
            "insert into {table} ({l}, {lid}, id, uuid, is_voided, created_by_id, last_modified_by_id, \
             created_date_time, last_modified_date_time, organisation_id, gps_coordinates) \
             select al.title, al.id, al.id, al.uuid, al.is_voided, al.created_by_id, al.last_modified_by_id, \
             al.created_date_time, al.last_modified_date_time, al.organisation_id, al.gps_coordinates \
             from public.address_level al join public.address_level_type alt on alt.id = al.type_id \
             where alt.name = {name} and al.last_modified_date_time <= {b}",
            l = quote_ident(level),
            lid = quote_ident(&format!("{level} id")),
            name = quote_literal(level),
        ));
    }
    // Ancestors, over the whole table: the child's parent's title and id.
    for pair in levels.windows(2) {
        let (parent, child) = (&pair[0], &pair[1]);
        statements.push(format!(
            "update {table} a set {p} = al.title, {pid} = al.id \
             from public.address_level al join public.address_level cal on cal.parent_id = al.id \
             where cal.id = a.{cid}",
            p = quote_ident(parent),
            pid = quote_ident(&format!("{parent} id")),
            cid = quote_ident(&format!("{child} id")),
        ));
    }
    statements
}

/// `EntityApprovalStatusSyncAction` on a subject table.
fn approval_statement(schema: &str, t: &EtlTable) -> String {
    format!(
        "update {} t set latest_approval_status = s.status from ( \
           select distinct on (eas.entity_id) eas.entity_id, ast.status \
             from public.entity_approval_status eas \
             join public.approval_status ast on ast.id = eas.approval_status_id \
            where eas.entity_type = 'Subject' and not eas.is_voided \
            order by eas.entity_id, eas.status_date_time desc) s \
         where s.entity_id = t.id",
        quote_qualified(schema, &t.name)
    )
}

/// Adds a multi-select question (`Symptoms`: Fever, Cough) to the ANC form
/// of `org` and answers it on its first two ANC visits, as avni-server
/// writes them (under the organisation's role, audit columns set, the
/// visits' change time moved on).
pub async fn add_multi_select_question(avni: &AvniServerDb, org: &AvniOrg) {
    let session = avni.session(&org.db_user).await;
    session
        .batch_execute(&format!("SET fixture.key = {}", quote_literal(&org.key)))
        .await
        .unwrap_or_else(|e| panic!("fixture.key: {e}"));
    session
        .batch_execute(
            "DO $q$
             DECLARE
                 org int := (SELECT id FROM public.organisation WHERE db_user = current_user);
                 admin int := (SELECT id FROM public.users WHERE organisation_id = org AND is_org_admin);
                 ts timestamptz := date_trunc('milliseconds', now()) - interval '50 seconds';
                 q int; fever text := md5(org || ':concept:Fever'); cough text := md5(org || ':concept:Cough');
             BEGIN
                 INSERT INTO public.concept (data_type, name, uuid, version, organisation_id, created_by_id,
                                             last_modified_by_id, created_date_time, last_modified_date_time)
                 VALUES ('Coded', 'Symptoms', md5(org || ':concept:Symptoms')::uuid, 0, org, admin, admin, ts, ts)
                 RETURNING id INTO q;
                 INSERT INTO public.concept (data_type, name, uuid, version, organisation_id, created_by_id,
                                             last_modified_by_id, created_date_time, last_modified_date_time)
                 VALUES ('NA', 'Fever', fever::uuid, 0, org, admin, admin, ts, ts),
                        ('NA', 'Cough', cough::uuid, 0, org, admin, admin, ts, ts);
                 INSERT INTO public.concept_answer (concept_id, answer_concept_id, uuid, version, answer_order,
                                                    organisation_id, created_by_id, last_modified_by_id,
                                                    created_date_time, last_modified_date_time)
                 SELECT q, c.id, md5(org || ':answer:' || c.name)::uuid, 0, row_number() OVER (ORDER BY c.name),
                        org, admin, admin, ts, ts
                   FROM public.concept c WHERE c.organisation_id = org AND c.name IN ('Fever', 'Cough');
                 INSERT INTO public.form_element (name, display_order, concept_id, form_element_group_id, uuid,
                                                  version, organisation_id, type, created_by_id, last_modified_by_id,
                                                  created_date_time, last_modified_date_time)
                 SELECT 'Symptoms', 3, q, g.id, md5(org || ':fe:ANC:Symptoms')::uuid, 0, org, 'MultiSelect',
                        admin, admin, ts, ts
                   FROM public.form_element_group g JOIN public.form f ON f.id = g.form_id
                  WHERE f.name = 'ANC' AND f.organisation_id = org;
                 UPDATE public.program_encounter pe
                    SET observations = pe.observations || jsonb_build_object(
                            md5(org || ':concept:Symptoms')::uuid::text,
                            CASE WHEN pe.uuid = md5(current_setting('fixture.key') || ':anc:1')::uuid::text
                                 THEN jsonb_build_array(fever::uuid::text, cough::uuid::text)
                                 ELSE jsonb_build_array(cough::uuid::text) END),
                        last_modified_date_time = ts
                  WHERE pe.organisation_id = org
                    AND pe.uuid IN (md5(current_setting('fixture.key') || ':anc:1')::uuid::text,
                                    md5(current_setting('fixture.key') || ':anc:2')::uuid::text);
             END
             $q$",
        )
        .await
        .unwrap_or_else(|e| panic!("multi-select question for {}: {}", org.key, pg_error(&e)));
}

/// Builds `org`'s reporting schema as one avni-etl run does, and returns
/// what it made. The organisation's data must be in (`AvniServerDb::fill`).
pub async fn build(avni: &AvniServerDb, org: &AvniOrg) -> AvniEtlSchema {
    let owner = avni.owner().await;
    let schema = org.schema_name.clone();
    let boundary: chrono::DateTime<chrono::Utc> = owner
        .query_one(
            "SELECT date_trunc('milliseconds', now()) - interval '10 seconds'",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("boundary: {}", pg_error(&e)))
        .get(0);
    let boundary_text = boundary.to_rfc3339();
    // ensureSchemaExists: the role and the schema, every run.
    owner
        .batch_execute(&format!(
            "SELECT create_db_user({u}, 'password'); SELECT create_implementation_schema({s}, {u});",
            u = quote_literal(&org.db_user),
            s = quote_literal(&schema)
        ))
        .await
        .unwrap_or_else(|e| panic!("ensure schema {schema}: {}", pg_error(&e)));
    let mut tables = plan(&owner, org).await;
    for t in &mut tables {
        t.id = create(&owner, &schema, &org.db_user, t).await;
    }
    let levels: Vec<String> = tables
        .iter()
        .find(|t| t.kind == "Address")
        .map(|t| {
            t.columns
                .iter()
                .take_while(|c| c.name != "gps_coordinates")
                .map(|c| c.name.clone())
                .collect()
        })
        .unwrap_or_default();
    // The sync, in one transaction under the organisation's role.
    let session = avni.session(&org.db_user).await;
    let mut statements = vec!["BEGIN".to_string()];
    for t in &tables {
        if t.kind == "Address" {
            statements.extend(address_statements(&schema, t, &levels, &boundary_text));
        } else if let Some(s) = insert_statement(&schema, t, &boundary_text) {
            statements.push(s);
        }
        if t.kind == "Person" {
            statements.push(approval_statement(&schema, t));
        }
    }
    // Left behind by a sync-status reset: equal-timestamp copies, which
    // its duplicate delete (strictly older) never removes.
    for (kind, table) in [("Person", "person"), ("Encounter", "person_home_visit")] {
        if tables.iter().any(|t| t.kind == kind) {
            let q = quote_qualified(&schema, table);
            statements.push(format!(
                "insert into {q} select * from {q} where id = (select min(id) from {q})"
            ));
        }
    }
    statements.push("COMMIT".into());
    session
        .batch_execute(&statements.join(";\n"))
        .await
        .unwrap_or_else(|e| panic!("avni-etl's sync of {schema}: {}", pg_error(&e)));
    for t in &tables {
        owner
            .execute(
                "INSERT INTO public.entity_sync_status (db_user, table_metadata_id, last_sync_time, \
                 sync_status, schema_name) VALUES ($1, $2, $3, 'Success', $4)",
                &[&org.db_user, &t.id, &boundary, &schema],
            )
            .await
            .unwrap_or_else(|e| panic!("entity_sync_status {}: {}", t.name, pg_error(&e)));
    }
    subject_view(&session, &schema, &levels).await;
    AvniEtlSchema {
        schema,
        db_user: org.db_user.clone(),
        boundary,
        tables,
    }
}

/// avni-etl's `subject_view` over its one subject table (§5).
async fn subject_view(session: &Client, schema: &str, levels: &[String]) {
    let address: Vec<String> = levels
        .iter()
        .map(|l| format!("a.{}", quote_ident(l)))
        .collect();
    let sql = format!(
        "DROP VIEW IF EXISTS {view}; CREATE OR REPLACE VIEW {view} AS \
         SELECT s.id AS individual_id, s.uuid AS indvidual_uuid, s.first_name, s.date_of_birth, s.last_name, \
                s.gender, s.registration_date, s.created_date_time, s.last_modified_date_time, s.is_voided, \
                st.uuid AS subject_type_uuid, s.address_id, cu.username AS created_by_username, \
                lu.username AS last_modified_by_username, st.name AS subject_type, {address} \
           FROM {person} s JOIN {addr} a ON a.id = s.address_id \
           LEFT JOIN public.users cu ON cu.id = s.created_by_id \
           LEFT JOIN public.users lu ON lu.id = s.last_modified_by_id \
           LEFT JOIN public.subject_type st ON st.uuid = (SELECT uuid FROM public.subject_type WHERE name = 'Person' LIMIT 1) \
          WHERE NOT s.is_voided",
        view = quote_qualified(schema, "subject_view"),
        person = quote_qualified(schema, "person"),
        addr = quote_qualified(schema, "address"),
        address = address.join(", "),
    );
    session
        .batch_execute(&sql)
        .await
        .unwrap_or_else(|e| panic!("subject_view: {}", pg_error(&e)));
}

/// The level types of `org`'s own locations (its address table's title
/// columns), in avni-etl's column order.
async fn level_types(owner: &Client, org: &AvniOrg) -> Vec<String> {
    owner
        .query(
            "SELECT name FROM public.address_level_type WHERE organisation_id = $1::integer \
             AND NOT is_voided ORDER BY level DESC",
            &[&org.id],
        )
        .await
        .unwrap_or_else(|e| panic!("level types: {}", pg_error(&e)))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Builds a group's schema as avni-etl's `runForOrganisationGroup` does for
/// members that share their metadata (a parent and its child): the schema
/// owned by the group's role with ALL for every member's, the tables made
/// once from the first member's forms (the address table gains each
/// member's level columns), each member's rows written under its own role,
/// and one `entity_sync_status` row per table per member db_user.
pub async fn build_group(avni: &AvniServerDb, group: &AvniGroup) -> AvniEtlSchema {
    let owner = avni.owner().await;
    let schema = group.schema_name.clone();
    let first = &group.members[0];
    let boundary: chrono::DateTime<chrono::Utc> = owner
        .query_one(
            "SELECT date_trunc('milliseconds', now()) - interval '10 seconds'",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("boundary: {}", pg_error(&e)))
        .get(0);
    let boundary_text = boundary.to_rfc3339();
    let users: Vec<&str> = std::iter::once(group.db_user.as_str())
        .chain(group.members.iter().map(|m| m.db_user.as_str()))
        .collect();
    for u in &users {
        owner
            .batch_execute(&format!(
                "SELECT create_db_user({u}, 'password'); SELECT create_implementation_schema({s}, {u});",
                u = quote_literal(u),
                s = quote_literal(&schema)
            ))
            .await
            .unwrap_or_else(|e| panic!("ensure schema {schema}: {}", pg_error(&e)));
    }
    let mut tables: Vec<EtlTable> = plan(&owner, first)
        .await
        .into_iter()
        .filter(|t| t.kind != "Media")
        .collect();
    let mut member_levels = Vec::new();
    for m in &group.members {
        member_levels.push(level_types(&owner, m).await);
    }
    let all_levels: Vec<String> = member_levels.iter().flatten().cloned().collect();
    for t in &mut tables {
        if t.kind == "Address" {
            t.columns = address_columns(&all_levels);
        }
        t.id = create(&owner, &schema, &group.db_user, t).await;
        for m in &group.members {
            owner
                .batch_execute(&format!(
                    "grant all privileges on all tables in schema {} to {}",
                    quote_ident(&schema),
                    quote_ident(&m.db_user)
                ))
                .await
                .unwrap_or_else(|e| panic!("grant: {}", pg_error(&e)));
        }
    }
    for (m, levels) in group.members.iter().zip(&member_levels) {
        let mut statements = vec!["BEGIN".to_string()];
        for t in &tables {
            if t.kind == "Address" {
                statements.extend(address_statements(&schema, t, levels, &boundary_text));
            } else if let Some(s) = insert_statement(&schema, t, &boundary_text) {
                statements.push(s);
            }
            if t.kind == "Person" {
                statements.push(approval_statement(&schema, t));
            }
        }
        statements.push("COMMIT".into());
        avni.session(&m.db_user)
            .await
            .batch_execute(&statements.join(";\n"))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "avni-etl's sync of {} into {schema}: {}",
                    m.key,
                    pg_error(&e)
                )
            });
        for t in &tables {
            owner
                .execute(
                    "INSERT INTO public.entity_sync_status (db_user, table_metadata_id, last_sync_time, \
                     sync_status, schema_name) VALUES ($1, $2, $3, 'Success', $4)",
                    &[&m.db_user, &t.id, &boundary, &schema],
                )
                .await
                .unwrap_or_else(|e| panic!("entity_sync_status {}: {}", t.name, pg_error(&e)));
        }
    }
    AvniEtlSchema {
        schema,
        db_user: group.db_user.clone(),
        boundary,
        tables,
    }
}
