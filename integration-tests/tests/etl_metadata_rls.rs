//! Avni's row-level security on the metadata tables where `migrate`
//! creates them (issue 14): on a database without avni-server's metadata
//! tables, `migrate` makes them with the policies avni-server has (the
//! avni-server fixture's `rls.sql`, written from avni-server's V1_214 and
//! V1_218): an organisation's role sees the `table_metadata` and
//! `column_metadata` rows of its own schema and the `entity_sync_status`
//! rows of its own db_user, nothing of another organisation's. On an empty
//! database (no `organisation` table to name) only `entity_sync_status`
//! gets its policy.

use etl_service::engine::{self, NoProgress, RunOptions};
use integration_tests::avni::{self, Size, Spec};
use integration_tests::avni_server::AvniServerDb;
use integration_tests::etl::{context, org_ref};
use integration_tests::postgres::{DropRoles, TestDatabase};
use service_kit::sql::quote_ident;
use tokio_postgres::Client;

const TABLES: [&str; 3] = ["table_metadata", "column_metadata", "entity_sync_status"];

/// Each metadata table's RLS and policies (name, command, USING, WITH
/// CHECK) as PostgreSQL shows them.
async fn policies(client: &Client) -> Vec<String> {
    client
        .query(
            "SELECT format('%s rls=%s', c.relname, c.relrowsecurity) FROM pg_class c \
             WHERE c.relnamespace = 'public'::regnamespace AND c.relname = ANY($1) \
             UNION ALL \
             SELECT format('%s %s %s %s %s', tablename, policyname, cmd, qual, with_check) \
             FROM pg_policies WHERE schemaname = 'public' AND tablename = ANY($1) ORDER BY 1",
            &[&TABLES.to_vec()],
        )
        .await
        .expect("policies")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn migrate(url: &str) -> Vec<String> {
    service_kit::db::run_pending_migrations(url, etl_service::migrations::migrations())
        .await
        .unwrap_or_else(|e| panic!("migrate: {e}"))
}

async fn visible(client: &Client, role: &str, sql: &str) -> i64 {
    client
        .batch_execute(&format!("SET ROLE {}", quote_ident(role)))
        .await
        .expect("set role");
    let n = client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0);
    client.batch_execute("RESET ROLE").await.expect("reset");
    n
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_creates_the_metadata_tables_with_avnis_policies() {
    // The roles made here go after the database (declared first).
    let mut roles = DropRoles {
        names: Vec::new(),
        ending_with: None,
    };
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let world = avni::generate(
        &client,
        &Spec {
            seed: 1420,
            organisations: 2,
            size: Size {
                subjects_per_type: 1,
                encounters_per_enrolment: 1,
                encounters_per_subject: 1,
            },
            ..Spec::default()
        },
    )
    .await;
    assert_eq!(migrate(&db.url).await.len(), 3);
    let ours = policies(&client).await;

    // As avni-server has them.
    let avni = AvniServerDb::new().await;
    let theirs = policies(&avni.db.client().await).await;
    assert_eq!(ours, theirs, "the policies avni-server has");
    assert!(ours.iter().all(|p| !p.ends_with("rls=f")), "{ours:?}");

    // An organisation's role sees its own schema's metadata and windows.
    let (a, b) = (&world.organisations[0], &world.organisations[1]);
    for org in [a, b] {
        engine::run_entity(
            &context(&db.url),
            org_ref(org),
            &RunOptions::default(),
            &NoProgress,
        )
        .await
        .unwrap_or_else(|e| panic!("run of {}: {e}", org.name));
    }
    for org in [a, b] {
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
            roles.names.push(org.db_user.clone());
        }
        client
            .batch_execute(&format!(
                "GRANT SELECT ON public.table_metadata, public.column_metadata, public.entity_sync_status, \
                 public.organisation, public.organisation_group TO {}",
                quote_ident(&org.db_user)
            ))
            .await
            .expect("grant");
    }
    for (org, other) in [(a, b), (b, a)] {
        let own_tables: i64 = client
            .query_one(
                "SELECT count(*) FROM public.table_metadata WHERE schema_name = $1",
                &[&org.schema_name],
            )
            .await
            .expect("count")
            .get(0);
        assert!(own_tables > 0);
        for (sql, expected) in [
            ("SELECT count(*) FROM public.table_metadata", own_tables),
            (
                &*format!(
                    "SELECT count(*) FROM public.table_metadata WHERE schema_name = '{}'",
                    other.schema_name
                ),
                0,
            ),
            (
                &*format!(
                    "SELECT count(*) FROM public.column_metadata WHERE schema_name = '{}'",
                    other.schema_name
                ),
                0,
            ),
            (
                &*format!(
                    "SELECT count(*) FROM public.entity_sync_status WHERE db_user <> '{}'",
                    org.db_user
                ),
                0,
            ),
        ] {
            assert_eq!(visible(&client, &org.db_user, sql).await, expected, "{sql}");
        }
        assert!(
            visible(
                &client,
                &org.db_user,
                "SELECT count(*) FROM public.entity_sync_status"
            )
            .await
                > 0
        );
    }
    assert!(
        migrate(&db.url).await.is_empty(),
        "a second migrate does nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn on_an_empty_database_only_entity_sync_status_gets_its_policy() {
    let db = TestDatabase::new().await;
    migrate(&db.url).await;
    let client = db.client().await;
    let all = policies(&client).await;
    assert_eq!(
        all,
        [
            "column_metadata rls=f",
            "entity_sync_status entity_sync_status_rls_policy ALL (db_user = CURRENT_USER) (db_user = CURRENT_USER)",
            "entity_sync_status rls=t",
            "table_metadata rls=f",
        ],
        "{all:?}"
    );
}
