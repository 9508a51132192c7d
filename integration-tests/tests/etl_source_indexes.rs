//! The source indexes runs rely on (RELIABILITY.md, "Source indexes"): a
//! real Avni database indexes `last_modified_date_time` and
//! `organisation_id` apart, the test DDL `(organisation_id,
//! last_modified_date_time)`. Runs are correct on either; the service names
//! a source table without the composite one, and its remedy adds it.

use etl_service::engine::source::indexes::{MissingIndex, missing_indexes};
use integration_tests::avni::{Size, Spec};
use integration_tests::etl::EtlFixture;
use tokio_postgres::Client;

fn spec() -> Spec {
    Spec {
        seed: 1818,
        organisations: 2,
        size: Size::SMALL,
        ..Spec::default()
    }
}

async fn missing(f: &EtlFixture) -> Vec<&'static str> {
    let mut conn = f.ctx.pool.get().await.expect("connection");
    missing_indexes(&mut conn)
        .await
        .expect("indexes read")
        .into_iter()
        .map(|MissingIndex { table }| table)
        .collect()
}

/// Replaces the test DDL's composite index on each source table by the two
/// avni-server creates.
async fn avni_indexes_only(client: &Client) {
    for t in [
        "individual",
        "program_enrolment",
        "program_encounter",
        "encounter",
        "address_level",
    ] {
        client
            .batch_execute(&format!(
                "DROP INDEX {t}_org_lmdt_idx; \
                 CREATE INDEX {t}_last_modified_time_idx ON {t} (last_modified_date_time); \
                 CREATE INDEX {t}_organisation_id__index ON {t} (organisation_id); ANALYZE {t}"
            ))
            .await
            .expect("indexes swapped");
    }
}

#[tokio::test]
async fn a_source_table_without_the_composite_index_is_named_and_its_remedy_adds_it() {
    let f = EtlFixture::new(&spec()).await;
    assert_eq!(
        missing(&f).await,
        Vec::<&str>::new(),
        "the test DDL's indexes serve"
    );

    avni_indexes_only(&f.client).await;
    f.client
        .batch_execute(
            "CREATE INDEX encounter_org_lmdt_partial ON encounter (organisation_id, last_modified_date_time) WHERE NOT is_voided",
        )
        .await
        .expect("a partial index");
    assert_eq!(
        missing(&f).await,
        vec![
            "individual",
            "program_enrolment",
            "program_encounter",
            "encounter",
            "address_level"
        ],
        "avni-server's separate indexes, or a partial one, are named"
    );

    let remedy = MissingIndex { table: "encounter" }.remedy();
    for _ in 0..2 {
        f.client
            .batch_execute(&remedy)
            .await
            .unwrap_or_else(|e| panic!("the remedy `{remedy}` runs (twice): {e}"));
    }
    assert_eq!(
        missing(&f).await,
        vec![
            "individual",
            "program_enrolment",
            "program_encounter",
            "address_level"
        ]
    );
}

#[tokio::test]
async fn runs_on_avni_server_indexes_sync_exactly_the_changes() {
    let f = EtlFixture::new(&spec()).await;
    avni_indexes_only(&f.client).await;
    let (org, other) = (f.org(0), f.org(1));
    let first = f.run_org(org).await;
    assert!(first.rows_upserted() > 0, "the full load writes rows");

    // The other organisation changes: nothing of this one's to sync.
    f.client
        .execute(
            "UPDATE individual SET last_modified_date_time = clock_timestamp() WHERE organisation_id = $1",
            &[&other.id],
        )
        .await
        .expect("other's change");
    let quiet = f.run_org(org).await;
    assert_eq!(quiet.rows_upserted() + quiet.rows_deleted(), 0);

    // Two of its own subjects change: exactly they are upserted.
    let changed = f
        .client
        .execute(
            "UPDATE individual SET last_modified_date_time = clock_timestamp() \
             WHERE id IN (SELECT id FROM individual WHERE organisation_id = $1 ORDER BY id LIMIT 2)",
            &[&org.id],
        )
        .await
        .expect("own change");
    assert_eq!(changed, 2);
    let run = f.run_org(org).await;
    let subject_rows: u64 = run
        .tables
        .iter()
        .filter(|t| t.kind == etl_service::engine::schema::layout::TableKind::Subject)
        .map(|t| t.rows_upserted)
        .sum();
    assert_eq!(subject_rows, 2, "{:#?}", run.tables);
}

#[tokio::test]
async fn a_table_behind_the_others_of_its_source_is_still_synced() {
    // The change probe asks once per source and organisation, bounded by
    // the first watermark it meets; a table of the same source whose
    // watermark is older must be asked about again, not answered from that.
    let f = EtlFixture::new(&spec()).await;
    let org = f.org(0);
    f.run_org(org).await;
    let behind: String = f
        .client
        .query_one(
            "UPDATE public.entity_sync_status s SET last_sync_time = '1900-01-01' \
               FROM public.table_metadata t \
              WHERE t.id = s.table_metadata_id AND t.schema_name = $1 AND t.id = ( \
                    SELECT max(id) FROM public.table_metadata \
                     WHERE schema_name = $1 AND type IN ('Individual', 'Person', 'Household', 'Group')) \
             RETURNING t.name::text",
            &[&org.schema_name],
        )
        .await
        .expect("one subject table set back")
        .get(0);
    let run = f.run_org(org).await;
    for t in &run.tables {
        if t.name == behind {
            assert!(t.rows_upserted > 0, "{behind} is synced again: {t:?}");
        } else {
            assert_eq!(t.rows_upserted + t.rows_deleted, 0, "{t:?}");
        }
    }
}
