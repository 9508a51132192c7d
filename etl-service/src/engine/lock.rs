//! The entity lock: no two runs of one organisation (or group) at once,
//! across processes and replicas (design/etl.md §5.1).
//!
//! A transaction-scoped advisory lock held in an open transaction on a
//! connection of its own, outside the pool: a session-level lock on a pooled
//! connection would outlive the run when the connection goes back to the
//! pool, and the run's work happens on other connections anyway. If the
//! process dies, PostgreSQL ends the session and the lock goes with it.

use crate::engine::schema::naming::stable_hash;
use crate::engine::stop::RunStop;
use crate::error::Error;
use diesel::QueryableByName;
use diesel::sql_types::{Bool, Integer};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use service_kit::tls::PgConnect;
use std::sync::Mutex;
use std::time::Duration;

/// How long opening the lock connection (TCP, TLS, start-up) may take.
const LOCK_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The advisory-lock class (first key) of entity locks, so they never meet
/// other advisory locks of the database.
const LOCK_CLASS: i32 = 0x4554_4c31; // "ETL1"

/// The second key: derived from the schema name, which is what two runs
/// must not write at once.
pub fn lock_key(schema: &str) -> i32 {
    let hex = stable_hash(schema);
    u32::from_str_radix(&hex, 16).map(|v| v as i32).unwrap_or(0)
}

/// A held entity lock; released by [`EntityLock::release`] or when dropped
/// (the connection closes and the transaction with it).
pub struct EntityLock {
    conn: AsyncPgConnection,
    schema: String,
    database_url: String,
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

/// Lock connections whose transaction ended with a commit, kept for the next
/// lock of the process: opening one (TCP, PostgreSQL's start-up of a
/// backend, the driver's settings) took longer than the rest of a run with
/// nothing to sync. Outside the pool still, and never holding a lock while
/// idle; a lock dropped without [`EntityLock::release`] closes its
/// connection as before.
static IDLE: Mutex<Vec<(String, AsyncPgConnection)>> = Mutex::new(Vec::new());
/// Idle lock connections kept at most.
const IDLE_MAX: usize = 4;
/// How long a kept connection may take to begin a transaction before it is
/// given up for a new one.
const IDLE_BEGIN_TIMEOUT: Duration = Duration::from_secs(2);

fn take_idle(database_url: &str) -> Option<AsyncPgConnection> {
    let mut idle = IDLE.lock().ok()?;
    let at = idle.iter().position(|(url, _)| url == database_url)?;
    Some(idle.swap_remove(at).1)
}

fn keep_idle(database_url: &str, conn: AsyncPgConnection) {
    if let Ok(mut idle) = IDLE.lock()
        && idle.len() < IDLE_MAX
    {
        idle.push((database_url.to_string(), conn));
    }
}

impl EntityLock {
    async fn begin(database_url: &str) -> Result<AsyncPgConnection, Error> {
        while let Some(mut conn) = take_idle(database_url) {
            let begun = tokio::time::timeout(
                IDLE_BEGIN_TIMEOUT,
                diesel::sql_query("BEGIN").execute(&mut conn),
            )
            .await;
            if let Ok(Ok(_)) = begun {
                return Ok(conn);
            }
            // Closed by the server (a restart) or stuck: a new one.
        }
        let connect = PgConnect::from_url(database_url, LOCK_CONNECT_TIMEOUT)?;
        let mut conn = connect
            .diesel()
            .await
            .map_err(|e| Error::Unavailable(format!("cannot open the lock connection: {e}")))?;
        diesel::sql_query("BEGIN").execute(&mut conn).await?;
        Ok(conn)
    }

    /// Waits until no other run holds the lock of `schema`, then takes it.
    pub async fn acquire(database_url: &str, schema: &str) -> Result<Self, Error> {
        Self::acquire_until(database_url, schema, &RunStop::default()).await
    }

    /// Like [`EntityLock::acquire`], but gives up (cancelling the wait in
    /// PostgreSQL) when `stop` fires.
    pub async fn acquire_until(
        database_url: &str,
        schema: &str,
        stop: &RunStop,
    ) -> Result<Self, Error> {
        let mut conn = Self::begin(database_url).await?;
        let token = conn.cancel_token();
        let wait = async {
            diesel::sql_query("SELECT pg_advisory_xact_lock($1, $2)")
                .bind::<Integer, _>(LOCK_CLASS)
                .bind::<Integer, _>(lock_key(schema))
                .execute(&mut conn)
                .await
                .map_err(Error::from)
        };
        stop.guard(token, wait).await?;
        Ok(Self {
            conn,
            schema: schema.to_string(),
            database_url: database_url.to_string(),
        })
    }

    /// Takes the lock of `schema` if it is free; `None` when another run
    /// holds it.
    pub async fn try_acquire(database_url: &str, schema: &str) -> Result<Option<Self>, Error> {
        let mut conn = Self::begin(database_url).await?;
        let locked = diesel::sql_query("SELECT pg_try_advisory_xact_lock($1, $2) AS locked")
            .bind::<Integer, _>(LOCK_CLASS)
            .bind::<Integer, _>(lock_key(schema))
            .get_result::<Locked>(&mut conn)
            .await?
            .locked;
        if !locked {
            // Nothing held: the transaction ends and the connection is kept.
            if diesel::sql_query("COMMIT").execute(&mut conn).await.is_ok() {
                keep_idle(database_url, conn);
            }
            return Ok(None);
        }
        Ok(Some(Self {
            conn,
            schema: schema.to_string(),
            database_url: database_url.to_string(),
        }))
    }

    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Ends the transaction, which releases the lock; the connection is
    /// kept for the next lock.
    pub async fn release(mut self) -> Result<(), Error> {
        diesel::sql_query("COMMIT").execute(&mut self.conn).await?;
        keep_idle(&self.database_url, self.conn);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_differ_by_schema() {
        assert_eq!(lock_key("org_a"), lock_key("org_a"));
        assert_ne!(lock_key("org_a"), lock_key("org_b"));
    }
}
