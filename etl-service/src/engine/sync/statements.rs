//! The statements that bring a table's rows up to date with the window: one
//! `INSERT ... SELECT ... ON CONFLICT DO UPDATE` of the changed source rows,
//! and the deletes of rows that stopped belonging.

use crate::engine::schema::layout::TableKind;
use crate::engine::schema::plan::PlannedTable;
use crate::engine::sync::SyncTarget;
use crate::engine::sync::extract::{Casting, column_expr};
use crate::engine::sync::source_rows::{row_kind, source_filter, source_from};
use crate::engine::sync::sql_text::Statement;
use chrono::{DateTime, Utc};
use service_kit::sql::{quote_ident, quote_qualified};

/// The `INSERT ... SELECT ... ON CONFLICT DO UPDATE` of a table's changed
/// rows.
pub fn upsert_statement(
    target: &SyncTarget<'_>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    casting: Casting,
) -> Statement {
    let table = target.table;
    let kind = row_kind(table);
    let mut s = Statement::new();
    let filter = source_filter(&mut s, target, from, to);
    let detoast = detoasted_observations(kind);
    let (row_obs, elements) = row_observations(&mut s, table);
    let (names, exprs) = column_values(&mut s, target, &row_obs, casting);
    let (keys, updates) = conflict_update(table);
    let joins = lookup_joins(table, kind);
    let mut conditions = filter;
    if let Some(m) = kind.membership_column() {
        conditions.push_str(&format!(" AND src.{m} IS NOT NULL"));
    }
    s.push(&format!(
        "INSERT INTO {table} ({names}) SELECT {exprs} FROM {from}{joins}{detoast}{elements} WHERE {conditions} \
         ON CONFLICT ({keys}) DO UPDATE SET {updates}",
        table = quote_qualified(target.schema, &table.name),
        names = names.join(", "),
        exprs = exprs.join(", "),
        from = source_from(kind),
    ));
    s
}

/// A row's observations as [`detoasted_observations`] reads them.
const OBSERVATIONS: &str = "d.o";

/// The join reading a row's observations once, as [`OBSERVATIONS`].
///
/// Observations are read once per row: a large jsonb is TOASTed, and
/// every `->` on the column would fetch and decompress it again (one per
/// question column, an order of magnitude slower). The concatenation
/// yields the value detoasted, and OFFSET 0 keeps the subquery from
/// being flattened back into per-column reads.
fn detoasted_observations(kind: TableKind) -> String {
    if kind == TableKind::Address || kind.is_avni_table() {
        String::new()
    } else {
        format!(
            " CROSS JOIN LATERAL (SELECT src.{} || '{{}}'::jsonb AS o OFFSET 0) d",
            kind.observations_column()
        )
    }
}

/// Where a table's row reads its answers from, and the join that yields
/// them: the row's `observations`, or for a repeatable-group table each
/// element of the group's array (a row per element).
fn row_observations(s: &mut Statement, table: &PlannedTable) -> (String, String) {
    let observations = OBSERVATIONS;
    match (&table.identity.kind, &table.identity.group_concept_uuid) {
        (TableKind::RepeatableQuestionGroup, Some(group)) => {
            let g = s.bind_text(group);
            (
                "el.value".to_string(),
                format!(
                    " CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof({observations} -> {g}) = 'array' \
                     THEN {observations} -> {g} END) WITH ORDINALITY AS el(value, ord)"
                ),
            )
        }
        _ => (observations.to_string(), String::new()),
    }
}

/// The table's column names and, in the same order, their values' SQL
/// expressions: the fixed columns, then one per question.
fn column_values(
    s: &mut Statement,
    target: &SyncTarget<'_>,
    row_obs: &str,
    casting: Casting,
) -> (Vec<String>, Vec<String>) {
    let table = target.table;
    let mut names = Vec::new();
    let mut exprs = Vec::new();
    for fixed in &table.fixed {
        names.push(quote_ident(fixed.name));
        // A column an adopted table keeps in avni-etl's type (a location
        // as `point`) gets its value as that type.
        match table.stored_types.iter().find(|(n, _)| *n == fixed.name) {
            Some((_, stored)) => exprs.push(format!("({})::{stored}", fixed.expr)),
            None => exprs.push(fixed.expr.to_string()),
        }
    }
    for (name, expr) in &table.kept {
        names.push(quote_ident(name));
        exprs.push(expr.to_string());
    }
    for column in &table.columns {
        names.push(quote_ident(&column.name));
        exprs.push(column_expr(s, row_obs, column, target.time_zone, casting));
    }
    (names, exprs)
}

