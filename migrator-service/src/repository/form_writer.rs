//! Turning a decoded submission into rows of its form table and sub-form
//! tables ([`prepare`], pure), and writing many of them at once
//! ([`write_rows`]): one `INSERT ... SELECT FROM unnest(...)` per table with
//! one text array per column, so a batch costs a few round trips whatever
//! its size, and identifiers are quoted and values bound.

use crate::repository::catalog::{Catalog, ENVELOPE_COLUMNS, Naming, Table};
use crate::repository::convert::{ColumnKind, convert};
use crate::repository::model::{Failure, SubForm, Submission, Unmapped};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use service_kit::sql::quote_ident;
use std::collections::{BTreeSet, HashMap};

/// The column of the original sub-form tables that holds the sub-form's
/// name (`child_registration_oa`), filled where a child table has it.
pub const SUB_FORM_NAME_COLUMN: &str = "sub_form_name";

/// Column index in its table -> canonical text (`None` = NULL).
pub type RowValues = Vec<(usize, Option<String>)>;

/// A submission ready to write.
#[derive(Debug, Clone)]
pub struct PreparedRow {
    pub instance_id: String,
    pub table: String,
    pub values: RowValues,
    pub children: Vec<ChildRows>,
    /// Fields with a value and no column, left out (not strict).
    pub unmapped: Vec<Unmapped>,
}

/// The longest identifier PostgreSQL keeps (NAMEDATALEN - 1 bytes).
const MAX_IDENTIFIER_BYTES: usize = 63;

/// Whether a migration could ever add `column`: a field whose column name
/// PostgreSQL cannot hold fails its submission even when not strict.
fn can_be_a_column(column: &str) -> bool {
    !column.is_empty() && column.len() <= MAX_IDENTIFIER_BYTES && !column.contains('\0')
}

/// How fields without a column are handled for one submission.
struct FieldRules {
    strict: bool,
}

impl FieldRules {
    /// `Some` when `column` is missing from `table` and the field is to be
    /// left out and recorded; `None` when it is to be written (or, for a
    /// missing column, fail as an unknown field).
    fn unmapped(
        &self,
        table: &Table,
        column: &str,
        sub_form: &str,
        field: &str,
    ) -> Option<Unmapped> {
        if self.strict || table.column(column).is_some() || !can_be_a_column(column) {
            return None;
        }
        Some(Unmapped {
            sub_form_name: sub_form.to_string(),
            field: field.to_string(),
            table: table.name.clone(),
            column: column.to_string(),
        })
    }
}

/// The rows of one sub-form of a submission.
#[derive(Debug, Clone)]
pub struct ChildRows {
    pub table: String,
    pub fk_column: String,
    pub rows: Vec<RowValues>,
}

fn shorten(value: &str) -> String {
    let mut s: String = value.chars().take(60).collect();
    if s.len() < value.len() {
        s.push('…');
    }
    s
}

/// Converts one value for `column`, or says why it does not fit.
fn value_for(
    table: &Table,
    column: &str,
    field: &str,
    value: &str,
) -> Result<(usize, Option<String>), Failure> {
    let Some((index, col)) = table.column(column) else {
        return Err(Failure::new(
            format!("Unknown field: {field}"),
            format!(
                "table {} has no column {column} for field {field} (value {value:?}); add the column with a migration, then ReprocessErrors",
                table.name
            ),
        ));
    };
    convert(value, &col.kind)
        .map(|v| (index, Some(v)))
        .map_err(|why| {
            Failure::new(
                format!("Invalid value for {field}: {:?} {why}", shorten(value)),
                format!(
                    "field {field} value {value:?} does not fit column {}.{} ({}): it {why}",
                    table.name, col.name, col.sql_type
                ),
            )
        })
}

