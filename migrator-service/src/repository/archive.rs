//! The archive of raw elements (`form_submission`, unique on
//! `instance_id`): which elements of a page were already received
//! ([`archived`]), and a batch's archive rows written in one statement
//! ([`ArchiveRows`]). It is what lets a re-fetched page write each
//! submission once.

use crate::error::Error;
use crate::repository::model::{Failure, Submission};
use crate::repository::postgres::{pg_opt, pg_text};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use std::collections::HashSet;

#[derive(QueryableByName)]
struct InstanceRow {
    #[diesel(sql_type = Text)]
    instance_id: String,
}

/// The instance ids among `ids` already in the archive.
pub async fn archived(
    conn: &mut AsyncPgConnection,
    ids: &[String],
) -> Result<HashSet<String>, Error> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let rows: Vec<InstanceRow> =
        diesel::sql_query("SELECT instance_id FROM form_submission WHERE instance_id = ANY($1)")
            .bind::<Array<Text>, _>(ids)
            .load(conn)
            .await?;
    Ok(rows.into_iter().map(|r| r.instance_id).collect())
}

/// The raw element as `jsonb` accepts it: PostgreSQL refuses the escaped
/// NUL character (`\u0000`) in jsonb, and one such element must not block
/// its batch for ever, so it is replaced by U+FFFD in the archive (the
/// exact text stays in `error_audit` for a failed submission).
fn archivable(raw: &str) -> String {
    if raw.contains("\\u0000") {
        raw.replace("\\u0000", "\\ufffd")
    } else {
        raw.to_string()
    }
}

/// `form_submission` rows of a batch, as columns.
#[derive(Default)]
pub struct ArchiveRows {
    instance_id: Vec<String>,
    form_name: Vec<Option<String>>,
    entity_id: Vec<Option<String>>,
    anm_id: Vec<Option<String>>,
    client_version: Vec<Option<i64>>,
    server_version: Vec<Option<i64>>,
    payload: Vec<String>,
    status: Vec<String>,
}

impl ArchiveRows {
    pub fn push(&mut self, s: &Submission, raw: &str, status: &str) {
        self.instance_id.push(pg_text(&s.instance_id));
        self.form_name.push(Some(pg_text(&s.form_name)));
        self.entity_id.push(pg_opt(&s.entity_id));
        self.anm_id.push(pg_opt(&s.anm_id));
        self.client_version.push(s.client_version);
        self.server_version.push(Some(s.server_version));
        self.payload.push(archivable(raw));
        self.status.push(status.to_string());
    }

    /// A failure without an instance id cannot be archived (the archive is
    /// keyed on it); its raw payload is still in `error_audit`.
    pub fn push_failure(&mut self, f: &Failure, raw: &str) {
        let Some(id) = &f.instance_id else { return };
        self.instance_id.push(pg_text(id));
        self.form_name.push(pg_opt(&f.form_name));
        self.entity_id.push(None);
        self.anm_id.push(None);
        self.client_version.push(None);
        self.server_version.push(f.server_version);
        self.payload.push(archivable(raw));
        self.status.push("failed".to_string());
    }

    pub async fn insert(self, conn: &mut AsyncPgConnection, source: &str) -> Result<(), Error> {
        if self.instance_id.is_empty() {
            return Ok(());
        }
        diesel::sql_query(
            "INSERT INTO form_submission (source, instance_id, form_name, entity_id, anm_id, \
             client_version, server_version, payload, status) \
             SELECT $1, u.i, u.f, u.e, u.a, u.c, u.s, u.p::jsonb, u.st \
             FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::int8[], $8::text[], $9::text[]) \
             AS u(i, f, e, a, c, s, p, st) \
             ON CONFLICT (instance_id) DO NOTHING",
        )
        .bind::<Text, _>(source)
        .bind::<Array<Text>, _>(self.instance_id)
        .bind::<Array<Nullable<Text>>, _>(self.form_name)
        .bind::<Array<Nullable<Text>>, _>(self.entity_id)
        .bind::<Array<Nullable<Text>>, _>(self.anm_id)
        .bind::<Array<Nullable<BigInt>>, _>(self.client_version)
        .bind::<Array<Nullable<BigInt>>, _>(self.server_version)
        .bind::<Array<Text>, _>(self.payload)
        .bind::<Array<Text>, _>(self.status)
        .execute(conn)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_nul_characters_are_replaced_for_the_archive() {
        assert_eq!(archivable(r#"{"a":"x\u0000y"}"#), r#"{"a":"x\ufffdy"}"#);
        assert_eq!(archivable(r#"{"a":"plain"}"#), r#"{"a":"plain"}"#);
    }
}
