//! Implementers' own views and tables in a reporting schema (issue 14): on
//! Avni the organisation's role owns its schema and implementers create
//! dashboard views and scratch tables there, which the metadata does not
//! describe. They survive every run and never make one fail: a table of
//! theirs with the name a reporting table or view would take keeps it (the
//! reporting table is named otherwise, and ValidateNames says so), and a
//! view of theirs on the reporting tables and views lives through the
//! schema changes that rebuild those views.

use etl_service::engine::schema::name_check::{self, ProblemKind};
use etl_service::engine::{self, RunOptions};
use integration_tests::avni::{Org, Size, Spec, evolve};
use integration_tests::etl::{EtlFixture, org_ref, table_name};
use service_kit::sql::{quote_ident, quote_qualified};
use tokio_postgres::Client;

fn spec() -> Spec {
    Spec {
        seed: 1414,
        organisations: 1,
        size: Size {
            subjects_per_type: 2,
            encounters_per_enrolment: 1,
            encounters_per_subject: 1,
        },
        ..Spec::default()
    }
}

/// The organisation's schema as Avni makes it: owned by its role.
async fn avni_schema(client: &Client, org: &Org) {
    let exists = client
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&org.db_user])
        .await
        .expect("role")
        .is_some();
    if !exists {
        client
            .batch_execute(&format!(
                "CREATE ROLE {} NOLOGIN",
                quote_ident(&org.db_user)
            ))
            .await
            .expect("role");
    }
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {s} AUTHORIZATION {r}; GRANT ALL PRIVILEGES ON SCHEMA {s} TO {r};",
            s = quote_ident(&org.schema_name),
            r = quote_ident(&org.db_user)
        ))
        .await
        .expect("schema");
}

