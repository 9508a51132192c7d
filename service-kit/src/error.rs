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

    /// A database error while serving a request, said in words: the
    /// status names no PostgreSQL text (that goes to the log, and to a
    /// run's `error_detail`). See [`database_while`].
    pub fn database(e: &DieselError) -> Status {
        database_while("serving the request", e)
    }

    /// A database error while doing `what` ("reading the organisation's
    /// forms"): UNAVAILABLE when the connection to PostgreSQL was lost or
    /// could not carry the command (trying again later can work), INTERNAL
    /// otherwise. The cause is logged, not sent to the caller.
    pub fn database_while(what: &str, e: &DieselError) -> Status {
        if is_connection_lost(e) {
            tracing::warn!(error = %e, "lost the connection to PostgreSQL while {what}");
            Status::unavailable(format!(
                "PostgreSQL is unavailable: the connection was lost while {what}; try again"
            ))
        } else {
            tracing::error!(error = %e, "database error while {what}");
            Status::internal(format!(
                "a database error stopped {what}; the cause is in the service's log"
            ))
        }
    }

    /// Whether `e` says the connection is gone (closed, broken, or a
    /// command that could not be sent), rather than the statement failing.
    pub fn is_connection_lost(e: &DieselError) -> bool {
        match e {
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            )
            | DieselError::BrokenTransactionManager => true,
            // The server ending the session (admin shutdown, crash recovery).
            DieselError::DatabaseError(_, info) => {
                info.message().starts_with("terminating connection")
            }
            _ => false,
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
        assert!(!s.message().contains("duplicate key"), "{}", s.message());
        assert!(
            s.message().contains("serving the request"),
            "{}",
            s.message()
        );
        assert_eq!(
            status::database(&DieselError::NotFound).code(),
            Code::Internal
        );
    }

    #[test]
    fn a_command_that_cannot_be_sent_is_unavailable_and_said_in_words() {
        let unsent = DieselError::DatabaseError(
            DatabaseErrorKind::UnableToSendCommand,
            Box::new("connection closed".to_string()),
        );
        let s = status::database_while("reading the organisation's forms", &unsent);
        assert_eq!(s.code(), Code::Unavailable);
        assert_eq!(
            s.message(),
            "PostgreSQL is unavailable: the connection was lost while reading the organisation's forms; try again"
        );
        let terminated = DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("terminating connection due to administrator command".to_string()),
        );
        assert_eq!(status::database(&terminated).code(), Code::Unavailable);
        let missing = DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("column st.allow_middle_name does not exist".to_string()),
        );
        let s = status::database_while("reading the source's subject types", &missing);
        assert_eq!(s.code(), Code::Internal);
        assert_eq!(
            s.message(),
            "a database error stopped reading the source's subject types; the cause is in the service's log"
        );
    }
}
