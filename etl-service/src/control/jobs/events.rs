//! A run's progress events, the stream WatchJobRun follows from any replica.

use super::RunEventRow;
use crate::error::Error;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// Appends a progress event with the next sequence number of its run.
pub async fn append_event(
    conn: &mut AsyncPgConnection,
    run_id: i64,
    kind: &str,
    table_name: Option<&str>,
    rows_upserted: i64,
    message: Option<&str>,
) -> Result<(), Error> {
    diesel::sql_query(
        "INSERT INTO etl_service.etl_run_event (run_id, seq, kind, table_name, rows_upserted, message) \
         SELECT $1, coalesce(max(seq), 0) + 1, $2, $3, $4, $5 FROM etl_service.etl_run_event WHERE run_id = $1",
    )
    .bind::<BigInt, _>(run_id)
    .bind::<Text, _>(kind)
    .bind::<Nullable<Text>, _>(table_name)
    .bind::<BigInt, _>(rows_upserted)
    .bind::<Nullable<Text>, _>(message)
    .execute(conn)
    .await?;
    Ok(())
}

/// Events of a run after sequence number `after`, in order.
pub async fn events_after(
    conn: &mut AsyncPgConnection,
    run_id: i64,
    after: i32,
) -> Result<Vec<RunEventRow>, Error> {
    Ok(diesel::sql_query(
        "SELECT run_id, seq, kind, event_time, table_name, rows_upserted, message \
           FROM etl_service.etl_run_event WHERE run_id = $1 AND seq > $2 ORDER BY seq",
    )
    .bind::<BigInt, _>(run_id)
    .bind::<Integer, _>(after)
    .load(conn)
    .await?)
}