/// Runs `sql` as the organisation's role, as an implementer would.
async fn as_implementer(client: &Client, org: &Org, sql: &str) {
    client
        .batch_execute(&format!(
            "SET ROLE {}; {sql}; RESET ROLE;",
            quote_ident(&org.db_user)
        ))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn count(client: &Client, schema: &str, relation: &str) -> i64 {
    client
        .query_one(
            &format!("SELECT count(*) FROM {}", quote_qualified(schema, relation)),
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("{relation}: {e}"))
        .get(0)
}

/// The name of the Person subject type's reporting table.
async fn person_table(client: &Client, org: &Org) -> String {
    let uuid = org.bundle.subject_type("person").uuid.clone();
    table_name(client, &org.schema_name, "Person", Some(&uuid), None, None).await
}

async fn people(client: &Client, org: &Org) -> i64 {
    client
        .query_one(
            &format!(
                "SELECT people FROM {}",
                quote_qualified(&org.schema_name, "my_people")
            ),
            &[],
        )
        .await
        .expect("my_people")
        .get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_implementers_tables_keep_their_names_and_the_runs_name_theirs_otherwise() {
    let f = EtlFixture::new(&spec()).await;
    let org = f.org(0).clone();
    avni_schema(&f.client, &org).await;
    let s = quote_ident(&org.schema_name);
    // Tables with the names the Person subject table and a reporting view
    // would take, made before the first run.
    as_implementer(
        &f.client,
        &org,
        &format!(
            "CREATE TABLE {s}.person (note text); INSERT INTO {s}.person VALUES ('mine'); \
             CREATE TABLE {s}.subject_view (note text)"
        ),
    )
    .await;

    // ValidateNames says the subject type's table cannot be called person.
    let (_, plan) = engine::plan_entity(&f.ctx, org_ref(&org))
        .await
        .expect("plan");
    let problems = name_check::check_plan(&plan);
    let clash = problems
        .iter()
        .find(|p| p.kind == ProblemKind::ExistingRelation && p.message.contains("person"))
        .unwrap_or_else(|| panic!("no clash with the implementer's person reported: {problems:?}"));
    assert_ne!(clash.table_name, "person");

    for _ in 0..2 {
        f.run_org(&org).await;
    }
    let ours = person_table(&f.client, &org).await;
    assert_ne!(ours, "person", "the reporting table is named otherwise");
    assert_eq!(clash.table_name, ours, "as ValidateNames said");
    assert!(count(&f.client, &org.schema_name, &ours).await > 0);
    let mine: Vec<String> = f
        .client
        .query(&format!("SELECT note FROM {s}.person"), &[])
        .await
        .expect("the implementer's table")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(mine, vec!["mine".to_string()]);
    assert_eq!(count(&f.client, &org.schema_name, "subject_view").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_implementers_views_on_the_reporting_tables_and_views_survive_every_run() {
    let f = EtlFixture::new(&spec()).await;
    let org = f.org(0).clone();
    avni_schema(&f.client, &org).await;
    f.run_org(&org).await;
    let s = quote_ident(&org.schema_name);
    let person = person_table(&f.client, &org).await;
    as_implementer(
        &f.client,
        &org,
        &format!(
            "CREATE VIEW {s}.my_people AS SELECT count(*) AS people FROM {}; \
             CREATE VIEW {s}.my_subjects AS SELECT * FROM {s}.subject_view; \
             CREATE TABLE {s}.my_notes (note text)",
            quote_qualified(&org.schema_name, &person)
        ),
    )
    .await;
    let people_before = people(&f.client, &org).await;
    assert!(people_before > 0);
    let subjects = count(&f.client, &org.schema_name, "my_subjects").await;

    // Schema changes: a new question (the views gain a column), a renamed
    // subject type (tables and view texts change), a forced rebuild of
    // the rows.
    evolve::add_question(
        &f.client,
        &org,
        "registration:person",
        "00000000-0000-4000-8000-000000001414",
        "Implementer question",
        "Text",
    )
    .await;
    f.run_org(&org).await;
    evolve::rename_subject_type(&f.client, &org, "person", "Villager").await;
    f.run_org(&org).await;
    f.run(org_ref(&org), &RunOptions::default())
        .await
        .expect("another run");

    assert_eq!(people(&f.client, &org).await, people_before);
    assert_eq!(
        count(&f.client, &org.schema_name, "my_subjects").await,
        subjects
    );
    assert_eq!(count(&f.client, &org.schema_name, "my_notes").await, 0);
}

/// A reporting view an implementer's view depends on, which PostgreSQL
/// cannot replace in place (here: the replacement would drop a column),
/// is kept as it was and the run goes on.
#[tokio::test(flavor = "multi_thread")]
async fn a_depended_on_view_that_cannot_be_replaced_is_kept_and_the_run_succeeds() {
    let f = EtlFixture::new(&spec()).await;
    let org = f.org(0).clone();
    avni_schema(&f.client, &org).await;
    f.run_org(&org).await;
    let view = quote_qualified(&org.schema_name, "subject_view");
    let definition: String = f
        .client
        .query_one(&format!("SELECT pg_get_viewdef('{view}'::regclass)"), &[])
        .await
        .expect("definition")
        .get(0);
    // Ours, with one more column at the end and an older tag, so the next
    // run wants to replace it by a definition without that column.
    f.client
        .batch_execute(&format!(
            "CREATE OR REPLACE VIEW {view} AS SELECT q.*, 1 AS extra FROM ({}) q; \
             COMMENT ON VIEW {view} IS 'etl-service view v0 older'",
            definition.trim().trim_end_matches(';')
        ))
        .await
        .expect("an older shape of subject_view");
    let s = quote_ident(&org.schema_name);
    as_implementer(
        &f.client,
        &org,
        &format!("CREATE VIEW {s}.my_extra AS SELECT extra FROM {view}"),
    )
    .await;
    f.run_org(&org).await;
    let extra: i64 = f
        .client
        .query_one(
            "SELECT count(*) FROM information_schema.columns \
             WHERE table_schema = $1 AND table_name = 'subject_view' AND column_name = 'extra'",
            &[&org.schema_name],
        )
        .await
        .expect("columns")
        .get(0);
    assert_eq!(extra, 1, "subject_view is kept as it was");
    assert_eq!(
        count(&f.client, &org.schema_name, "my_extra").await,
        count(&f.client, &org.schema_name, "subject_view").await
    );
}
