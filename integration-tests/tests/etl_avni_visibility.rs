//! Metadata read as Avni shows it to an organisation (issue: the ETL on a
//! real Avni database): a child organisation's run reads the reference data
//! it shares with its parent, questions an organisation switched off are not
//! columns, the columns avni-server leaves NULL do not fail a run, and an
//! organisation the service's role cannot see is named as such.

use integration_tests::avni::{Size, Spec};
use integration_tests::etl::{EtlFixture, org_ref, rows};
use integration_tests::postgres::{DropRoles, connect, server_url};
use serde_json::Value;
use service_kit::sql::quote_ident;
use std::collections::BTreeMap;
use tokio_postgres::Client;

/// Avni's reference tables: shared down the organisation tree (its RLS
/// shows them to an organisation's descendants). The address tables stay
/// with the child here; a child's address table with its ancestors'
/// locations is tested in etl_on_avni_server.rs.
const REFERENCE_TABLES: &[&str] = &[
    "concept",
    "concept_answer",
    "gender",
    "subject_type",
    "operational_subject_type",
    "program",
    "operational_program",
    "encounter_type",
    "operational_encounter_type",
    "form",
    "form_mapping",
    "form_element_group",
    "form_element",
];

fn spec(organisations: usize) -> Spec {
    Spec {
        seed: 1414,
        organisations,
        size: Size::SMALL,
        ..Spec::default()
    }
}

/// Every reporting table of the schema with its rows.
async fn schema_rows(client: &Client, schema: &str) -> BTreeMap<String, Vec<Value>> {
    let tables = client
        .query(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = $1 AND table_type = 'BASE TABLE'",
            &[&schema],
        )
        .await
        .expect("tables");
    let mut all = BTreeMap::new();
    for t in tables {
        let name: String = t.get(0);
        let found = rows(client, schema, &name).await;
        all.insert(name, found);
    }
    all
}

