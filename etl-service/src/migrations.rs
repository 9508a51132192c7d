//! The ETL's migrations, embedded from `migrations/etl/`: its own state in
//! the schema [`SERVICE_SCHEMA`] (with the migration history), and Avni's
//! metadata tables in `public`, used in Avni's shape where they exist.

use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use service_kit::db::MigrationSet;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/etl");

/// The schema of the service's own state: jobs, runs, events, watermarks,
/// what it keeps beside Avni's metadata rows, its migration history. Never
/// `public`, so avni-server's grants on `public` (`create_db_user`) never
/// reach it.
pub const SERVICE_SCHEMA: &str = "etl_service";

fn embedded() -> EmbeddedMigrations {
    MIGRATIONS
}

/// The embedded migrations, for `service_kit::db`.
pub const fn migrations() -> MigrationSet {
    MigrationSet::in_schema(embedded, SERVICE_SCHEMA)
}
