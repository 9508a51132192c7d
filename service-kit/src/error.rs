use std::path::PathBuf;

/// What can go wrong in the shared plumbing. Each service wraps it in its own
/// error type; every variant prints as one line an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum KitError {
    #[error("config file {}: {message}", path.display())]
    ConfigFile { path: PathBuf, message: String },

    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    #[error("PostgreSQL at {target} is not reachable after {waited_seconds}s: {message}")]
    DatabaseUnreachable {
        target: String,
        waited_seconds: u64,
        message: String,
    },

    #[error("PostgreSQL at {target}: {message}")]
    Database { target: String, message: String },

    #[error(
        "{count} migration(s) pending: {names}; run `{binary} migrate` first, or set migrations.apply_on_start: true",
        count = names.len(),
        names = names.join(", ")
    )]
    PendingMigrations { binary: String, names: Vec<String> },

    #[error("migration failed: {0}")]
    Migration(String),

    #[error("cannot listen on {addr}: {message}")]
    Bind { addr: String, message: String },

    #[error("gRPC server failed: {0}")]
    Serve(String),
}
