//! The repository tables (audits, archive, form tables), embedded from
//! `migrations/migrator/`.

use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use service_kit::db::MigrationSet;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/migrator");

fn embedded() -> EmbeddedMigrations {
    MIGRATIONS
}

/// The embedded migrations, for `service_kit::db`.
pub const fn migrations() -> MigrationSet {
    MigrationSet::new(embedded)
}
