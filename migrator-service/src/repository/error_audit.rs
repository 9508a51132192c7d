//! The `error_audit` rows of a batch: every submission that could not be
//! migrated, with its reasons and its exact raw element, written in one
//! statement.

use crate::error::Error;
use crate::repository::model::Failure;
use crate::repository::postgres::{pg_opt, pg_text};
use diesel::sql_types::{Array, BigInt, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// A failure with the raw element it belongs to.
pub struct Failed<'a> {
    pub failure: Failure,
    pub raw: &'a str,
}

/// Failures without an instance id cannot be recognised as repeats by the
/// archive, so an identical one already recorded is not recorded twice.
pub async fn insert_errors(
    conn: &mut AsyncPgConnection,
    source: &str,
    failures: &[Failed<'_>],
) -> Result<(), Error> {
    if failures.is_empty() {
        return Ok(());
    }
    let mut instance_id = Vec::with_capacity(failures.len());
    let mut form_name = Vec::with_capacity(failures.len());
    let mut server_version = Vec::with_capacity(failures.len());
    let mut reason = Vec::with_capacity(failures.len());
    let mut detail = Vec::with_capacity(failures.len());
    let mut raw = Vec::with_capacity(failures.len());
    for f in failures {
        instance_id.push(pg_opt(&f.failure.instance_id));
        form_name.push(pg_opt(&f.failure.form_name));
        server_version.push(f.failure.server_version);
        reason.push(pg_text(&f.failure.reason));
        detail.push(pg_text(&f.failure.detail));
        raw.push(f.raw.to_string());
    }
    diesel::sql_query(
        "INSERT INTO error_audit (source, instance_id, form_name, server_version, failure_reason, \
         detailed_reason, raw_payload) \
         SELECT $1, u.i, u.f, u.s, u.r, u.d, u.p \
         FROM unnest($2::text[], $3::text[], $4::int8[], $5::text[], $6::text[], $7::text[]) \
         WITH ORDINALITY AS u(i, f, s, r, d, p, n) \
         WHERE u.i IS NOT NULL OR NOT EXISTS (SELECT 1 FROM error_audit e \
           WHERE e.source = $1 AND e.instance_id IS NULL AND e.raw_payload = u.p) \
         ORDER BY u.n",
    )
    .bind::<Text, _>(source)
    .bind::<Array<Nullable<Text>>, _>(instance_id)
    .bind::<Array<Nullable<Text>>, _>(form_name)
    .bind::<Array<Nullable<BigInt>>, _>(server_version)
    .bind::<Array<Text>, _>(reason)
    .bind::<Array<Text>, _>(detail)
    .bind::<Array<Text>, _>(raw)
    .execute(conn)
    .await?;
    Ok(())
}
