//! The catalog: which form tables exist, their columns and types, and their
//! sub-form child tables, read from the repository itself (pg_catalog), so
//! a migration that adds a form or a column needs no code change.
//!
//! A form table is a table of the current schema with an `id` and an
//! `instance_id` column; a sub-form table is a table with a one-column
//! foreign key to a form table. The bookkeeping tables are never forms.

use crate::config::{FormMapping, SubFormMapping};
use crate::repository::convert::ColumnKind;
use diesel::QueryableByName;
use diesel::sql_types::{Integer, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Tables of the migrator itself, never taken for forms.
const BOOKKEEPING: &[&str] = &[
    "form_submission",
    "migration_audit",
    "error_audit",
    "source_totals",
    "unmapped_field",
    "form_migration",
];

/// The columns every form table has, filled from the envelope rather than
/// from fields.
pub const ENVELOPE_COLUMNS: &[&str] = &[
    "anm_id",
    "instance_id",
    "entity_id",
    "form_name",
    "client_version",
    "server_version",
    "form_data_definition_version",
];

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub kind: ColumnKind,
    /// `format_type()`: `character varying(20)`, `numeric(5,2)`, ...
    pub sql_type: String,
}

/// One table of the repository.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub name: String,
    pub columns: Vec<Column>,
    by_name: HashMap<String, usize>,
    /// A unique index on `instance_id` alone, so inserts can skip repeats
    /// with `ON CONFLICT`.
    pub unique_instance_id: bool,
    /// Child table name -> its foreign-key column to this table.
    pub children: HashMap<String, String>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<(usize, &Column)> {
        self.by_name.get(name).map(|&i| (i, &self.columns[i]))
    }

    pub fn is_form_table(&self) -> bool {
        self.by_name.contains_key("id") && self.by_name.contains_key("instance_id")
    }
}

/// All tables of the repository's schema.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    tables: HashMap<String, Table>,
}

#[derive(QueryableByName)]
struct ColumnRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    type_name: String,
    #[diesel(sql_type = Text)]
    sql_type: String,
    #[diesel(sql_type = Integer)]
    typmod: i32,
}

#[derive(QueryableByName)]
struct ForeignKeyRow {
    #[diesel(sql_type = Text)]
    child_table: String,
    #[diesel(sql_type = Text)]
    fk_column: String,
    #[diesel(sql_type = Text)]
    parent_table: String,
}

#[derive(QueryableByName)]
struct UniqueRow {
    #[diesel(sql_type = Text)]
    table_name: String,
}

const COLUMNS_SQL: &str = "\
SELECT c.relname::text AS table_name, a.attname::text AS column_name,
       t.typname::text AS type_name, format_type(a.atttypid, a.atttypmod) AS sql_type,
       a.atttypmod AS typmod
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
  JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
 WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
   AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY c.relname, a.attnum";

const FOREIGN_KEYS_SQL: &str = "\
SELECT cl.relname::text AS child_table, a.attname::text AS fk_column,
       pl.relname::text AS parent_table
  FROM pg_catalog.pg_constraint con
  JOIN pg_catalog.pg_class cl ON cl.oid = con.conrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = cl.relnamespace
  JOIN pg_catalog.pg_class pl ON pl.oid = con.confrelid
  JOIN pg_catalog.pg_namespace pn ON pn.oid = pl.relnamespace
  JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1]
 WHERE con.contype = 'f' AND n.nspname = current_schema() AND pn.nspname = current_schema()
   AND array_length(con.conkey, 1) = 1
 ORDER BY cl.relname, con.conname";

const UNIQUE_INSTANCE_ID_SQL: &str = "\
SELECT DISTINCT c.relname::text AS table_name
  FROM pg_catalog.pg_index i
  JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
 WHERE i.indisunique AND i.indnkeyatts = 1 AND i.indpred IS NULL AND i.indexprs IS NULL
   AND a.attname = 'instance_id' AND n.nspname = current_schema()";

