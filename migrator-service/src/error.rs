//! The one error type of migrator-service, mapped to gRPC status codes at the edge.

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

    /// The upstream of a source failed (see [`crate::poll::upstream::UpstreamError`]).
    #[error(transparent)]
    Upstream(#[from] crate::poll::upstream::UpstreamError),

    /// A drain cannot move past a `serverVersion` that more submissions
    /// share than the largest page holds.
    #[error("{0}")]
    NoProgress(String),

    /// The work stopped because the service is shutting down.
    #[error("stopped by shutdown")]
    Shutdown,
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
            Error::FailedPrecondition(m) => Status::failed_precondition(m),
            Error::Unavailable(m) => status::unavailable(&m),
            Error::Database(e) => status::database(&e),
            Error::Kit(e) => status::kit(&e),
            Error::Upstream(e) => Status::unavailable(e.to_string()),
            Error::NoProgress(m) => Status::failed_precondition(m),
            Error::Shutdown => Status::unavailable("the service is shutting down"),
        }
    }
}
