//! The repository tables (audits, archive, form tables), embedded from
//! `migrations/migrator/`.

use diesel_migrations::{EmbeddedMigrations, embed_migrations};

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/migrator");

/// The embedded migrations, for `service_kit::db`.
pub fn migrations() -> EmbeddedMigrations {
    MIGRATIONS
}
