//! An organisation group with two members: one schema holding both
//! members' rows, each member's incremental window kept separately.

use integration_tests::avni::{Size, Spec};
use integration_tests::etl::{EtlFixture, group_ref};
use service_kit::sql::quote_qualified;
use tokio_postgres::Client;

async fn count(client: &Client, sql: &str) -> i64 {
    client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{e}\n{sql}"))
        .get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn one_schema_holds_both_members_with_separate_windows() {
    let f = EtlFixture::new(&Spec {
        seed: 31,
        organisations: 0,
        group_members: 2,
        ..Spec::default()
    })
    .await;
    let group = f.world.group.clone().expect("a group");
    let (a, b) = (&group.members[0], &group.members[1]);
    let client = &f.client;
    let schema = group.schema_name.as_str();
    let entity = group_ref(&group.uuid);
    let options = Default::default();

    let first = f.run(entity, &options).await.expect("group run");
    assert_eq!(first.schema_name, schema);
    let person = quote_qualified(schema, "person");
    let per_member: Vec<(i32, i64)> = client
        .query(
            &format!("SELECT organisation_id, count(*) FROM {person} GROUP BY 1 ORDER BY 1"),
            &[],
        )
        .await
        .expect("rows by member")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let subjects = Size::SMALL.subjects_per_type;
    assert_eq!(per_member, vec![(a.id, subjects), (b.id, subjects)]);
    let encounters = count(
        client,
        &format!(
            "SELECT count(DISTINCT organisation_id) FROM {}",
            quote_qualified(schema, "person_pregnancy_anc")
        ),
    )
    .await;
    assert_eq!(encounters, 2, "program encounters of both members");
    // Only the group's schema is written, not the members' own.
    let member_schemas = count(
        client,
        &format!(
            "SELECT count(*) FROM pg_namespace WHERE nspname IN ('{}', '{}')",
            a.schema_name, b.schema_name
        ),
    )
    .await;
    assert_eq!(member_schemas, 0);

    // One watermark per table and member.
    let windows: Vec<(String, i64)> = client
        .query(
            "SELECT s.db_user, count(*) FROM entity_sync_status s JOIN table_metadata t ON t.id = s.table_metadata_id \
             WHERE t.schema_name = $1 GROUP BY 1 ORDER BY 1",
            &[&schema],
        )
        .await
        .expect("windows")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let tables = first.tables.len() as i64;
    assert_eq!(
        windows,
        vec![(a.db_user.clone(), tables), (b.db_user.clone(), tables)]
    );

    // An edit in member A moves only A's row.
    client
        .execute(
            "UPDATE individual SET first_name = 'Edited', last_modified_date_time = clock_timestamp() \
             WHERE id = (SELECT min(id) FROM individual WHERE organisation_id = $1 AND subject_type_id = $2)",
            &[&a.id, &a.subject_type_id("person")],
        )
        .await
        .expect("edit in A");
    let children: i64 = client
        .query_one(
            "SELECT coalesce(jsonb_array_length(observations -> $3), 0)::bigint FROM individual \
             WHERE id = (SELECT min(id) FROM individual WHERE organisation_id = $1 AND subject_type_id = $2)",
            &[&a.id, &a.subject_type_id("person"), &a.bundle.concept("children").uuid],
        )
        .await
        .expect("children")
        .get(0);
    let second = f.run(entity, &options).await.expect("second run");
    for t in &second.tables {
        let expected = match t.name.as_str() {
            "person" => 1,
            // The subject's repeatable groups are rewritten with it.
            "person_children" => children as u64,
            _ => 0,
        };
        assert_eq!(t.rows_upserted, expected, "{}", t.name);
    }

    // Resetting member B's window (the documented manual procedure)
    // re-syncs B's rows only; A's window is untouched.
    client
        .execute(
            "SELECT delete_etl_metadata_for_org($1, $2)",
            &[&schema, &b.db_user],
        )
        .await
        .expect("reset B");
    let third = f.run(entity, &options).await.expect("third run");
    let person_table = third
        .tables
        .iter()
        .find(|t| t.name == "person")
        .expect("person table");
    assert_eq!(
        person_table.rows_upserted as i64, subjects,
        "only B's subjects"
    );
    let b_rows = count(
        client,
        &format!(
            "SELECT count(*) FROM {} WHERE organisation_id = {}",
            quote_qualified(schema, "address"),
            b.id
        ),
    )
    .await;
    let address = third
        .tables
        .iter()
        .find(|t| t.name == "address")
        .expect("address table");
    assert_eq!(address.rows_upserted as i64, b_rows);
    assert_eq!(
        f.run(entity, &options)
            .await
            .expect("quiet")
            .rows_upserted(),
        0
    );

    // The group's role and both members' roles read the group's schema.
    for role in [&group.db_user, &a.db_user, &b.db_user] {
        client
            .batch_execute(&format!("SET ROLE {}", service_kit::sql::quote_ident(role)))
            .await
            .expect("set role");
        let n = count(client, &format!("SELECT count(*) FROM {person}")).await;
        assert_eq!(n, 2 * subjects, "{role}");
        client
            .batch_execute("RESET ROLE")
            .await
            .expect("reset role");
    }
}

/// Two members of a group with one `db_user` (the source allows it) each
/// keep a window of their own: the second member's rows are synced too, on
/// the first run and after an edit (issue #18.1: watermarks keyed by
/// db_user lost the second member's rows while the run reported success).
#[tokio::test(flavor = "multi_thread")]
async fn members_sharing_a_db_user_both_get_their_rows() {
    let f = EtlFixture::new(&Spec {
        seed: 37,
        organisations: 0,
        group_members: 2,
        ..Spec::default()
    })
    .await;
    let group = f.world.group.clone().expect("a group");
    let (a, b) = (&group.members[0], &group.members[1]);
    let client = &f.client;
    client
        .execute(
            "UPDATE organisation SET db_user = $1 WHERE id = $2",
            &[&a.db_user, &b.id],
        )
        .await
        .expect("share a's db_user");
    let schema = group.schema_name.as_str();
    let entity = group_ref(&group.uuid);
    let options = Default::default();
    f.run(entity, &options).await.expect("group run");
    let person = quote_qualified(schema, "person");
    let per_member = |sql: String| async move {
        client
            .query(&sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{e}\n{sql}"))
            .iter()
            .map(|r| (r.get::<_, i32>(0), r.get::<_, i64>(1)))
            .collect::<Vec<_>>()
    };
    let subjects = Size::SMALL.subjects_per_type;
    let by_org = format!("SELECT organisation_id, count(*) FROM {person} GROUP BY 1 ORDER BY 1");
    assert_eq!(
        per_member(by_org.clone()).await,
        vec![(a.id, subjects), (b.id, subjects)],
        "both members' subjects after the first run"
    );

    // An edit in member B arrives although A synced the table after it.
    client
        .execute(
            "UPDATE individual SET first_name = 'Edited in B', last_modified_date_time = clock_timestamp() \
             WHERE id = (SELECT min(id) FROM individual WHERE organisation_id = $1 AND subject_type_id = $2)",
            &[&b.id, &b.subject_type_id("person")],
        )
        .await
        .expect("edit in B");
    f.run(entity, &options).await.expect("second run");
    let edited = count(
        client,
        &format!(
            "SELECT count(*) FROM {person} WHERE organisation_id = {} AND first_name = 'Edited in B'",
            b.id
        ),
    )
    .await;
    assert_eq!(edited, 1, "B's edit synced");
}
