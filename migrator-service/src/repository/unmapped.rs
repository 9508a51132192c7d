//! `unmapped_field`: the fields written submissions carried that their
//! table has no column for, per source, form and sub-form: how many
//! submissions carried a value, first and last seen, an example instance.
//! A batch's fields are counted in memory ([`UnmappedTally`]) and written in
//! one statement with the batch; [`list`] reads them back for the API.

use crate::error::Error;
use crate::repository::model::{Submission, Unmapped};
use crate::repository::postgres::pg_text;
use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Bool, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use std::collections::BTreeMap;

/// Most rows [`list`] returns: one per distinct field, so a real
/// deployment has tens; the bound only keeps a hostile feed's from
/// filling a reply.
pub const LIST_LIMIT: i64 = 1000;

/// One field's count in a batch.
#[derive(Debug, Clone)]
struct Seen {
    table: String,
    column: String,
    submissions: i64,
    example_instance_id: String,
}

/// The unmapped fields of the submissions a batch wrote, keyed by
/// (form, sub-form, field).
#[derive(Debug, Default)]
pub struct UnmappedTally {
    seen: BTreeMap<(String, String, String), Seen>,
}

impl UnmappedTally {
    /// Counts a written submission's unmapped fields (each once).
    pub fn add(&mut self, sub: &Submission, unmapped: &[Unmapped]) {
        for u in unmapped {
            let key = (
                pg_text(&sub.form_name),
                pg_text(&u.sub_form_name),
                pg_text(&u.field),
            );
            self.seen
                .entry(key)
                .and_modify(|s| s.submissions += 1)
                .or_insert_with(|| Seen {
                    table: u.table.clone(),
                    column: pg_text(&u.column),
                    submissions: 1,
                    example_instance_id: pg_text(&sub.instance_id),
                });
        }
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Values counted, by (form, field), for the metrics.
    pub fn counts(&self) -> impl Iterator<Item = (&str, String, i64)> {
        self.seen.iter().map(|((form, sub, field), s)| {
            let field = if sub.is_empty() {
                field.clone()
            } else {
                format!("{sub}.{field}")
            };
            (form.as_str(), field, s.submissions)
        })
    }

    /// Adds the batch's counts to `unmapped_field`, in one statement. A
    /// field seen again after it was resolved (its column dropped) is
    /// unresolved again.
    pub async fn insert(&self, conn: &mut AsyncPgConnection, source: &str) -> Result<(), Error> {
        if self.seen.is_empty() {
            return Ok(());
        }
        let mut columns: [Vec<String>; 6] = Default::default();
        let mut counts = Vec::with_capacity(self.seen.len());
        for ((form, sub, field), s) in &self.seen {
            for (column, value) in columns.iter_mut().zip([
                form,
                sub,
                field,
                &s.table,
                &s.column,
                &s.example_instance_id,
            ]) {
                column.push(value.clone());
            }
            counts.push(s.submissions);
        }
        let [form, sub, field, table, column, example] = columns;
        diesel::sql_query(
            "INSERT INTO unmapped_field AS f (source, form_name, sub_form_name, field_name, \
             table_name, column_name, submissions, example_instance_id) \
             SELECT $1, u.f, u.s, u.n, u.t, u.c, u.k, u.e \
             FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[], $8::text[]) \
             AS u(f, s, n, t, c, k, e) \
             ON CONFLICT (source, form_name, sub_form_name, field_name) DO UPDATE \
             SET submissions = f.submissions + EXCLUDED.submissions, last_seen = now(), \
                 table_name = EXCLUDED.table_name, column_name = EXCLUDED.column_name, \
                 resolved_at = NULL",
        )
        .bind::<Text, _>(source)
        .bind::<Array<Text>, _>(form)
        .bind::<Array<Text>, _>(sub)
        .bind::<Array<Text>, _>(field)
        .bind::<Array<Text>, _>(table)
        .bind::<Array<Text>, _>(column)
        .bind::<Array<BigInt>, _>(counts)
        .bind::<Array<Text>, _>(example)
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// An `unmapped_field` row.
#[derive(Debug, Clone, QueryableByName)]
pub struct UnmappedRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub source: String,
    #[diesel(sql_type = Text)]
    pub form_name: String,
    #[diesel(sql_type = Text)]
    pub sub_form_name: String,
    #[diesel(sql_type = Text)]
    pub field_name: String,
    #[diesel(sql_type = Text)]
    pub table_name: String,
    #[diesel(sql_type = Text)]
    pub column_name: String,
    #[diesel(sql_type = BigInt)]
    pub submissions: i64,
    #[diesel(sql_type = Timestamptz)]
    pub first_seen: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    pub last_seen: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    pub example_instance_id: String,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub resolved_at: Option<DateTime<Utc>>,
}

/// Which rows [`list`] returns.
#[derive(Debug, Clone, Default)]
pub struct UnmappedFilter {
    pub source: Option<String>,
    pub form_name: Option<String>,
    pub include_resolved: bool,
}

/// Unmapped fields, the most carried first, at most [`LIST_LIMIT`].
pub async fn list(
    conn: &mut AsyncPgConnection,
    filter: &UnmappedFilter,
) -> Result<Vec<UnmappedRow>, Error> {
    Ok(diesel::sql_query(
        "SELECT id, source, form_name, sub_form_name, field_name, table_name, column_name, \
         submissions, first_seen, last_seen, example_instance_id, resolved_at FROM unmapped_field \
         WHERE ($1::text IS NULL OR source = $1) AND ($2::text IS NULL OR form_name = $2) \
           AND ($3 OR resolved_at IS NULL) \
         ORDER BY resolved_at IS NOT NULL, submissions DESC, id LIMIT $4",
    )
    .bind::<Nullable<Text>, _>(filter.source.as_deref())
    .bind::<Nullable<Text>, _>(filter.form_name.as_deref())
    .bind::<Bool, _>(filter.include_resolved)
    .bind::<BigInt, _>(LIST_LIMIT)
    .load(conn)
    .await?)
}