/// The conflict target (the key columns) and the `SET` list updating every
/// other column.
fn conflict_update(table: &PlannedTable) -> (String, String) {
    let keys = table.quoted_keys();
    let updates: Vec<String> = table
        .fixed
        .iter()
        .filter(|c| !c.key)
        .map(|c| c.name.to_string())
        .chain(table.kept.iter().map(|(n, _)| n.clone()))
        .chain(table.columns.iter().map(|c| c.name.clone()))
        .map(|n| format!("{0} = EXCLUDED.{0}", quote_ident(&n)))
        .collect();
    (keys.join(", "), updates.join(", "))
}

/// The joins the fixed columns read from: the users who created and last
/// changed the row, the subject's gender, an address level's ancestors.
fn lookup_joins(table: &PlannedTable, kind: TableKind) -> String {
    // avni-etl's columns keep the users' ids, not their names.
    if kind.is_avni_table() {
        return String::new();
    }
    let mut joins = String::from(
        " LEFT JOIN public.users cu ON cu.id = src.created_by_id \
          LEFT JOIN public.users lu ON lu.id = src.last_modified_by_id",
    );
    if table.identity.kind == TableKind::Subject && table.fixed.iter().any(|c| c.name == "gender") {
        joins.push_str(" LEFT JOIN public.gender g ON g.id = src.gender_id");
    }
    if kind == TableKind::Address {
        joins.push_str(ADDRESS_ANCESTORS);
    }
    joins
}

/// Each address level's ancestors (itself included) as
/// `{"<type name>": [id, title]}`.
const ADDRESS_ANCESTORS: &str = " LEFT JOIN LATERAL (WITH RECURSIVE up AS ( \
         SELECT a.id, a.title, a.type_id, a.parent_id, 0 AS depth FROM public.address_level a WHERE a.id = src.id \
         UNION ALL SELECT p.id, p.title, p.type_id, p.parent_id, up.depth + 1 \
         FROM public.address_level p JOIN up ON p.id = up.parent_id WHERE up.depth < 32) \
       SELECT jsonb_object_agg(t.name, jsonb_build_array(up.id, up.title)) AS levels \
       FROM up JOIN public.address_level_type t ON t.id = up.type_id) anc ON true";