impl Catalog {
    /// Reads the catalog from the repository.
    pub async fn load(conn: &mut AsyncPgConnection) -> Result<Self, diesel::result::Error> {
        let columns: Vec<ColumnRow> = diesel::sql_query(COLUMNS_SQL).load(conn).await?;
        let keys: Vec<ForeignKeyRow> = diesel::sql_query(FOREIGN_KEYS_SQL).load(conn).await?;
        let unique: Vec<UniqueRow> = diesel::sql_query(UNIQUE_INSTANCE_ID_SQL).load(conn).await?;
        let mut tables: HashMap<String, Table> = HashMap::new();
        for row in columns {
            if BOOKKEEPING.contains(&row.table_name.as_str()) || row.table_name.starts_with("__") {
                continue;
            }
            let table = tables
                .entry(row.table_name.clone())
                .or_insert_with(|| Table {
                    name: row.table_name.clone(),
                    ..Table::default()
                });
            table
                .by_name
                .insert(row.column_name.clone(), table.columns.len());
            table.columns.push(Column {
                kind: ColumnKind::from_catalog(&row.type_name, row.typmod),
                name: row.column_name,
                sql_type: row.sql_type,
            });
        }
        for row in unique {
            if let Some(t) = tables.get_mut(&row.table_name) {
                t.unique_instance_id = true;
            }
        }
        for key in keys {
            if let Some(parent) = tables.get_mut(&key.parent_table) {
                parent
                    .children
                    .entry(key.child_table)
                    .or_insert(key.fk_column);
            }
        }
        Ok(Self { tables })
    }

    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.get(name)
    }

    /// Every table, in no particular order.
    pub fn tables(&self) -> impl Iterator<Item = &Table> {
        self.tables.values()
    }

    /// The form table for `form_name` (after the mapping), if there is one.
    pub fn form_table(&self, table_name: &str) -> Option<&Table> {
        self.tables.get(table_name).filter(|t| t.is_form_table())
    }

    pub fn len(&self) -> usize {
        self.tables.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }
}

/// What changes whenever a table, column, index or constraint of the
/// current schema is created, altered or dropped: the number of catalog
/// rows of the schema and the sum of their `xmin` (the transaction that
/// last wrote each row): `pg_class` (tables and indexes made or dropped,
/// a column added), `pg_attribute` (a column dropped, renamed or retyped,
/// which leaves `pg_class` alone) and `pg_constraint` (foreign keys).
/// About 0.9 ms on a repository of 35 form tables, where loading the
/// catalog takes over 4 ms (RELIABILITY.md). An event trigger would cost
/// nothing per batch but needs a superuser to create.
const FINGERPRINT_SQL: &str = "\
WITH s AS (SELECT to_regnamespace(current_schema()) AS oid)
SELECT concat_ws('/',
  (SELECT count(*) || ':' || coalesce(sum(c.xmin::text::int8), 0)
     FROM pg_catalog.pg_class c, s WHERE c.relnamespace = s.oid),
  (SELECT count(*) || ':' || coalesce(sum(a.xmin::text::int8), 0)
     FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid, s
    WHERE c.relnamespace = s.oid AND c.relkind IN ('r', 'p') AND a.attnum > 0),
  (SELECT count(*) || ':' || coalesce(sum(k.xmin::text::int8), 0)
     FROM pg_catalog.pg_constraint k, s WHERE k.connamespace = s.oid)
) AS fingerprint";

#[derive(QueryableByName)]
struct FingerprintRow {
    #[diesel(sql_type = Text)]
    fingerprint: String,
}

/// The schema's catalog fingerprint (see [`FINGERPRINT_SQL`]).
pub async fn fingerprint(conn: &mut AsyncPgConnection) -> Result<String, diesel::result::Error> {
    let row: FingerprintRow = diesel::sql_query(FINGERPRINT_SQL).get_result(conn).await?;
    Ok(row.fingerprint)
}

/// A loaded catalog and the fingerprint read just before it.
struct Loaded {
    catalog: Arc<Catalog>,
    fingerprint: String,
}

/// The catalog shared by every source and the API. Before each batch the
/// schema's fingerprint is compared with the one the catalog was loaded
/// under; the catalog is read again only when they differ, so a migration
/// run while the service runs (a new table, a new column) is seen by the
/// next batch, and a batch with nothing changed pays one small query.
pub struct SharedCatalog {
    current: RwLock<Option<Loaded>>,
    mapping: Naming,
    /// How many times the catalog was loaded: a change of it means the
    /// schema may have changed.
    generation: AtomicU64,
}

