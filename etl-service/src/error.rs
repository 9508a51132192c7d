//! The one error type of etl-service, mapped to gRPC status codes at the edge.

use service_kit::KitError;
use service_kit::error::{PoolError, status};
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kit(#[from] KitError),

    #[error("{0}")]
    InvalidArgument(String),

    #[error("{0}")]
    NotFound(String),

    #[error("{0}")]
    FailedPrecondition(String),

    /// PostgreSQL cannot be reached (pool timeout, connection refused).
    #[error("PostgreSQL is unavailable: {0}")]
    Unavailable(String),

    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),

    /// Another run of the same organisation or group holds its lock.
    #[error("{0}")]
    AlreadyRunning(String),

    /// One table's sync failed; the tables synced before it keep their new
    /// rows and watermarks, this one and those after keep their old ones.
    #[error("syncing table {table} failed: {source}")]
    Sync {
        table: String,
        #[source]
        source: Box<Error>,
    },

    /// A query of the Avni source failed; `what` names what it reads (and
    /// its tables), so a NULL the engine did not expect or a column a
    /// release of Avni lacks can be traced.
    #[error("reading the source's {what} failed: {source}")]
    SourceRead {
        what: &'static str,
        #[source]
        source: diesel::result::Error,
    },

    /// RecreateSchema waited its limit for the entity's lock.
    #[error("{0}")]
    LockBusy(String),

    /// The run took longer than `etl.run_timeout_seconds`; its statement
    /// was cancelled in PostgreSQL.
    #[error("{0}")]
    TimedOut(String),

    /// The run was stopped (the replica is shutting down or lost the run's
    /// lease); its statement was cancelled in PostgreSQL.
    #[error("{0}")]
    Cancelled(String),

    /// A failure a test asked for (`engine::faults`, with the
    /// `fault-injection` feature only).
    #[cfg(feature = "fault-injection")]
    #[error("{0}")]
    InjectedFailure(String),
}

impl From<PoolError> for Error {
    fn from(e: PoolError) -> Self {
        Error::Unavailable(e.to_string())
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidArgument(m) => Status::invalid_argument(m),
            Error::NotFound(m) => Status::not_found(m),
            Error::FailedPrecondition(m) | Error::AlreadyRunning(m) => {
                Status::failed_precondition(m)
            }
            Error::Sync { table, source } => match *source {
                Error::Database(e) => status::database_while(&format!("syncing table {table}"), &e),
                other => {
                    tracing::error!(table = %table, error = %other, "run failed");
                    Status::internal(format!(
                        "syncing table {table} failed; the cause is in the service's log"
                    ))
                }
            },
            #[cfg(feature = "fault-injection")]
            e @ Error::InjectedFailure(_) => {
                tracing::error!(error = %e, "run failed");
                Status::internal(e.to_string())
            }
            Error::TimedOut(m) => Status::deadline_exceeded(m),
            Error::LockBusy(m) => Status::aborted(m),
            Error::Cancelled(m) => Status::cancelled(m),
            Error::Unavailable(m) => status::unavailable(&m),
            Error::Database(e) => status::database(&e),
            Error::SourceRead { what, source } => {
                status::database_while(&format!("reading the source's {what}"), &source)
            }
            Error::Kit(e) => status::kit(&e),
        }
    }
}
