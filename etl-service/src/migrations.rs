//! The ETL's own tables (metadata, jobs, run history), embedded from
//! `migrations/etl/`.

use diesel_migrations::{EmbeddedMigrations, embed_migrations};

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/etl");

/// The embedded migrations, for `service_kit::db`.
pub fn migrations() -> EmbeddedMigrations {
    MIGRATIONS
}
