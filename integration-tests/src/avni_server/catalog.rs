//! The fixture compared with the real thing: the catalog facts of the
//! fixture's tables, views and functions (columns in order with types,
//! nullability and defaults; constraints; indexes; row-level security and
//! policies; triggers; function signatures) read from two databases, the
//! fixture's and one built from avni-server's own Flyway migrations, and
//! the differences between them, less the [`KNOWN_DIFFERENCES`].

use std::collections::{BTreeMap, BTreeSet};
use tokio_postgres::Client;

/// Where the fixture differs from a database built from avni-server's
/// migrations (v17.1.0) on purpose, by fact key, with why.
pub const KNOWN_DIFFERENCES: &[(&str, &str)] = &[
    (
        "constraint form_mapping.check_form_mapping_unique",
        "calls check_form_mapping_uniqueness(), not part of the fixture: the fixture writes no duplicate mappings",
    ),
    (
        "constraint form_mapping.form_mapping_task_type_id_fkey",
        "task_type is not in the fixture (the ETL reads no tasks)",
    ),
    (
        "constraint form_element.form_element_documentation_id_fkey",
        "documentation is not in the fixture",
    ),
    (
        "constraint individual.individual_facility",
        "facility (a dead table) is not in the fixture",
    ),
];

/// Tables of the fixture left out of the comparison, with why.
pub const NOT_COMPARED: &[(&str, &str)] = &[(
    "schema_version",
    "Flyway's history table: Flyway makes it, not the migrations, so a database built by applying them \
     with psql has none",
)];

/// Every fact of the objects `tables` and `functions` name (and of the
/// view `org_ids` the policies use), keyed
/// `"<kind> <object>"`.
pub async fn facts(
    client: &Client,
    tables: &[String],
    functions: &[String],
) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    for (key, value) in query_pairs(client, COLUMNS, tables).await {
        all.insert(key, value);
    }
    for (key, value) in query_pairs(client, COLUMN_ORDER, tables).await {
        all.insert(key, value);
    }
    for (key, value) in query_pairs(client, CONSTRAINTS, tables).await {
        all.insert(key, value);
    }
    for (key, value) in query_pairs(client, INDEXES, tables).await {
        all.insert(key, value);
    }
    for (key, value) in query_pairs(client, SECURITY, tables).await {
        all.insert(key, value);
    }
    for (key, value) in query_pairs(client, POLICIES, tables).await {
        all.insert(key, value);
    }
    for (key, value) in query_pairs(client, TRIGGERS, tables).await {
        all.insert(key, value);
    }
    for (key, value) in query_pairs(client, VIEWS, &["org_ids".to_string()]).await {
        all.insert(key, value);
    }
    for (key, value) in query_pairs(client, FUNCTIONS, functions).await {
        all.insert(key, value);
    }
    all
}

/// The base tables of `public` (in the fixture: the ones it has), less
/// [`NOT_COMPARED`].
pub async fn public_tables(client: &Client) -> Vec<String> {
    let mut tables = names(
        client,
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 1",
    )
    .await;
    tables.retain(|t| !NOT_COMPARED.iter().any(|(n, _)| n == t));
    tables
}

/// The functions of `public` not owned by an extension.
pub async fn public_functions(client: &Client) -> Vec<String> {
    names(
        client,
        "SELECT DISTINCT p.proname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         WHERE n.nspname = 'public' AND NOT EXISTS (SELECT 1 FROM pg_depend d \
           WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e') ORDER BY 1",
    )
    .await
}

/// What differs between `fixture` and `real`: a fact of the fixture's
/// objects the real database lacks, has otherwise, or has and the fixture
/// lacks. Each line starts with the fact's key.
pub fn differences(
    fixture: &BTreeMap<String, String>,
    real: &BTreeMap<String, String>,
) -> Vec<String> {
    let keys: BTreeSet<&String> = fixture.keys().chain(real.keys()).collect();
    let mut out = Vec::new();
    for key in keys {
        match (fixture.get(key), real.get(key)) {
            (Some(f), Some(r)) if f != r => {
                out.push(format!("{key}\n    fixture: {f}\n    real:    {r}"))
            }
            (Some(f), None) => out.push(format!("{key}\n    fixture only: {f}")),
            (None, Some(r)) => out.push(format!("{key}\n    real only: {r}")),
            _ => {}
        }
    }
    out
}