impl SharedCatalog {
    pub fn new(mapping: Naming) -> Self {
        Self {
            current: RwLock::new(None),
            mapping,
            generation: AtomicU64::new(0),
        }
    }

    pub fn naming(&self) -> &Naming {
        &self.mapping
    }

    /// The number of catalog loads so far (0 before the first).
    pub fn generation(&self) -> u64 {
        AtomicU64::load(&self.generation, Ordering::SeqCst)
    }

    /// The catalog as the schema stands: the one in hand when the schema's
    /// fingerprint has not changed, else read again.
    pub async fn get(
        &self,
        conn: &mut AsyncPgConnection,
    ) -> Result<Arc<Catalog>, diesel::result::Error> {
        let now = fingerprint(conn).await?;
        let cached = self.current.read().ok().and_then(|c| {
            c.as_ref()
                .filter(|l| l.fingerprint == now)
                .map(|l| l.catalog.clone())
        });
        match cached {
            Some(c) => Ok(c),
            None => self.load(conn, now).await,
        }
    }

    /// Reads the catalog again, whatever the fingerprint says.
    pub async fn refresh(
        &self,
        conn: &mut AsyncPgConnection,
    ) -> Result<Arc<Catalog>, diesel::result::Error> {
        let now = fingerprint(conn).await?;
        self.load(conn, now).await
    }

    /// Loads the catalog; `fingerprint` was read before it, so a change
    /// made during the load is seen by the next call.
    async fn load(
        &self,
        conn: &mut AsyncPgConnection,
        fingerprint: String,
    ) -> Result<Arc<Catalog>, diesel::result::Error> {
        let fresh = Arc::new(Catalog::load(conn).await?);
        crate::metrics::record_catalog_load();
        if let Ok(mut slot) = self.current.write() {
            *slot = Some(Loaded {
                catalog: fresh.clone(),
                fingerprint,
            });
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
        tracing::debug!(tables = fresh.len(), "catalog loaded");
        Ok(fresh)
    }
}

/// The naming convention of migrator.md §3, with the optional renames from
/// `form_mapping:`.
#[derive(Debug, Clone, Default)]
pub struct Naming {
    mapping: BTreeMap<String, FormMapping>,
}

impl Naming {
    pub fn new(mapping: BTreeMap<String, FormMapping>) -> Self {
        Self { mapping }
    }

    /// Whether a field with no column fails a submission of `form_name`:
    /// the form's `strict`, else the source's.
    pub fn strict(&self, form_name: &str, source_strict: bool) -> bool {
        self.mapping
            .get(form_name)
            .and_then(|m| m.strict)
            .unwrap_or(source_strict)
    }

    /// The table of a form.
    pub fn table<'a>(&'a self, form_name: &'a str) -> &'a str {
        self.mapping
            .get(form_name)
            .and_then(|m| m.table.as_deref())
            .unwrap_or(form_name)
    }

    /// The column of a field of `form_name`: the mapping's, else `id` ->
    /// `<bind_type>_id`, else the field name in snake_case.
    pub fn column(&self, form_name: &str, bind_type: Option<&str>, field: &str) -> String {
        let renamed = self
            .mapping
            .get(form_name)
            .and_then(|m| m.columns.get(field));
        conventional_column(renamed, bind_type, field)
    }

    fn sub_form_mapping(&self, form_name: &str, sub_form: &str) -> Option<&SubFormMapping> {
        self.mapping
            .get(form_name)
            .and_then(|m| m.sub_forms.get(sub_form))
    }

    /// The child table of sub-form `sub_form` of form `form_name`: the
    /// parent's `sub_forms:` mapping, else the sub-form's name. A form of
    /// the same name (and its mapping) has nothing to do with it.
    pub fn sub_form_table<'a>(&'a self, form_name: &str, sub_form: &'a str) -> &'a str {
        self.sub_form_mapping(form_name, sub_form)
            .and_then(|m| m.table.as_deref())
            .unwrap_or(sub_form)
    }