/// Where a submission goes and with which values; `Err` when it cannot be
/// written (unknown form, a value that does not fit, a field with no
/// column when strict). `source_strict` is the source's `strict`; the
/// form's mapping may override it.
pub fn prepare(
    sub: &Submission,
    catalog: &Catalog,
    naming: &Naming,
    source_strict: bool,
) -> Result<PreparedRow, Failure> {
    let table = form_table_of(sub, catalog, naming)?;
    let rules = FieldRules {
        strict: naming.strict(&sub.form_name, source_strict),
    };
    let mut values: RowValues = Vec::with_capacity(sub.form.fields.len() + ENVELOPE_COLUMNS.len());
    let mut unmapped = Vec::new();
    envelope_values(sub, table, &mut values)?;
    field_values(sub, table, naming, &rules, &mut values, &mut unmapped)?;
    let mut children = Vec::new();
    for sub_form in &sub.form.sub_forms {
        if sub_form.instances.is_empty() {
            continue;
        }
        children.push(child_rows(
            sub,
            sub_form,
            table,
            catalog,
            naming,
            &rules,
            &mut unmapped,
        )?);
    }
    Ok(PreparedRow {
        instance_id: sub.instance_id.clone(),
        table: table.name.clone(),
        values,
        children,
        unmapped,
    })
}

/// Records `field` once per submission.
fn note(unmapped: &mut Vec<Unmapped>, field: Unmapped) {
    if !unmapped.contains(&field) {
        unmapped.push(field);
    }
}

/// The form table the submission's form name maps to.
fn form_table_of<'c>(
    sub: &Submission,
    catalog: &'c Catalog,
    naming: &Naming,
) -> Result<&'c Table, Failure> {
    let table_name = naming.table(&sub.form_name);
    catalog.form_table(table_name).ok_or_else(|| {
        Failure::new(
            format!("Unknown form name: {}", sub.form_name),
            format!(
                "the repository has no form table {table_name} (a table with id and instance_id columns) for form {}; add it with a migration (or a form_mapping), then ReprocessErrors",
                sub.form_name
            ),
        )
        .of(sub)
    })
}

/// The envelope's values, for the envelope columns the table has.
fn envelope_values(sub: &Submission, table: &Table, values: &mut RowValues) -> Result<(), Failure> {
    let client = sub.client_version.map(|v| v.to_string());
    let server = sub.server_version.to_string();
    let envelope: [(&str, Option<&str>); 7] = [
        ("anm_id", sub.anm_id.as_deref()),
        ("instance_id", Some(&sub.instance_id)),
        ("entity_id", sub.entity_id.as_deref()),
        ("form_name", Some(&sub.form_name)),
        ("client_version", client.as_deref()),
        ("server_version", Some(&server)),
        (
            "form_data_definition_version",
            sub.form_data_definition_version.as_deref(),
        ),
    ];
    for (column, value) in envelope {
        if let (Some(value), Some(_)) = (value, table.column(column)) {
            values.push(value_for(table, column, column, value).map_err(|f| f.of(sub))?);
        }
    }
    Ok(())
}

/// The form's own fields; one that maps to a column the migrator fills
/// itself is refused.
fn field_values(
    sub: &Submission,
    table: &Table,
    naming: &Naming,
    rules: &FieldRules,
    values: &mut RowValues,
    unmapped: &mut Vec<Unmapped>,
) -> Result<(), Failure> {
    let bind_type = sub.form.bind_type.as_deref();
    for (field, value) in &sub.form.fields {
        let Some(value) = value else { continue };
        let column = naming.column(&sub.form_name, bind_type, field);
        if column == "id" || ENVELOPE_COLUMNS.contains(&column.as_str()) {
            return Err(Failure::new(
                format!("Field {field} maps to reserved column {column}"),
                format!(
                    "field {field} of form {} maps to column {column}, which the migrator fills itself; rename it with form_mapping",
                    sub.form_name
                ),
            )
            .of(sub));
        }
        if let Some(field) = rules.unmapped(table, &column, "", field) {
            note(unmapped, field);
            continue;
        }
        values.push(value_for(table, &column, field, value).map_err(|f| f.of(sub))?);
    }
    Ok(())
}