/// The differences not explained by [`KNOWN_DIFFERENCES`].
pub fn unexplained(differences: &[String]) -> Vec<String> {
    differences
        .iter()
        .filter(|d| {
            let key = d.lines().next().unwrap_or_default();
            !KNOWN_DIFFERENCES.iter().any(|(known, _)| *known == key)
        })
        .cloned()
        .collect()
}

async fn names(client: &Client, sql: &str) -> Vec<String> {
    client
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("catalog query failed: {}\n{sql}", super::pg_error(&e)))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn query_pairs(client: &Client, sql: &str, objects: &[String]) -> Vec<(String, String)> {
    client
        .query(sql, &[&objects])
        .await
        .unwrap_or_else(|e| panic!("catalog query failed: {}\n{sql}", super::pg_error(&e)))
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// The public table `$1` names, as `c`.
macro_rules! public_table {
    () => {
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relname = ANY($1::text[])"
    };
}

const COLUMNS: &str = "SELECT 'column ' || c.relname || '.' || a.attname, \
            format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE ' null' END \
            || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '') \
     FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
     JOIN pg_namespace n ON n.oid = c.relnamespace \
     LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
     WHERE n.nspname = 'public' AND c.relname = ANY($1::text[]) AND a.attnum > 0 AND NOT a.attisdropped";

const COLUMN_ORDER: &str = concat!(
    "SELECT 'column order ' || c.relname, \
            (SELECT string_agg(a.attname, ', ' ORDER BY a.attnum) FROM pg_attribute a \
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) ",
    public_table!()
);

const CONSTRAINTS: &str = "SELECT 'constraint ' || c.relname || '.' || k.conname, pg_get_constraintdef(k.oid) \
     FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid \
     JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = 'public' AND c.relname = ANY($1::text[])";

const INDEXES: &str = "SELECT 'index ' || c.relname || '.' || i.relname, \
            regexp_replace(pg_get_indexdef(x.indexrelid), '^.* USING ', 'USING ') \
     FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid \
     JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = 'public' AND c.relname = ANY($1::text[]) \
       AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)";

const SECURITY: &str = concat!(
    "SELECT 'rls ' || c.relname, \
            CASE WHEN c.relrowsecurity THEN 'enabled' ELSE 'disabled' END \
            || CASE WHEN c.relforcerowsecurity THEN ', forced' ELSE '' END || ', owner ' || pg_get_userbyid(c.relowner) ",
    public_table!()
);

const POLICIES: &str = "SELECT 'policy ' || c.relname || '.' || p.polname, \
            p.polcmd::text || CASE WHEN p.polpermissive THEN ' permissive' ELSE ' restrictive' END \
            || ' USING ' || coalesce(pg_get_expr(p.polqual, p.polrelid), '-') \
            || ' CHECK ' || coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '-') \
     FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid \
     JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = 'public' AND c.relname = ANY($1::text[])";

const TRIGGERS: &str = "SELECT 'trigger ' || c.relname || '.' || t.tgname, pg_get_triggerdef(t.oid) \
     FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
     JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = 'public' AND c.relname = ANY($1::text[]) AND NOT t.tgisinternal";

const VIEWS: &str = "SELECT 'view ' || c.relname, pg_get_viewdef(c.oid) \
     || coalesce(' WITH ' || array_to_string(c.reloptions, ', '), '') \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = 'public' AND c.relkind = 'v' AND c.relname = ANY($1::text[])";

const FUNCTIONS: &str = "SELECT 'function ' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', \
            'returns ' || pg_get_function_result(p.oid) || ' language ' || l.lanname \
            || CASE WHEN p.prosecdef THEN ' security definer' ELSE ' security invoker' END \
            || ' volatility ' || p.provolatile::text || ', owner ' || pg_get_userbyid(p.proowner) \
     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang \
     WHERE n.nspname = 'public' AND p.proname = ANY($1::text[])";