    /// The column of a field of sub-form `sub_form` of form `form_name`.
    pub fn sub_form_column(
        &self,
        form_name: &str,
        sub_form: &str,
        bind_type: Option<&str>,
        field: &str,
    ) -> String {
        let renamed = self
            .sub_form_mapping(form_name, sub_form)
            .and_then(|m| m.columns.get(field));
        conventional_column(renamed, bind_type, field)
    }
}

/// The mapping's column if there is one, else `id` -> `<bind_type>_id`,
/// else the field name in snake_case.
fn conventional_column(renamed: Option<&String>, bind_type: Option<&str>, field: &str) -> String {
    if let Some(c) = renamed {
        return c.clone();
    }
    if field == "id" {
        return match bind_type {
            Some(b) if !b.trim().is_empty() => format!("{}_id", snake_case(b)),
            _ => "id".to_string(),
        };
    }
    snake_case(field)
}

/// `wifeAge` -> `wife_age`, `HBLevel` -> `hb_level`, `lmp` -> `lmp`.
pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c == '-' || c == ' ' || c == '.' {
            if !out.ends_with('_') {
                out.push('_');
            }
            continue;
        }
        if c.is_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let boundary =
                prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower);
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
        }
        out.extend(c.to_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_cases_field_names() {
        for (field, column) in [
            ("wifeAge", "wife_age"),
            ("numberOfLivingChildren", "number_of_living_children"),
            ("isHighRisk", "is_high_risk"),
            ("ecId", "ec_id"),
            ("lmp", "lmp"),
            ("HBLevel", "hb_level"),
            ("already_snake", "already_snake"),
            ("visit2Date", "visit2_date"),
            ("bp-systolic", "bp_systolic"),
        ] {
            assert_eq!(snake_case(field), column, "{field}");
        }
    }

    #[test]
    fn names_columns_by_convention_and_mapping() {
        let mut mapping = BTreeMap::new();
        mapping.insert(
            "ec_edit_v9".to_string(),
            FormMapping {
                table: Some("ec_registration".into()),
                columns: [("wifeName".to_string(), "name_of_wife".to_string())].into(),
                ..FormMapping::default()
            },
        );
        let naming = Naming::new(mapping);
        assert_eq!(naming.table("ec_edit_v9"), "ec_registration");
        assert_eq!(naming.table("anc_visit"), "anc_visit");
        assert_eq!(
            naming.column("ec_edit_v9", Some("eligible_couple"), "wifeName"),
            "name_of_wife"
        );
        assert_eq!(
            naming.column("x", Some("eligible_couple"), "id"),
            "eligible_couple_id"
        );
        assert_eq!(naming.column("x", Some("mother"), "wifeAge"), "wife_age");
    }

    #[test]
    fn sub_forms_are_named_under_their_parent_apart_from_forms() {
        let mut mapping = BTreeMap::new();
        mapping.insert(
            "child_registration_oa".to_string(),
            FormMapping {
                table: Some("child_form".into()),
                ..FormMapping::default()
            },
        );
        mapping.insert(
            "pnc_registration_oa".to_string(),
            FormMapping {
                sub_forms: [(
                    "child_registration_oa".to_string(),
                    SubFormMapping {
                        table: Some("pnc_registration_oa_child".into()),
                        columns: [("w".to_string(), "weight".to_string())].into(),
                    },
                )]
                .into(),
                ..FormMapping::default()
            },
        );
        let naming = Naming::new(mapping);
        assert_eq!(naming.table("child_registration_oa"), "child_form");
        assert_eq!(
            naming.sub_form_table("pnc_registration_oa", "child_registration_oa"),
            "pnc_registration_oa_child"
        );
        assert_eq!(
            naming.sub_form_table("pnc_visit", "child_pnc_visit"),
            "child_pnc_visit",
            "the default is the sub-form's name"
        );
        assert_eq!(
            naming.sub_form_table("anc_visit", "child_registration_oa"),
            "child_registration_oa",
            "another parent's mapping, or the form's, does not apply"
        );
        assert_eq!(
            naming.sub_form_column(
                "pnc_registration_oa",
                "child_registration_oa",
                Some("child"),
                "w"
            ),
            "weight"
        );
        assert_eq!(
            naming.sub_form_column(
                "pnc_registration_oa",
                "child_registration_oa",
                Some("child"),
                "id"
            ),
            "child_id"
        );
    }
}
