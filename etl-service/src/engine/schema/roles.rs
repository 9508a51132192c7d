//! Who may read a reporting schema (design/etl.md §5): the organisation's
//! `db_user` role (for a group, the group's and every member's), with USAGE
//! on the schema and SELECT on its tables. No other role gets either, so one
//! organisation's role cannot read another's schema.

use crate::error::Error;
use diesel::QueryableByName;
use diesel::sql_types::{Bool, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use service_kit::sql::quote_ident;

#[derive(QueryableByName)]
struct Exists {
    #[diesel(sql_type = Bool)]
    exists: bool,
}

async fn role_exists(conn: &mut AsyncPgConnection, role: &str) -> Result<bool, Error> {
    Ok(
        diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) AS exists")
            .bind::<Text, _>(role)
            .get_result::<Exists>(conn)
            .await?
            .exists,
    )
}

/// Creates each missing role as NOLOGIN: never with a password (the
/// reference system used a fixed default one). Each in its own statement
/// outside any transaction, because two runs (group members) may race to
/// create the same role; the loser finds it there and carries on.
pub async fn ensure_roles(conn: &mut AsyncPgConnection, roles: &[String]) -> Result<(), Error> {
    for role in roles {
        if role_exists(conn, role).await? {
            continue;
        }
        let created = diesel::sql_query(format!("CREATE ROLE {} NOLOGIN", quote_ident(role)))
            .execute(conn)
            .await;
        if let Err(e) = created
            && !role_exists(conn, role).await?
        {
            return Err(Error::FailedPrecondition(format!(
                "cannot create role {role:?} for the reporting schema: {e} \
                 (the ETL's database user needs CREATEROLE, or create the role beforehand)"
            )));
        }
    }
    Ok(())
}

/// The statements that let `roles` read every table of `schema`, now and
/// later (tables created by later runs).
pub fn grant_statements(schema: &str, roles: &[String]) -> Vec<String> {
    if roles.is_empty() {
        return Vec::new();
    }
    let schema = quote_ident(schema);
    let roles = roles
        .iter()
        .map(|r| quote_ident(r))
        .collect::<Vec<_>>()
        .join(", ");
    vec![
        format!("GRANT USAGE ON SCHEMA {schema} TO {roles}"),
        format!("GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {roles}"),
        format!("ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT ON TABLES TO {roles}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_quote_every_name() {
        let s = grant_statements("org\"a", &["r1".into(), "r;2".into()]);
        assert_eq!(
            s[0],
            "GRANT USAGE ON SCHEMA \"org\"\"a\" TO \"r1\", \"r;2\""
        );
        assert!(grant_statements("x", &[]).is_empty());
    }
}