/// The rows of one sub-form, for the child table with a foreign key to
/// the form table.
fn child_rows(
    sub: &Submission,
    sub_form: &SubForm,
    table: &Table,
    catalog: &Catalog,
    naming: &Naming,
    rules: &FieldRules,
    unmapped: &mut Vec<Unmapped>,
) -> Result<ChildRows, Failure> {
    let child_name = naming.sub_form_table(&sub.form_name, &sub_form.name);
    let (Some(fk_column), Some(child)) =
        (table.children.get(child_name), catalog.table(child_name))
    else {
        return Err(Failure::new(
            format!("Unknown sub-form: {}", sub_form.name),
            format!(
                "the repository has no table {child_name} with a foreign key to {} for sub-form {} of form {}; add it with a migration, then ReprocessErrors",
                table.name, sub_form.name, sub.form_name
            ),
        )
        .of(sub));
    };
    let mut rows = Vec::with_capacity(sub_form.instances.len());
    for instance in &sub_form.instances {
        let mut row: RowValues = Vec::with_capacity(instance.len());
        for (field, value) in instance {
            let Some(value) = value else { continue };
            let column = naming.sub_form_column(
                &sub.form_name,
                &sub_form.name,
                sub_form.bind_type.as_deref(),
                field,
            );
            if column == "id" || column == *fk_column || column == SUB_FORM_NAME_COLUMN {
                return Err(Failure::new(
                    format!("Field {field} maps to reserved column {column}"),
                    format!(
                        "field {field} of sub-form {} maps to column {column} of {child_name}, which the migrator fills itself",
                        sub_form.name
                    ),
                )
                .of(sub));
            }
            if let Some(field) = rules.unmapped(child, &column, &sub_form.name, field) {
                note(unmapped, field);
                continue;
            }
            let label = format!("{}.{field}", sub_form.name);
            row.push(value_for(child, &column, &label, value).map_err(|f| f.of(sub))?);
        }
        if let Some((index, _)) = child.column(SUB_FORM_NAME_COLUMN) {
            row.push((index, Some(sub_form.name.clone())));
        }
        rows.push(row);
    }
    Ok(ChildRows {
        table: child_name.to_string(),
        fk_column: fk_column.clone(),
        rows,
    })
}

#[derive(QueryableByName)]
struct Inserted {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    instance_id: String,
}

/// `u.vN` with the cast its column needs.
fn select_expr(position: usize, kind: &ColumnKind, sql_type: &str) -> String {
    match kind.cast(sql_type) {
        Some(cast) => format!("u.v{position}::{cast}"),
        None => format!("u.v{position}"),
    }
}

/// One text array per column that any of `rows` sets (NULL where a row
/// does not), in table order.
fn columns_of<'a>(
    rows: impl Iterator<Item = &'a RowValues> + Clone,
) -> (Vec<usize>, Vec<Vec<Option<String>>>) {
    let used: BTreeSet<usize> = rows
        .clone()
        .flat_map(|r| r.iter().map(|(i, _)| *i))
        .collect();
    let used: Vec<usize> = used.into_iter().collect();
    let position: HashMap<usize, usize> = used.iter().enumerate().map(|(p, i)| (*i, p)).collect();
    let count = rows.clone().count();
    let mut arrays: Vec<Vec<Option<String>>> = vec![Vec::with_capacity(count); used.len()];
    for row in rows {
        let mut slots: Vec<Option<String>> = vec![None; used.len()];
        for (i, v) in row {
            slots[position[i]] = v.clone();
        }
        for (array, slot) in arrays.iter_mut().zip(slots) {
            array.push(slot);
        }
    }
    (used, arrays)
}

/// `INSERT INTO table (...) SELECT ... FROM unnest(...) AS u(...)` for the
/// `used` columns of `table`, each from a text array; a foreign key column,
/// when given, comes first from an `int8[]` (`$1`).
fn insert_select(table: &Table, fk_column: Option<&str>, used: &[usize]) -> String {
    let lead = usize::from(fk_column.is_some());
    let mut names = Vec::with_capacity(used.len() + lead);
    let mut exprs = Vec::with_capacity(used.len() + lead);
    let mut params = Vec::with_capacity(used.len() + lead);
    if let Some(fk_column) = fk_column {
        names.push(quote_ident(fk_column));
        exprs.push("u.v0".to_string());
        params.push("$1::int8[]".to_string());
    }
    for (position, &i) in used.iter().enumerate() {
        let col = &table.columns[i];
        names.push(quote_ident(&col.name));
        exprs.push(select_expr(position + lead, &col.kind, &col.sql_type));
        params.push(format!("${}::text[]", position + lead + 1));
    }
    let aliases: Vec<String> = (0..used.len() + lead).map(|p| format!("v{p}")).collect();
    format!(
        "INSERT INTO {table} ({names}) SELECT {exprs} FROM unnest({params}) AS u({aliases})",
        table = quote_ident(&table.name),
        names = names.join(", "),
        exprs = exprs.join(", "),
        params = params.join(", "),
        aliases = aliases.join(", "),
    )
}

