//! Stopping a run in the middle: its time is up (`etl.run_timeout_seconds`),
//! or the replica is shutting down or lost the run's lease.
//!
//! Dropping a run's future does not stop the statement it was waiting for:
//! PostgreSQL goes on until it next talks to the client, holding the run's
//! row and table locks meanwhile, so the next run would wait behind a ghost.
//! A stopped run instead asks the server to cancel the statement of the
//! connection it works on; the run then ends through that statement's error,
//! which rolls back the table in progress like any other failure (each table
//! commits with its watermark, so every table is left old or new).

use crate::error::Error;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often the cancel request is repeated while the work has not ended:
/// a request that arrives between two statements cancels nothing.
const CANCEL_EVERY: Duration = Duration::from_secs(1);
/// Cancel requests sent before the work is abandoned (its connection is
/// then dropped, and closed, instead of returned to the pool).
const CANCEL_ATTEMPTS: u32 = 30;

/// When a run must stop.
#[derive(Debug, Clone, Default)]
pub struct RunStop {
    cancel: CancellationToken,
    deadline: Option<Deadline>,
}

#[derive(Debug, Clone, Copy)]
struct Deadline {
    at: Instant,
    limit: Duration,
}

impl RunStop {
    /// Stops when `cancel` fires or, with a `timeout`, that long from now.
    pub fn new(cancel: CancellationToken, timeout: Option<Duration>) -> Self {
        Self {
            cancel,
            deadline: timeout.map(|limit| Deadline {
                at: Instant::now() + limit,
                limit,
            }),
        }
    }

    /// Resolves when the run must stop.
    pub async fn fired(&self) {
        match self.deadline {
            Some(d) => tokio::select! {
                () = self.cancel.cancelled() => {}
                () = tokio::time::sleep_until(d.at) => {}
            },
            None => self.cancel.cancelled().await,
        }
    }

    fn is_fired(&self) -> bool {
        self.cancel.is_cancelled() || self.deadline.is_some_and(|d| Instant::now() >= d.at)
    }

    /// Fails with the reason when the run must stop now.
    pub fn check(&self) -> Result<(), Error> {
        if self.is_fired() {
            Err(self.reason())
        } else {
            Ok(())
        }
    }

    /// Why the run stopped, as its error.
    fn reason(&self) -> Error {
        match self.deadline {
            Some(d) if Instant::now() >= d.at => Error::TimedOut(format!(
                "run exceeded etl.run_timeout_seconds ({} s)",
                d.limit.as_secs()
            )),
            _ => Error::Cancelled(
                "cancelled: the replica is stopping or lost the run's lease".into(),
            ),
        }
    }

    /// Runs `work`, whose statements run on the connection `token` belongs
    /// to. When the run must stop first, the connection's statement is
    /// cancelled in PostgreSQL (again every second, in case the request
    /// lands between two statements) until `work` returns; the result is
    /// then the stop's reason.
    pub async fn guard<T>(
        &self,
        token: tokio_postgres::CancelToken,
        work: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        tokio::pin!(work);
        tokio::select! {
            biased;
            result = &mut work => return result,
            () = self.fired() => {}
        }
        let reason = self.reason();
        tracing::warn!(reason = %reason, "stopping the run: cancelling its statement in PostgreSQL");
        for _ in 0..CANCEL_ATTEMPTS {
            if let Err(e) = token.cancel_query(service_kit::tls::cancel_tls()).await {
                tracing::warn!(error = %e, "cannot send PostgreSQL a cancel request");
            }
            tokio::select! {
                _ = &mut work => return Err(reason),
                () = tokio::time::sleep(CANCEL_EVERY) => {}
            }
        }
        tracing::warn!(
            "the run's statement did not end after {CANCEL_ATTEMPTS} cancel requests; dropping its connection"
        );
        Err(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_deadline_in_the_past_stops_with_the_configured_limit() {
        let stop = RunStop::new(CancellationToken::new(), Some(Duration::ZERO));
        let err = stop.check().expect_err("past its deadline");
        assert_eq!(
            err.to_string(),
            "run exceeded etl.run_timeout_seconds (0 s)"
        );
        assert!(matches!(err, Error::TimedOut(_)));
    }

    #[tokio::test]
    async fn cancelling_stops_without_a_deadline() {
        let cancel = CancellationToken::new();
        let stop = RunStop::new(cancel.clone(), None);
        assert!(stop.check().is_ok());
        cancel.cancel();
        assert!(matches!(stop.check(), Err(Error::Cancelled(_))));
    }
}
