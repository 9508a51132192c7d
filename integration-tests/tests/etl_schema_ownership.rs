//! Reporting schemas owned as Avni makes them (issue 14.7): avni-server's
//! `create_implementation_schema` makes an organisation's schema owned by
//! its `db_user`, with ALL on it, and avni-etl does the same for a group
//! (owned by the group's role, ALL for every member's); implementers create
//! their own dashboard views there. The first run keeps such a schema as it
//! is, creates a missing one the same way, and RecreateSchema (the RPC's
//! drop, and a run with `recreate`) gives the schema back to the same
//! owner, so the organisation's role can still create objects in it.

use etl_service::engine::{self, LockMode, RunOptions};
use integration_tests::avni::{Size, Spec};
use integration_tests::etl::{EtlFixture, group_ref, org_ref};
use service_kit::sql::{quote_ident, quote_qualified};
use tokio_postgres::Client;

fn spec(group_members: usize) -> Spec {
    Spec {
        seed: 1407,
        organisations: 1,
        group_members,
        size: Size {
            subjects_per_type: 2,
            encounters_per_enrolment: 1,
            encounters_per_subject: 1,
        },
        ..Spec::default()
    }
}

async fn owner_of(client: &Client, schema: &str) -> String {
    client
        .query_one(
            "SELECT pg_get_userbyid(nspowner)::text FROM pg_namespace WHERE nspname = $1",
            &[&schema],
        )
        .await
        .unwrap_or_else(|e| panic!("schema {schema}: {e}"))
        .get(0)
}

/// Whether `role` may create objects in `schema` (and use it).
async fn may_create(client: &Client, role: &str, schema: &str) -> bool {
    client
        .query_one(
            "SELECT has_schema_privilege($1, $2, 'CREATE') AND has_schema_privilege($1, $2, 'USAGE')",
            &[&role, &schema],
        )
        .await
        .expect("privilege")
        .get(0)
}

/// Creates a dashboard view as the organisation's role, as an implementer
/// would, on the reporting table `person`.
async fn implementer_view(client: &Client, role: &str, schema: &str, view: &str) {
    client
        .batch_execute(&format!(
            "SET ROLE {}; CREATE VIEW {} AS SELECT count(*) AS people FROM {}; RESET ROLE;",
            quote_ident(role),
            quote_qualified(schema, view),
            quote_qualified(schema, "person")
        ))
        .await
        .unwrap_or_else(|e| panic!("{role} creates a view in {schema}: {e}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_run_creates_the_schema_owned_by_the_organisations_role() {
    let f = EtlFixture::new(&spec(0)).await;
    let org = f.org(0).clone();
    f.run_org(&org).await;
    assert_eq!(owner_of(&f.client, &org.schema_name).await, org.db_user);
    assert!(may_create(&f.client, &org.db_user, &org.schema_name).await);
    implementer_view(&f.client, &org.db_user, &org.schema_name, "my_dashboard").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schema_avni_made_keeps_its_owner_through_runs_and_recreates() {
    let f = EtlFixture::new(&spec(0)).await;
    let org = f.org(0).clone();
    // As avni-server's create_implementation_schema makes it (the role
    // may be left by another test: roles are cluster-wide).
    let exists = f
        .client
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&org.db_user])
        .await
        .expect("role")
        .is_some();
    if !exists {
        f.client
            .batch_execute(&format!(
                "CREATE ROLE {} NOLOGIN",
                quote_ident(&org.db_user)
            ))
            .await
            .expect("role");
    }
    f.client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema} AUTHORIZATION {role}; \
             GRANT ALL PRIVILEGES ON SCHEMA {schema} TO {role};",
            role = quote_ident(&org.db_user),
            schema = quote_ident(&org.schema_name)
        ))
        .await
        .expect("the schema as Avni makes it");
    f.run_org(&org).await;
    assert_eq!(owner_of(&f.client, &org.schema_name).await, org.db_user);

    // RecreateSchema's drop (the RPC): the schema comes back, its owner's.
    engine::drop_schema(&f.ctx, org_ref(&org), LockMode::Wait)
        .await
        .expect("drop");
    assert_eq!(owner_of(&f.client, &org.schema_name).await, org.db_user);
    assert!(may_create(&f.client, &org.db_user, &org.schema_name).await);

    // The rebuild, and a run with recreate.
    f.run_org(&org).await;
    let options = RunOptions {
        recreate: true,
        ..RunOptions::default()
    };
    f.run(org_ref(&org), &options).await.expect("recreate run");
    assert_eq!(owner_of(&f.client, &org.schema_name).await, org.db_user);
    implementer_view(&f.client, &org.db_user, &org.schema_name, "after_recreate").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_groups_schema_is_owned_by_the_groups_role_and_open_to_its_members() {
    let f = EtlFixture::new(&spec(2)).await;
    let group = f.world.group.clone().expect("a group");
    f.run(group_ref(&group.uuid), &RunOptions::default())
        .await
        .expect("group run");
    assert_eq!(owner_of(&f.client, &group.schema_name).await, group.db_user);
    for role in std::iter::once(&group.db_user).chain(group.members.iter().map(|m| &m.db_user)) {
        assert!(
            may_create(&f.client, role, &group.schema_name).await,
            "{role} has ALL on the group's schema, as avni-etl grants it"
        );
    }
}

