//! The crate's one error type, and how the failures both services share
//! become gRPC statuses.

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

/// A pool that could not hand out a connection in time: PostgreSQL is down
/// or every connection is busy.
pub type PoolError = bb8::RunError<diesel_async::pooled_connection::PoolError>;

/// How the failures both services share reach a caller. Each service's
/// error type keeps its own variants (callers and tests match on them) and
/// maps these cases through here, so they read the same from either
/// service.
pub mod status {
    use super::KitError;
    use diesel::result::{DatabaseErrorKind, Error as DieselError};
    use tonic::Status;

    /// UNAVAILABLE: PostgreSQL cannot be reached; the caller may try again.
    pub fn unavailable(message: &str) -> Status {
        Status::unavailable(format!("PostgreSQL is unavailable: {message}"))
    }

    /// A database error: UNAVAILABLE when the connection to PostgreSQL was
    /// lost (trying again later can work), INTERNAL otherwise (logged with
    /// its cause).
    pub fn database(e: &DieselError) -> Status {
        match e {
            DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _)
            | DieselError::BrokenTransactionManager => unavailable(&e.to_string()),
            e => {
                tracing::error!(error = %e, "database error");
                Status::internal(format!("database error: {e}"))
            }
        }
    }

    /// The shared plumbing's failures (config, migrations, serving).
    pub fn kit(e: &KitError) -> Status {
        Status::internal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::status;
    use diesel::result::{DatabaseErrorKind, Error as DieselError};
    use tonic::Code;

    #[test]
    fn a_lost_connection_is_unavailable_and_other_database_errors_internal() {
        let closed = DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection,
            Box::new("server closed the connection unexpectedly".to_string()),
        );
        assert_eq!(status::database(&closed).code(), Code::Unavailable);
        assert_eq!(
            status::database(&DieselError::BrokenTransactionManager).code(),
            Code::Unavailable
        );
        let failed = DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            Box::new("duplicate key".to_string()),
        );
        let s = status::database(&failed);
        assert_eq!(s.code(), Code::Internal);
        assert!(s.message().contains("duplicate key"), "{}", s.message());
        assert_eq!(
            status::database(&DieselError::NotFound).code(),
            Code::Internal
        );
    }
}