/// The statements removing rows that no longer belong: exit/cancel rows
/// whose source row is no longer exited/cancelled, and repeatable-group
/// rows past the end of their (edited) array.
pub fn delete_statements(
    target: &SyncTarget<'_>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<Statement> {
    let table = target.table;
    let kind = row_kind(table);
    let qualified = quote_qualified(target.schema, &table.name);
    let mut statements = Vec::new();
    match (&table.identity.kind, &table.identity.group_concept_uuid) {
        (TableKind::RepeatableQuestionGroup, Some(group)) => {
            let mut s = Statement::new();
            let filter = source_filter(&mut s, target, from, to);
            let g = s.bind_text(group);
            let obs = format!("src.{}", kind.observations_column());
            let member = kind
                .membership_column()
                .map(|m| format!("src.{m} IS NOT NULL AND "))
                .unwrap_or_default();
            s.push(&format!(
                "DELETE FROM {qualified} t USING {from} WHERE t.{parent} = src.id AND {filter} \
                 AND t.\"index\" >= (CASE WHEN {member}jsonb_typeof({obs} -> {g}) = 'array' \
                 THEN jsonb_array_length({obs} -> {g}) ELSE 0 END)",
                from = source_from(kind),
                parent = quote_ident(kind.parent_id_column()),
            ));
            statements.push(s);
        }
        _ => {
            if let Some(m) = kind.membership_column() {
                let mut s = Statement::new();
                let filter = source_filter(&mut s, target, from, to);
                s.push(&format!(
                    "DELETE FROM {qualified} t USING {from} WHERE t.id = src.id AND {filter} \
                     AND src.{m} IS NULL",
                    from = source_from(kind),
                ));
                statements.push(s);
            }
        }
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::schema::plan::{ExistingSchema, plan_schema};
    use crate::engine::source::{FormElement, FormMapping, GroupRole, SourceModel, SubjectType};
    use crate::engine::sync::epoch;

    const HOSTILE: &str = "x'); DROP TABLE individual; --";

    fn model() -> SourceModel {
        let element = |uuid: &str, name: &str, data_type: &str, parent: Option<&str>| FormElement {
            form_uuid: "f".into(),
            concept_uuid: uuid.into(),
            concept_name: name.into(),
            data_type: data_type.into(),
            element_type: (data_type == "Coded").then(|| "MultiSelect".to_string()),
            repeatable: false,
            parent_concept_uuid: parent.map(Into::into),
            parent_concept_name: parent.map(|_| format!("{HOSTILE} group")),
            parent_repeatable: parent.is_some(),
        };
        let mut m = SourceModel {
            subject_types: vec![
                SubjectType {
                    uuid: format!("{HOSTILE} subject"),
                    name: format!("{HOSTILE} \"person\""),
                    kind: "Person".into(),
                    allow_middle_name: true,
                },
                SubjectType {
                    uuid: format!("{HOSTILE} subject household"),
                    name: format!("{HOSTILE} \"home\""),
                    kind: "Household".into(),
                    allow_middle_name: false,
                },
            ],
            mappings: vec![
                FormMapping {
                    form_uuid: "f".into(),
                    form_type: "IndividualProfile".into(),
                    subject_type_uuid: format!("{HOSTILE} subject"),
                    program_uuid: None,
                    encounter_type_uuid: None,
                },
                FormMapping {
                    form_uuid: "h".into(),
                    form_type: "IndividualProfile".into(),
                    subject_type_uuid: format!("{HOSTILE} subject household"),
                    program_uuid: None,
                    encounter_type_uuid: None,
                },
            ],
            group_roles: vec![GroupRole {
                group_subject_type_uuid: format!("{HOSTILE} subject household"),
                member_subject_type_uuid: format!("{HOSTILE} subject"),
            }],
            address_level_types: vec![format!("{HOSTILE} lvlq")],
            ..Default::default()
        };
        m.form_elements.insert(
            "f".into(),
            vec![
                element(
                    &format!("{HOSTILE} cq1"),
                    &format!("{HOSTILE} \"q\""),
                    "Numeric",
                    None,
                ),
                element(&format!("{HOSTILE} c2"), "Coded q", "Coded", None),
                element(
                    &format!("{HOSTILE} c3"),
                    "child",
                    "Date",
                    Some(&format!("{HOSTILE} g")),
                ),
            ],
        );
        m.answers.insert(
            format!("{HOSTILE} c2"),
            vec![(format!("{HOSTILE} a"), format!("{HOSTILE} ansq"))],
        );
        m
    }

    #[test]
    fn values_are_bound_and_names_quoted() {
        let plan = plan_schema(&model(), &ExistingSchema::default());
        let kinds: Vec<TableKind> = plan.tables.iter().map(|t| t.identity.kind).collect();
        assert_eq!(
            kinds,
            vec![
                TableKind::Address,
                TableKind::Users,
                TableKind::SyncTelemetry,
                TableKind::Subject,
                TableKind::Subject,
                TableKind::RepeatableQuestionGroup,
                TableKind::HouseholdToMember,
            ]
        );
        for table in &plan.tables {
            let target = SyncTarget {
                schema: "s\"; DROP SCHEMA public; --",
                table,
                table_id: 1,
                organisation_id: 1,
                source_organisations: &[1, 2],
                db_user: "u",
                time_zone: HOSTILE,
            };
            let mut statements = vec![
                upsert_statement(&target, epoch(), epoch(), Casting::Direct),
                upsert_statement(&target, epoch(), epoch(), Casting::Tolerant),
            ];
            statements.extend(delete_statements(&target, epoch(), epoch()));
            for statement in statements {
                let text = statement.text();
                // Outside quoted identifiers there is no data: every uuid,
                // answer and time zone is a bound value.
                for (i, piece) in text.split('"').enumerate() {
                    if i % 2 == 0 {
                        for data in ["x'", "cq1", "ansq", " subject", "lvlq", "DROP"] {
                            assert!(!piece.contains(data), "{data} unquoted in {text}");
                        }
                        assert!(!piece.contains("DROP"), "unquoted data in {text}");
                    }
                }
            }
        }
    }
}