type BoxedQuery<'a> =
    diesel::query_builder::BoxedSqlQuery<'a, diesel::pg::Pg, diesel::query_builder::SqlQuery>;

/// Binds one nullable text array per column, in order.
fn bind_columns(mut query: BoxedQuery<'_>, arrays: Vec<Vec<Option<String>>>) -> BoxedQuery<'_> {
    for array in arrays {
        query = query.bind::<Array<Nullable<Text>>, _>(array);
    }
    query
}

/// Writes rows of one form table (and their sub-form rows) in one
/// statement per table. Returns instance_id -> new row id for the rows
/// written; a row whose `instance_id` is already in the table is skipped
/// (absent from the result).
pub async fn write_rows(
    conn: &mut AsyncPgConnection,
    catalog: &Catalog,
    table: &Table,
    rows: &[&PreparedRow],
) -> Result<HashMap<String, i64>, diesel::result::Error> {
    if rows.is_empty() {
        return Ok(HashMap::new());
    }
    let ids = insert_parents(conn, table, rows).await?;
    // Sub-form rows, one statement per child table, for the parents just written.
    for ((child_name, fk_column), child_rows) in children_of(rows, &ids) {
        let Some(child) = catalog.table(child_name) else {
            continue;
        };
        insert_children(conn, child, fk_column, &child_rows).await?;
    }
    Ok(ids)
}

/// The form table's rows; instance_id -> new row id for those written.
async fn insert_parents(
    conn: &mut AsyncPgConnection,
    table: &Table,
    rows: &[&PreparedRow],
) -> Result<HashMap<String, i64>, diesel::result::Error> {
    let (used, arrays) = columns_of(rows.iter().map(|r| &r.values));
    let conflict = if table.unique_instance_id {
        " ON CONFLICT (\"instance_id\") DO NOTHING"
    } else {
        ""
    };
    let sql = format!(
        "{insert}{conflict} RETURNING \"id\"::int8 AS id, \"instance_id\"::text AS instance_id",
        insert = insert_select(table, None, &used),
    );
    let query = bind_columns(diesel::sql_query(sql).into_boxed(), arrays);
    let inserted: Vec<Inserted> = query.load(conn).await?;
    Ok(inserted
        .into_iter()
        .map(|r| (r.instance_id, r.id))
        .collect())
}

/// The sub-form rows of the parents written, by (child table, foreign key
/// column), each with its parent's new id.
fn children_of<'a>(
    rows: &[&'a PreparedRow],
    ids: &HashMap<String, i64>,
) -> HashMap<(&'a str, &'a str), Vec<(i64, &'a RowValues)>> {
    let mut by_child: HashMap<(&str, &str), Vec<(i64, &RowValues)>> = HashMap::new();
    for &row in rows {
        let Some(&parent_id) = ids.get(&row.instance_id) else {
            continue;
        };
        for child in &row.children {
            let entry = by_child
                .entry((child.table.as_str(), child.fk_column.as_str()))
                .or_default();
            entry.extend(child.rows.iter().map(|r| (parent_id, r)));
        }
    }
    by_child
}

/// The rows of one child table, in one statement.
async fn insert_children(
    conn: &mut AsyncPgConnection,
    child: &Table,
    fk_column: &str,
    child_rows: &[(i64, &RowValues)],
) -> Result<(), diesel::result::Error> {
    let (used, arrays) = columns_of(child_rows.iter().map(|(_, r)| *r));
    let parents: Vec<i64> = child_rows.iter().map(|(p, _)| *p).collect();
    let sql = insert_select(child, Some(fk_column), &used);
    let query = diesel::sql_query(sql)
        .into_boxed()
        .bind::<Array<BigInt>, _>(parents);
    bind_columns(query, arrays).execute(conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_line_up_rows_with_missing_columns() {
        let a: RowValues = vec![(1, Some("x".into())), (3, Some("y".into()))];
        let b: RowValues = vec![(2, Some("z".into()))];
        let (used, arrays) = columns_of([&a, &b].into_iter());
        assert_eq!(used, vec![1, 2, 3]);
        assert_eq!(
            arrays,
            vec![
                vec![Some("x".to_string()), None],
                vec![None, Some("z".to_string())],
                vec![Some("y".to_string()), None],
            ]
        );
    }
}
