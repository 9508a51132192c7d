//! Running the ETL engine in a test: a fresh migrated database with the Avni
//! source tables and generated organisations, an engine context on it, and
//! helpers to read the reporting tables back.

use crate::avni::{self, Org, Spec, World};
use crate::postgres::TestDatabase;
use etl_service::config::EtlSettings;
use etl_service::engine::entity::{EntityKind, EntityRef};
use etl_service::engine::{self, EngineContext, NoProgress, RunOptions, RunReport};
use service_kit::config::DatabaseSettings;
use service_kit::sql::{quote_ident, quote_qualified};
use tokio_postgres::Client;

/// A database with the ETL's migrations, the source tables and `spec`'s
/// organisations.
pub struct EtlFixture {
    pub db: TestDatabase,
    pub world: World,
    pub ctx: EngineContext,
    pub client: Client,
}

/// The engine's settings in tests: no sync offset, so rows written just
/// before a run are in its window.
pub fn test_settings() -> EtlSettings {
    EtlSettings {
        sync_offset_seconds: 0,
        ..EtlSettings::default()
    }
}

/// An engine context on `database_url`.
pub fn context(database_url: &str) -> EngineContext {
    let settings = DatabaseSettings {
        url: database_url.to_string(),
        pool_size: 4,
        ..DatabaseSettings::default()
    };
    EngineContext {
        pool: service_kit::db::build_pool(&settings),
        database_url: database_url.to_string(),
        settings: test_settings(),
    }
}

impl EtlFixture {
    pub async fn new(spec: &Spec) -> Self {
        let db = TestDatabase::migrated(etl_service::migrations::migrations()).await;
        let client = db.client().await;
        let world = avni::generate(&client, spec).await;
        let ctx = context(&db.url);
        Self {
            db,
            world,
            ctx,
            client,
        }
    }

    pub fn org(&self, i: usize) -> &Org {
        &self.world.organisations[i]
    }

    /// Runs an organisation, panicking with the error if it fails.
    pub async fn run_org(&self, org: &Org) -> RunReport {
        self.run(org_ref(org), &RunOptions::default())
            .await
            .unwrap_or_else(|e| panic!("run of {} failed: {e}", org.name))
    }

    pub async fn run(
        &self,
        entity: EntityRef,
        options: &RunOptions,
    ) -> Result<RunReport, etl_service::Error> {
        engine::run_entity(&self.ctx, entity, options, &NoProgress).await
    }
}

pub fn org_ref(org: &Org) -> EntityRef {
    EntityRef {
        uuid: org.uuid.parse().unwrap_or_else(|e| panic!("bad uuid: {e}")),
        kind: EntityKind::Organisation,
    }
}

pub fn group_ref(uuid: &str) -> EntityRef {
    EntityRef {
        uuid: uuid.parse().unwrap_or_else(|e| panic!("bad uuid: {e}")),
        kind: EntityKind::OrganisationGroup,
    }
}

/// The reporting table names of `schema`, from the metadata, by identity
/// (`type`, subject type, program, encounter type, group concept).
pub async fn table_name(
    client: &Client,
    schema: &str,
    kind: &str,
    subject_type: Option<&str>,
    program: Option<&str>,
    encounter_type: Option<&str>,
) -> String {
    let row = client
        .query_one(
            "SELECT name FROM table_metadata WHERE schema_name = $1 AND type = $2 \
             AND subject_type_uuid IS NOT DISTINCT FROM $3 AND program_uuid IS NOT DISTINCT FROM $4 \
             AND encounter_type_uuid IS NOT DISTINCT FROM $5 AND repeatable_question_group_concept_uuid IS NULL",
            &[&schema, &kind, &subject_type, &program, &encounter_type],
        )
        .await
        .unwrap_or_else(|e| {
            panic!("no {kind} table for {subject_type:?}/{program:?}/{encounter_type:?}: {e}")
        });
    row.get(0)
}

