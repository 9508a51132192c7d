//! Isolation: each organisation's role reads its own schema and no other.
//! Roles are created NOLOGIN, without a password.

use integration_tests::avni::{Size, Spec};
use integration_tests::etl::EtlFixture;
use service_kit::sql::{quote_ident, quote_qualified};

#[tokio::test(flavor = "multi_thread")]
async fn an_organisations_role_cannot_read_another_organisations_schema() {
    let f = EtlFixture::new(&Spec {
        seed: 41,
        organisations: 2,
        ..Spec::default()
    })
    .await;
    let (a, b) = (f.org(0).clone(), f.org(1).clone());
    f.run_org(&a).await;
    f.run_org(&b).await;
    let client = &f.client;

    for (me, other) in [(&a, &b), (&b, &a)] {
        client
            .batch_execute(&format!("SET ROLE {}", quote_ident(&me.db_user)))
            .await
            .expect("set role");
        let own: i64 = client
            .query_one(
                &format!(
                    "SELECT count(*) FROM {}",
                    quote_qualified(&me.schema_name, "person")
                ),
                &[],
            )
            .await
            .expect("an organisation reads its own schema")
            .get(0);
        assert_eq!(own, Size::SMALL.subjects_per_type);
        let denied = client
            .query_one(
                &format!(
                    "SELECT count(*) FROM {}",
                    quote_qualified(&other.schema_name, "person")
                ),
                &[],
            )
            .await
            .expect_err("another organisation's schema is not readable");
        let db = denied.as_db_error().expect("a database error");
        assert_eq!(
            db.code(),
            &tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE
        );
        assert!(
            db.message().contains("permission denied for schema"),
            "{}",
            db.message()
        );
        client
            .batch_execute("RESET ROLE")
            .await
            .expect("reset role");
    }

    for role in [&a.db_user, &b.db_user] {
        let row = client
            .query_one(
                "SELECT rolcanlogin, rolpassword IS NULL FROM pg_authid WHERE rolname = $1",
                &[role],
            )
            .await
            .expect("the role exists");
        assert_eq!(
            (row.get::<_, bool>(0), row.get::<_, bool>(1)),
            (false, true),
            "{role}"
        );
    }
}
