//! Running the ETL engine in a test: a fresh migrated database with the Avni
//! source tables and generated organisations, an engine context on it, and
//! helpers to read the reporting tables back.

use crate::avni::{self, Org, Spec, World};
use crate::postgres::TestDatabase;
use etl_service::config::EtlSettings;
use etl_service::engine::{self, EngineContext, NoProgress, RunOptions, RunReport};
use etl_service::entity::{EntityKind, EntityRef};
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
        let db = TestDatabase::migrated(etl_service::migrations::migrations).await;
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