/// Every row of a reporting table as JSON text, ordered by its key
/// columns, for exact comparison.
pub async fn rows(client: &Client, schema: &str, table: &str) -> Vec<serde_json::Value> {
    let order = key_columns(client, schema, table).await;
    let sql = format!(
        "SELECT to_jsonb(t)::text FROM {} t ORDER BY {}",
        quote_qualified(schema, table),
        order
            .iter()
            .map(|c| format!("t.{}", quote_ident(c)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    client
        .query(&sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{e}\n{sql}"))
        .iter()
        .map(|r| {
            serde_json::from_str(r.get::<_, &str>(0)).unwrap_or_else(|e| panic!("bad json: {e}"))
        })
        .collect()
}

/// The primary key columns of a table.
pub async fn key_columns(client: &Client, schema: &str, table: &str) -> Vec<String> {
    client
        .query(
            "SELECT a.attname::text FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey) \
             WHERE i.indisprimary AND n.nspname = $1 AND c.relname = $2 ORDER BY a.attnum",
            &[&schema, &table],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Every table of `schema` with all its rows, by table name.
pub async fn snapshot(
    client: &Client,
    schema: &str,
) -> std::collections::BTreeMap<String, Vec<serde_json::Value>> {
    let names: Vec<String> = client
        .query(
            "SELECT name FROM table_metadata WHERE schema_name = $1 ORDER BY name",
            &[&schema],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut all = std::collections::BTreeMap::new();
    for name in names {
        let r = rows(client, schema, &name).await;
        all.insert(name, r);
    }
    all
}

/// A table's columns and their types as PostgreSQL has them, in table
/// order.
pub async fn columns(client: &Client, schema: &str, table: &str) -> Vec<(String, String)> {
    client
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
            &[&schema, &table],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// One table's metadata: whether it is voided, and its columns as
/// (name, type, voided), by name.
pub async fn table_metadata(
    client: &Client,
    schema: &str,
    table: &str,
) -> (bool, std::collections::BTreeMap<String, (String, bool)>) {
    let rows = client
        .query(
            "SELECT tx.is_voided, c.name, cx.sql_type, c.concept_voided FROM public.table_metadata t \
             JOIN etl_service.table_metadata_ext tx ON tx.table_metadata_id = t.id \
             JOIN public.column_metadata c ON c.table_id = t.id \
             JOIN etl_service.column_metadata_ext cx ON cx.column_metadata_id = c.id \
             WHERE t.schema_name = $1 AND t.name = $2",
            &[&schema, &table],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!rows.is_empty(), "no metadata for table {schema}.{table}");
    let voided = rows[0].get(0);
    let columns = rows
        .iter()
        .map(|r| (r.get::<_, String>(1), (r.get(2), r.get(3))))
        .collect();
    (voided, columns)
}

/// The PostgreSQL spelling of a metadata column type.
fn catalog_type(metadata_type: &str) -> &str {
    match metadata_type {
        "timestamp" => "timestamp without time zone",
        "timestamptz" => "timestamp with time zone",
        "time" => "time without time zone",
        other => other,
    }
}

type Columns = std::collections::BTreeMap<String, Vec<(String, String)>>;

/// Every table of `schema` as PostgreSQL has it: name -> (column, type),
/// sorted.
async fn catalog_columns(client: &Client, schema: &str) -> Columns {
    let mut all = Columns::new();
    for r in client
        .query(
            "SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod) \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY 1, 2",
            &[&schema],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    {
        all.entry(r.get(0)).or_default().push((r.get(1), r.get(2)));
    }
    all
}

/// Every table of `schema` as the metadata describes it: name ->
/// (voided, (column, type, voided) sorted).
async fn described(
    client: &Client,
    schema: &str,
) -> std::collections::BTreeMap<String, (bool, Vec<(String, String, bool)>)> {
    let mut all = std::collections::BTreeMap::new();
    for r in client
        .query(
            "SELECT t.name, tx.is_voided, c.name, cx.sql_type, c.concept_voided \
             FROM public.table_metadata t \
             JOIN etl_service.table_metadata_ext tx ON tx.table_metadata_id = t.id \
             LEFT JOIN public.column_metadata c ON c.table_id = t.id \
             LEFT JOIN etl_service.column_metadata_ext cx ON cx.column_metadata_id = c.id \
             WHERE t.schema_name = $1 ORDER BY t.name, c.name",
            &[&schema],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    {
        let entry = all
            .entry(r.get::<_, String>(0))
            .or_insert_with(|| (r.get::<_, bool>(1), Vec::new()));
        if let Some(name) = r.get::<_, Option<String>>(2) {
            let ty: String = r.get(3);
            entry
                .1
                .push((name, catalog_type(&ty).to_string(), r.get(4)));
        }
    }
    all
}

/// Primary key columns of every table of `schema`, in column order.
async fn all_keys(client: &Client, schema: &str) -> Columns {
    let mut all = Columns::new();
    for r in client
        .query(
            "SELECT c.relname::text, a.attname::text FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey) \
             WHERE i.indisprimary AND n.nspname = $1 ORDER BY 1, a.attnum",
            &[&schema],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    {
        all.entry(r.get(0))
            .or_default()
            .push((r.get(1), String::new()));
    }
    all
}

/// Asserts that the metadata tables describe `schema` exactly as it is:
/// every table and only those, each column with its type, every index.
pub async fn assert_metadata_describes_schema(client: &Client, schema: &str) {
    let described = described(client, schema).await;
    let actual = catalog_columns(client, schema).await;
    assert_eq!(
        described.keys().collect::<Vec<_>>(),
        actual.keys().collect::<Vec<_>>(),
        "tables of {schema}"
    );
    for (table, (_, columns)) in &described {
        let from_meta: Vec<(String, String)> = columns
            .iter()
            .map(|(n, t, _)| (n.clone(), t.clone()))
            .collect();
        assert_eq!(&from_meta, &actual[table], "columns of {schema}.{table}");
    }
    let missing: Vec<String> = client
        .query(
            "SELECT i.name FROM index_metadata i JOIN table_metadata t ON t.id = i.table_metadata_id \
             WHERE t.schema_name = $1 AND NOT EXISTS (SELECT 1 FROM pg_indexes p \
                 WHERE p.schemaname = $1 AND p.indexname = i.name AND p.tablename = t.name)",
            &[&schema],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        missing.is_empty(),
        "indexes described but missing: {missing:?}"
    );
}

/// The live part of a schema, as a build from scratch would have it: each
/// table the metadata does not mark voided, with its columns that are not
/// voided (sorted by name, with their types) and all its rows over those
/// columns (ordered by key). Voided tables and columns are history a
/// build from scratch does not have.
pub type LiveTable = (Vec<(String, String)>, Vec<serde_json::Value>);

pub async fn live_schema(
    client: &Client,
    schema: &str,
) -> std::collections::BTreeMap<String, LiveTable> {
    let described = described(client, schema).await;
    let actual = catalog_columns(client, schema).await;
    let keys = all_keys(client, schema).await;
    let mut all = std::collections::BTreeMap::new();
    for (table, (voided, meta)) in described {
        if voided {
            continue;
        }
        let voided_columns: Vec<String> = meta
            .iter()
            .filter(|(_, _, voided)| *voided)
            .map(|(n, _, _)| n.clone())
            .collect();
        let typed: Vec<(String, String)> = actual
            .get(&table)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|(n, _)| !voided_columns.contains(n))
            .collect();
        let order = keys.get(&table).cloned().unwrap_or_default();
        let sql = format!(
            "SELECT (to_jsonb(t) - $1::text[])::text FROM {} t ORDER BY {}",
            quote_qualified(schema, &table),
            order
                .iter()
                .map(|(c, _)| format!("t.{}", quote_ident(c)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let rows = client
            .query(&sql, &[&voided_columns])
            .await
            .unwrap_or_else(|e| panic!("{e}\n{sql}"))
            .iter()
            .map(|r| {
                serde_json::from_str(r.get::<_, &str>(0))
                    .unwrap_or_else(|e| panic!("bad json: {e}"))
            })
            .collect();
        all.insert(table, (typed, rows));
    }
    all
}

/// Every row of a view as JSON, in a stable order.
pub async fn view_rows(client: &Client, schema: &str, view: &str) -> Vec<serde_json::Value> {
    let sql = format!(
        "SELECT to_jsonb(v)::text FROM {} v ORDER BY v.reporting_table, v.id",
        quote_qualified(schema, view)
    );
    client
        .query(&sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{e}\n{sql}"))
        .iter()
        .map(|r| {
            serde_json::from_str(r.get::<_, &str>(0)).unwrap_or_else(|e| panic!("bad json: {e}"))
        })
        .collect()
}

/// How many pairs of runs of one entity overlapped in time (started and not
/// yet finished at once) in the run history; 0 is what the scheduler
/// promises.
pub async fn overlapping_runs(client: &Client) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM etl_service.etl_run r1 JOIN etl_service.etl_run r2 \
               ON r1.entity_uuid = r2.entity_uuid AND r1.id < r2.id \
              WHERE r1.started_at IS NOT NULL AND r2.started_at IS NOT NULL \
                AND tstzrange(r1.started_at, coalesce(r1.finished_at, 'infinity')) \
                 && tstzrange(r2.started_at, coalesce(r2.finished_at, 'infinity'))",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("overlap query: {e}"))
        .get(0)
}