/// The question columns of the subject tables of a schema (not their
/// programs', encounters' or repeatable groups'), by concept uuid.
async fn concept_columns(client: &Client, schema: &str, subject_type: &str) -> Vec<String> {
    client
        .query(
            "SELECT DISTINCT c.concept_uuid FROM column_metadata c \
             JOIN table_metadata t ON t.id = c.table_id \
             WHERE t.schema_name = $1 AND c.concept_uuid IS NOT NULL \
               AND t.program_uuid IS NULL AND t.encounter_type_uuid IS NULL \
               AND t.repeatable_question_group_concept_uuid IS NULL \
               AND t.type IN ('Individual', 'Person', 'Household', 'Group') \
               AND t.subject_type_uuid = $2",
            &[&schema, &subject_type],
        )
        .await
        .expect("columns")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_child_organisation_reads_the_metadata_it_shares_with_its_parent() {
    let f = EtlFixture::new(&spec(1)).await;
    let child = f.org(0).clone();
    f.run_org(&child).await;
    let standalone = schema_rows(&f.client, &child.schema_name).await;
    assert!(standalone.len() > 5, "{:?}", standalone.keys());

    // The child's forms, subject types, programs and concepts become its
    // parent's, as when an implementation shares them from a parent
    // organisation; its subjects, enrolments and encounters stay its own.
    etl_service::engine::drop_schema(&f.ctx, org_ref(&child), Default::default())
        .await
        .expect("drop the child's schema");
    let parent: i32 = f
        .client
        .query_one(
            "INSERT INTO organisation (uuid, name, db_user, schema_name) \
             VALUES (gen_random_uuid()::text, 'Parent of ' || $1, 'parent_' || $2, 'parent_' || $2) \
             RETURNING id",
            &[&child.name, &child.schema_name],
        )
        .await
        .expect("parent")
        .get(0);
    for table in REFERENCE_TABLES {
        f.client
            .execute(
                &format!(
                    "UPDATE public.{} SET organisation_id = $1 WHERE organisation_id = $2",
                    quote_ident(table)
                ),
                &[&parent, &child.id],
            )
            .await
            .unwrap_or_else(|e| panic!("{table}: {e}"));
    }
    f.client
        .execute(
            "UPDATE organisation SET parent_organisation_id = $1 WHERE id = $2",
            &[&parent, &child.id],
        )
        .await
        .expect("parent");

    let report = f.run_org(&child).await;
    let shared = schema_rows(&f.client, &child.schema_name).await;
    assert_eq!(
        shared.keys().collect::<Vec<_>>(),
        standalone.keys().collect::<Vec<_>>(),
        "the same tables as when the metadata was the child's own"
    );
    assert_eq!(shared, standalone, "and the same rows");
    assert!(report.rows_upserted() > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_question_the_organisation_switched_off_is_not_a_column() {
    let f = EtlFixture::new(&spec(1)).await;
    let org = f.org(0).clone();
    // A plain question of a registration form.
    let row = f
        .client
        .query_one(
            "SELECT fe.id::bigint, c.uuid, st.uuid FROM form_element fe \
             JOIN concept c ON c.id = fe.concept_id \
             JOIN form_element_group feg ON feg.id = fe.form_element_group_id \
             JOIN form ON form.id = feg.form_id \
             JOIN form_mapping fm ON fm.form_id = form.id \
             JOIN subject_type st ON st.id = fm.subject_type_id \
             WHERE form.form_type = 'IndividualProfile' AND fe.group_id IS NULL \
               AND c.data_type = 'Numeric' AND fe.organisation_id = $1 \
             ORDER BY fe.id LIMIT 1",
            &[&org.id],
        )
        .await
        .expect("a question");
    let (element, concept, subject_type): (i64, String, String) =
        (row.get(0), row.get(1), row.get(2));
    let switch_off = |voided: bool| {
        let client = &f.client;
        let org_id = i64::from(org.id);
        async move {
            client
                .execute("DELETE FROM non_applicable_form_element", &[])
                .await
                .expect("clear");
            client
                .execute(
                    "INSERT INTO non_applicable_form_element (uuid, organisation_id, form_element_id, is_voided) \
                     VALUES (gen_random_uuid()::text, $1, $2, $3)",
                    &[&org_id, &element, &voided],
                )
                .await
                .expect("switch off");
        }
    };

    switch_off(true).await;
    f.run_org(&org).await;
    assert!(
        concept_columns(&f.client, &org.schema_name, &subject_type)
            .await
            .contains(&concept),
        "a voided switch-off leaves the question on"
    );

    etl_service::engine::drop_schema(&f.ctx, org_ref(&org), Default::default())
        .await
        .expect("drop");
    switch_off(false).await;
    f.run_org(&org).await;
    assert!(
        !concept_columns(&f.client, &org.schema_name, &subject_type)
            .await
            .contains(&concept),
        "the switched-off question has no column"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn columns_avni_server_leaves_null_do_not_fail_the_run() {
    let f = EtlFixture::new(&spec(1)).await;
    let org = f.org(0).clone();
    let types = f
        .client
        .query(
            "SELECT id, uuid FROM subject_type WHERE organisation_id = $1 ORDER BY id",
            &[&org.id],
        )
        .await
        .expect("subject types");
    assert!(types.len() >= 2);
    // Like organisation 1's "Individual": no type, no allow_middle_name.
    f.client
        .execute(
            "UPDATE subject_type SET type = NULL, allow_middle_name = NULL WHERE id = $1",
            &[&types[0].get::<_, i32>(0)],
        )
        .await
        .expect("nulls");
    let report = f.run_org(&org).await;
    let first: String = types[0].get(1);
    let tables = f
        .client
        .query(
            "SELECT name FROM table_metadata WHERE schema_name = $1 AND subject_type_uuid = $2 \
             AND type = 'Individual' AND program_uuid IS NULL AND encounter_type_uuid IS NULL",
            &[&org.schema_name, &first],
        )
        .await
        .expect("metadata");
    assert_eq!(
        tables.len(),
        1,
        "a subject type with no type is an Individual"
    );
    assert!(report.rows_upserted() > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_organisation_hidden_by_row_level_security_is_named_so() {
    let f = EtlFixture::new(&spec(1)).await;
    let org = f.org(0).clone();
    let role = format!("etl_rls_{}", uuid::Uuid::new_v4().simple());
    let _drop = DropRoles {
        names: vec![role.clone()],
        ending_with: None,
    };
    let admin = connect(server_url().await).await.expect("admin");
    admin
        .batch_execute(&format!("CREATE ROLE {role} LOGIN NOBYPASSRLS"))
        .await
        .expect("role");
    // As on a real Avni database: RLS on organisation, a role sees only the
    // organisation whose db_user it is.
    f.client
        .batch_execute(&format!(
            "ALTER TABLE organisation ENABLE ROW LEVEL SECURITY; \
             CREATE POLICY organisation_policy ON organisation USING (db_user = current_user); \
             GRANT USAGE ON SCHEMA public TO {role}; \
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}; \
             GRANT CONNECT ON DATABASE {} TO {role}",
            quote_ident(&f.db.name)
        ))
        .await
        .expect("rls");
    let url = f.db.url.replacen("://postgres@", &format!("://{role}@"), 1);
    assert_ne!(url, f.db.url, "the test URL names user postgres");
    let ctx = integration_tests::etl::context(&url);
    let error = etl_service::engine::run_entity(
        &ctx,
        org_ref(&org),
        &Default::default(),
        &etl_service::engine::NoProgress,
    )
    .await
    .expect_err("hidden");
    let message = error.to_string();
    assert!(
        message.contains(&format!("is not visible to role {role}")),
        "{message}"
    );
    assert!(message.contains("row-level security"), "{message}");

    // The owner sees it.
    f.run_org(&org).await;
}