/// The service's role cannot make itself a member of the organisation's
/// role (no CREATEROLE, not granted it): the run fails with a message
/// naming the grant to make, and writes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_service_role_that_cannot_own_the_schema_as_the_organisation_is_told_why() {
    let role = format!("etl_norole_{}", uuid::Uuid::new_v4().simple());
    let org_role = format!("etl_org_norole_{}", uuid::Uuid::new_v4().simple());
    let _drop_roles = integration_tests::postgres::DropRoles {
        names: vec![role.clone(), org_role.clone()],
        ending_with: None,
    };
    let db = integration_tests::postgres::TestDatabase::new().await;
    let su = db.client().await;
    su.batch_execute(&format!(
        "CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEROLE; CREATE ROLE {org_role} NOLOGIN; \
         ALTER DATABASE {} OWNER TO {role};",
        quote_ident(&db.name)
    ))
    .await
    .expect("roles");
    let url = integration_tests::avni_server::with_user(&db.url, &role);
    service_kit::db::run_pending_migrations(&url, etl_service::migrations::migrations())
        .await
        .expect("migrations as the service's role");
    let world = integration_tests::avni::generate(&su, &spec(0)).await;
    let org = world.organisations[0].clone();
    su.execute(
        "UPDATE organisation SET db_user = $1 WHERE id = $2",
        &[&org_role, &org.id],
    )
    .await
    .expect("db_user");
    let tables: Vec<String> = su
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' AND tableowner <> $1",
            &[&role],
        )
        .await
        .expect("tables")
        .iter()
        .map(|r| r.get(0))
        .collect();
    for t in tables {
        su.batch_execute(&format!(
            "GRANT SELECT ON public.{} TO {}",
            quote_ident(&t),
            quote_ident(&role)
        ))
        .await
        .expect("grant");
    }
    let ctx = integration_tests::etl::context(&url);
    let err = engine::run_entity(
        &ctx,
        org_ref(&org),
        &RunOptions::default(),
        &engine::NoProgress,
    )
    .await
    .expect_err("the service's role is not a member of the organisation's");
    let message = err.to_string();
    eprintln!("refused: {message}");
    assert!(
        matches!(err, etl_service::Error::FailedPrecondition(_)),
        "{err:?}"
    );
    assert!(
        message.contains(&org_role) && message.contains("grant"),
        "{message}"
    );
    let schema = su
        .query_opt(
            "SELECT 1 FROM pg_namespace WHERE nspname = $1",
            &[&org.schema_name],
        )
        .await
        .expect("namespace");
    assert!(schema.is_none(), "no schema was made");
}
