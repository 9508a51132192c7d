//! A schema the service did not create (issue #18.2): when
//! `organisation.schema_name` names one that already holds another
//! application's objects, a run, RecreateSchema and its drop-only form
//! refuse with FAILED_PRECONDITION naming the schema, and leave it exactly
//! as it was: its tables, rows and grants.

use etl_service::engine::{self, LockMode, RunOptions};
use integration_tests::avni::Spec;
use integration_tests::etl::{EtlFixture, org_ref};
use service_kit::sql::{quote_ident, quote_qualified};
use tokio_postgres::Client;

/// Everything that must not change: the schema's ACL and owner, and each
/// relation's name, kind, ACL and row count.
async fn fingerprint(client: &Client, schema: &str) -> Vec<String> {
    let mut out: Vec<String> = client
        .query(
            "SELECT n.nspname || ' ' || pg_get_userbyid(n.nspowner) || ' ' || coalesce(n.nspacl::text, '') \
             FROM pg_namespace n WHERE n.nspname = $1",
            &[&schema],
        )
        .await
        .expect("schema")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let relations: Vec<(String, String)> = client
        .query(
            "SELECT c.relname::text, c.relkind::text || ' ' || coalesce(c.relacl::text, '') \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 ORDER BY 1",
            &[&schema],
        )
        .await
        .expect("relations")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (name, rest) in relations {
        let rows = if rest.starts_with('r') {
            let n: i64 = client
                .query_one(
                    &format!("SELECT count(*) FROM {}", quote_qualified(schema, &name)),
                    &[],
                )
                .await
                .expect("count")
                .get(0);
            n.to_string()
        } else {
            String::new()
        };
        out.push(format!("{name} {rest} {rows}"));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_and_recreate_refuse_a_schema_the_service_did_not_create() {
    let f = EtlFixture::new(&Spec {
        seed: 71,
        ..Spec::default()
    })
    .await;
    let org = f.org(0);
    let schema = org.schema_name.as_str();
    let q = quote_ident(schema);
    f.client
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS etl_test_other_app; CREATE ROLE etl_test_other_app; \
             CREATE SCHEMA {q}; \
             CREATE TABLE {q}.invoices (id int PRIMARY KEY, amount numeric); \
             INSERT INTO {q}.invoices VALUES (1, 10), (2, 20); \
             CREATE VIEW {q}.person AS SELECT id FROM {q}.invoices; \
             GRANT USAGE ON SCHEMA {q} TO PUBLIC; \
             GRANT SELECT ON {q}.invoices TO etl_test_other_app;"
        ))
        .await
        .expect("another application's schema");
    let before = fingerprint(&f.client, schema).await;

    let refused = |e: etl_service::Error, what: &str| {
        let status = tonic::Status::from(e);
        assert_eq!(
            status.code(),
            tonic::Code::FailedPrecondition,
            "{what}: {status:?}"
        );
        assert!(
            status.message().contains(schema),
            "{what} names the schema: {}",
            status.message()
        );
    };
    let run = f.run(org_ref(org), &RunOptions::default()).await;
    refused(run.expect_err("a run refuses"), "run");
    let recreate = f
        .run(
            org_ref(org),
            &RunOptions {
                recreate: true,
                ..RunOptions::default()
            },
        )
        .await;
    refused(recreate.expect_err("RecreateSchema refuses"), "recreate");
    let dropped = engine::drop_schema(&f.ctx, org_ref(org), LockMode::Wait).await;
    refused(dropped.expect_err("the drop refuses"), "drop");

    assert_eq!(
        fingerprint(&f.client, schema).await,
        before,
        "left exactly as it was"
    );
    let metadata: i64 = f
        .client
        .query_one(
            "SELECT count(*) FROM public.table_metadata WHERE schema_name = $1",
            &[&schema],
        )
        .await
        .expect("metadata")
        .get(0);
    assert_eq!(metadata, 0, "no metadata written for it");
}

/// An empty schema (as avni-server's `create_implementation_schema` makes
/// one for every new organisation) is the organisation's and is used.
#[tokio::test(flavor = "multi_thread")]
async fn an_empty_existing_schema_is_used() {
    let f = EtlFixture::new(&Spec {
        seed: 72,
        ..Spec::default()
    })
    .await;
    let org = f.org(0);
    f.client
        .batch_execute(&format!("CREATE SCHEMA {}", quote_ident(&org.schema_name)))
        .await
        .expect("empty schema");
    let report = f.run_org(org).await;
    assert!(!report.tables.is_empty());
}

/// An organisation's schema as Avni makes it (owned by its `db_user`),
/// with an implementer's table made before the first run, is used, and the
/// implementer's table is kept.
#[tokio::test(flavor = "multi_thread")]
async fn a_schema_owned_by_the_organisations_role_is_used() {
    let f = EtlFixture::new(&Spec {
        seed: 73,
        ..Spec::default()
    })
    .await;
    let org = f.org(0);
    let q = quote_ident(&org.schema_name);
    let owner = quote_ident(&org.db_user);
    f.client
        .batch_execute(&format!(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {}) THEN \
             CREATE ROLE {owner}; END IF; END $$; \
             CREATE SCHEMA {q} AUTHORIZATION {owner}; \
             CREATE TABLE {q}.implementers_notes (note text); \
             ALTER TABLE {q}.implementers_notes OWNER TO {owner}; \
             INSERT INTO {q}.implementers_notes VALUES ('kept')",
            service_kit::sql::quote_literal(&org.db_user)
        ))
        .await
        .expect("Avni's schema with an implementer's table");
    let report = f.run_org(org).await;
    assert!(!report.tables.is_empty());
    let note: String = f
        .client
        .query_one(&format!("SELECT note FROM {q}.implementers_notes"), &[])
        .await
        .expect("the implementer's table")
        .get(0);
    assert_eq!(note, "kept");
}
