//! Crash safety: a failure in the middle of a run leaves every table either
//! at its old watermark with its old rows or at its new one with its new
//! rows; the next run completes, and the result equals a fresh full build.

use etl_service::engine::{self, NoProgress, RunOptions, faults};
use integration_tests::avni::Spec;
use integration_tests::etl::{EtlFixture, org_ref, snapshot};
use integration_tests::etl_faults::watermarks;

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_run_leaves_each_table_old_or_new_and_the_next_run_completes() {
    failed_run_on(1).await;
}

/// The same failure while tables are synced on two connections at once: the
/// tables before the failed one all finish and keep their new state, the
/// failed one keeps its old, and the tables after it that the other
/// connection took before the failure finish too: every table old or new.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_run_on_two_connections_leaves_each_table_old_or_new() {
    failed_run_on(2).await;
}

async fn failed_run_on(connections: usize) {
    let f = EtlFixture::new(&Spec {
        seed: 21,
        ..Spec::default()
    })
    .await;
    let org = f.org(0).clone();
    let client = &f.client;
    let s = org.schema_name.as_str();
    f.run_org(&org).await;

    // Change rows behind every table.
    let weight = org.bundle.concept("weight").uuid.clone();
    for table in [
        "individual",
        "program_enrolment",
        "program_encounter",
        "encounter",
    ] {
        client
            .execute(
                &format!(
                    "UPDATE {table} SET observations = jsonb_set(coalesce(observations, '{{}}'), ARRAY[$1], '1234.5'), \
                         last_modified_date_time = clock_timestamp() WHERE id % 2 = 0"
                ),
                &[&weight],
            )
            .await
            .expect("edit");
    }
    client
        .execute(
            "UPDATE address_level SET title = title || ' (renamed)', last_modified_date_time = clock_timestamp() \
             WHERE parent_id IS NULL",
            &[],
        )
        .await
        .expect("rename states");
    // And behind the users and sync telemetry tables.
    client
        .batch_execute(&format!(
            "UPDATE users SET name = 'renamed ' || username, last_modified_date_time = clock_timestamp() \
             WHERE organisation_id = {org}; \
             INSERT INTO sync_telemetry (uuid, user_id, organisation_id, sync_status, sync_start_time, \
                 created_date_time, last_modified_date_time) \
             SELECT 'crash-sync', min(id), {org}, 'complete', now(), now(), clock_timestamp() \
             FROM users WHERE organisation_id = {org}",
            org = org.id
        ))
        .await
        .expect("edit users and syncs");
    let old_rows = snapshot(client, s).await;
    let old_marks = watermarks(client, s).await;

    let total = old_rows.len();
    let fail_at = total / 2;
    let mut ctx = f.ctx.clone();
    ctx.settings.sync_connections = connections;
    let error = faults::fail_after_tables(
        fail_at,
        engine::run_entity(&ctx, org_ref(&org), &RunOptions::default(), &NoProgress),
    )
    .await
    .expect_err("the injected failure fails the run");
    assert!(error.to_string().contains("failure injected"), "{error}");
    let mid_rows = snapshot(client, s).await;
    let mid_marks = watermarks(client, s).await;

    let report = f.run_org(&org).await;
    let new_rows = snapshot(client, s).await;
    let new_marks = watermarks(client, s).await;

    let mut advanced_after = 0;
    for (position, table) in report.tables.iter().map(|t| &t.name).enumerate() {
        let (old, mid, new) = (&old_rows[table], &mid_rows[table], &new_rows[table]);
        if mid_marks[table] == old_marks[table] {
            assert_eq!(mid, old, "{table}: old watermark but not its old rows");
            assert!(
                position >= fail_at,
                "{table} synced before the failure kept its old state"
            );
        } else {
            assert_ne!(position, fail_at, "{table}, the failed table, advanced");
            if position > fail_at {
                advanced_after += 1;
            }
            assert_eq!(mid, new, "{table}: new watermark but not its new rows");
        }
        assert!(new_marks[table] >= mid_marks[table]);
    }
    // On one connection no table after the failed one starts; on more, the
    // ones the other connections took before the failure finish.
    if connections == 1 {
        assert_eq!(advanced_after, 0, "tables after the failure advanced");
    }
    assert_ne!(old_rows, new_rows, "the edits show in the final state");
    assert!(
        report.tables[fail_at..].iter().any(|t| t.rows_upserted > 0),
        "the next run picked up where the failed one stopped"
    );

    // A fresh full build of the same source gives the same rows.
    client
        .execute(
            "SELECT delete_etl_metadata_for_schema($1, $2, '')",
            &[&s, &org.db_user],
        )
        .await
        .expect("drop the schema and its metadata");
    f.run_org(&org).await;
    assert_eq!(snapshot(client, s).await, new_rows);
}

#[tokio::test(flavor = "multi_thread")]
async fn recreating_a_schema_rebuilds_it_under_the_lock() {
    let f = EtlFixture::new(&Spec {
        seed: 22,
        ..Spec::default()
    })
    .await;
    let org = f.org(0).clone();
    let client = &f.client;
    let s = org.schema_name.as_str();
    let first = f.run_org(&org).await;
    let built = snapshot(client, s).await;

    // Someone damages the schema by hand; recreating repairs it.
    client
        .batch_execute(&format!(
            "DELETE FROM {}",
            service_kit::sql::quote_qualified(s, "person")
        ))
        .await
        .expect("damage");
    let rebuilt = f
        .run(
            org_ref(&org),
            &RunOptions {
                recreate: true,
                ..RunOptions::default()
            },
        )
        .await
        .expect("recreate");
    assert_eq!(rebuilt.tables_dropped, first.tables.len());
    assert!(
        rebuilt
            .tables
            .iter()
            .all(|t| t.change == etl_service::engine::schema::schema_diff::TableChange::Created)
    );
    assert_eq!(snapshot(client, s).await, built);

    // Dropping without rebuilding leaves no metadata and an empty schema
    // (given back owned as Avni makes it); the next run rebuilds from
    // scratch.
    let dropped = etl_service::engine::drop_schema(
        &f.ctx,
        org_ref(&org),
        etl_service::engine::LockMode::Wait,
    )
    .await
    .expect("drop");
    assert_eq!(dropped.tables_dropped, first.tables.len());
    let left: i64 = client
        .query_one(
            "SELECT (SELECT count(*) FROM table_metadata) + (SELECT count(*) FROM column_metadata) \
             + (SELECT count(*) FROM entity_sync_status) \
             + (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1)",
            &[&s],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(left, 0);
    let schemas: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname = $1",
            &[&s],
        )
        .await
        .expect("schema")
        .get(0);
    assert_eq!(schemas, 1, "the schema is given back, empty");
    f.run_org(&org).await;
    assert_eq!(snapshot(client, s).await, built);
}
