//! Whether the source tables have the index an incremental run relies on.
//!
//! Every read of a run is bounded by one organisation and a window on
//! `last_modified_date_time` (the change probe's `> watermark`, the sync's
//! `(watermark, boundary]`). The project's test DDL indexes
//! `(organisation_id, last_modified_date_time)`; avni-server's migrations
//! index the two columns apart (`<table>_last_modified_time_idx`,
//! `<table>_organisation_id__index`). On those alone PostgreSQL plans some
//! of the sync's joins over a whole table: `etl-index-bench` measured an
//! incremental run 5x slower, a no-op 1.35x (RELIABILITY.md, "Source
//! indexes"). So the service names, at start-up and in run-once, each
//! source table without the composite index, with the statement that
//! creates it under the service's own name (`etl_<table>_org_lmdt_idx`,
//! `CONCURRENTLY`, dropped as simply).

use crate::engine::sync::SOURCE_TABLES;
use crate::error::Error;
use diesel::QueryableByName;
use diesel::sql_types::{Array, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// A source table without an index that bounds a run by change time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingIndex {
    pub table: &'static str,
}

impl MissingIndex {
    /// What an operator can run (as the table's owner) to add one.
    pub fn remedy(&self) -> String {
        format!(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS etl_{t}_org_lmdt_idx ON public.{t} (organisation_id, last_modified_date_time)",
            t = self.table
        )
    }
}

/// Whether an index on these columns (in order) bounds a read of one
/// organisation's rows changed in a window.
pub fn bounds_change_reads(columns: &[String]) -> bool {
    matches!(columns, [first, second, ..] if first == "organisation_id" && second == "last_modified_date_time")
}

#[derive(QueryableByName)]
struct SourceIndex {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Array<Text>)]
    columns: Vec<String>,
}

/// The source tables (of those that exist) with no valid, non-partial
/// index that [`bounds_change_reads`].
pub async fn missing_indexes(conn: &mut AsyncPgConnection) -> Result<Vec<MissingIndex>, Error> {
    let indexes: Vec<SourceIndex> = diesel::sql_query(
        "SELECT t.relname::text AS table_name, \
                array(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord) \
                      JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum \
                      ORDER BY k.ord) AS columns \
           FROM pg_class t \
           JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = 'public' \
           JOIN pg_index i ON i.indrelid = t.oid AND i.indisvalid AND i.indpred IS NULL \
          WHERE t.relname = ANY($1) \
         UNION ALL \
         SELECT t.relname::text, ARRAY[]::text[] FROM pg_class t \
           JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = 'public' \
          WHERE t.relname = ANY($1) AND t.relkind IN ('r', 'p')",
    )
    .bind::<Array<Text>, _>(SOURCE_TABLES.to_vec())
    .load(conn)
    .await
    .map_err(|source| Error::SourceRead {
        what: "the source tables' indexes",
        source,
    })?;
    Ok(SOURCE_TABLES
        .iter()
        .filter(|table| indexes.iter().any(|i| i.table_name == **table))
        .filter(|table| {
            !indexes
                .iter()
                .any(|i| i.table_name == **table && bounds_change_reads(&i.columns))
        })
        .map(|table| MissingIndex { table })
        .collect())
}

/// Logs a warning per source table [`missing_indexes`] finds; a failure to
/// look is logged too and never stops the service.
pub async fn warn_if_missing(pool: &service_kit::db::Pool) {
    let found = match pool.get().await {
        Ok(mut conn) => missing_indexes(&mut conn).await,
        Err(e) => {
            tracing::warn!("could not check the source tables' indexes: {e}");
            return;
        }
    };
    match found {
        Ok(missing) => {
            for m in missing {
                tracing::warn!(
                    table = m.table,
                    "source table public.{} has no index on (organisation_id, last_modified_date_time): incremental runs read more than what changed (5x slower measured on avni-server's own indexes, RELIABILITY.md \"Source indexes\"); as its owner run: {}",
                    m.table,
                    m.remedy()
                );
            }
        }
        Err(e) => tracing::warn!("could not check the source tables' indexes: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_composite_index_bounds_change_reads() {
        assert!(bounds_change_reads(&cols(&[
            "organisation_id",
            "last_modified_date_time"
        ])));
        assert!(bounds_change_reads(&cols(&[
            "organisation_id",
            "last_modified_date_time",
            "id"
        ])));
    }

    #[test]
    fn other_indexes_do_not() {
        assert!(!bounds_change_reads(&cols(&["organisation_id"])));
        assert!(!bounds_change_reads(&cols(&["last_modified_date_time"])));
        assert!(!bounds_change_reads(&cols(&[
            "last_modified_date_time",
            "organisation_id"
        ])));
        assert!(!bounds_change_reads(&cols(&["id"])));
        assert!(!bounds_change_reads(&cols(&[
            "organisation_id",
            "id",
            "last_modified_date_time"
        ])));
        assert!(!bounds_change_reads(&[]));
    }

    #[test]
    fn the_remedy_names_the_table_and_column() {
        let m = MissingIndex { table: "encounter" };
        assert_eq!(
            m.remedy(),
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS etl_encounter_org_lmdt_idx ON public.encounter (organisation_id, last_modified_date_time)"
        );
    }
}
