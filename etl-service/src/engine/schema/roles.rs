//! Who owns and who may read a reporting schema (design/etl.md §5). The
//! schema is made as Avni makes it: avni-server's
//! `create_implementation_schema` creates an organisation's schema owned
//! by its `db_user` with ALL on it, and avni-etl does the same for a group
//! (owned by the group's role, ALL for every member's), so implementers can
//! create their own views there. Those roles also get SELECT on the
//! reporting tables; no other role gets anything, so one organisation's
//! role cannot read another's schema.

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
/// Whether every one of `roles` exists and the connection's user is a
/// member of `owner`: what [`ensure_roles`] and [`ensure_member_of`] make
/// so, asked in one statement (every run asks; they rarely have anything to
/// do).
pub async fn ready(conn: &AsyncPgConnection, roles: &[String], owner: &str) -> Result<bool, Error> {
    let mut conn = conn;
    Ok(diesel::sql_query(
        "SELECT (SELECT count(*) FROM pg_roles WHERE rolname = ANY($1)) = cardinality($1) \
                AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $2 \
                            AND pg_has_role(current_user, oid, 'MEMBER')) AS exists",
    )
    .bind::<diesel::sql_types::Array<Text>, _>(roles)
    .bind::<Text, _>(owner)
    .get_result::<Exists>(&mut conn)
    .await?
    .exists)
}

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

#[derive(QueryableByName)]
struct Member {
    #[diesel(sql_type = Bool)]
    member: bool,
    #[diesel(sql_type = Text)]
    me: String,
}

async fn membership(conn: &mut AsyncPgConnection, role: &str) -> Result<Member, Error> {
    Ok(diesel::sql_query(
        "SELECT pg_has_role(current_user, $1, 'MEMBER') AS member, current_user::text AS me",
    )
    .bind::<Text, _>(role)
    .get_result::<Member>(conn)
    .await?)
}

/// Makes the service's role a member of `owner`, as avni-server's
/// `create_db_user` makes `openchs` a member of every organisation's role:
/// PostgreSQL lets only a member create a schema owned by a role, and the
/// member's privileges let the service create its tables there. A
/// superuser is a member of every role already. Outside any transaction,
/// like [`ensure_roles`]: two runs may race to grant it.
pub async fn ensure_member_of(conn: &mut AsyncPgConnection, owner: &str) -> Result<(), Error> {
    if membership(conn, owner).await?.member {
        return Ok(());
    }
    let granted = diesel::sql_query(format!("GRANT {} TO CURRENT_USER", quote_ident(owner)))
        .execute(conn)
        .await;
    let now = membership(conn, owner).await?;
    match granted {
        Err(e) if !now.member => Err(Error::FailedPrecondition(format!(
            "role {} cannot create the reporting schema owned by role {owner:?}, as Avni makes it: \
             {e}; grant {owner:?} to it (avni-server's create_db_user() grants every organisation's \
             role to openchs) or give it CREATEROLE",
            now.me
        ))),
        _ => Ok(()),
    }
}

/// The statements that make `schema` as Avni makes it, when missing: owned
/// by `owner`, ALL on it for `owner` and each of `roles` (an existing
/// schema keeps its owner), and nothing for PUBLIC.
pub fn schema_statements(schema: &str, owner: &str, roles: &[String]) -> Vec<String> {
    let q_schema = quote_ident(schema);
    let mut statements = vec![format!(
        "CREATE SCHEMA IF NOT EXISTS {q_schema} AUTHORIZATION {}",
        quote_ident(owner)
    )];
    let mut all = vec![owner.to_string()];
    all.extend(roles.iter().filter(|r| r.as_str() != owner).cloned());
    statements.push(format!(
        "GRANT ALL PRIVILEGES ON SCHEMA {q_schema} TO {}",
        all.iter()
            .map(|r| quote_ident(r))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    statements.push(format!("REVOKE ALL ON SCHEMA {q_schema} FROM PUBLIC"));
    statements
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

    #[test]
    fn the_schema_is_owned_by_the_owner_and_open_to_each_role_once() {
        let s = schema_statements("org\"a", "own;er", &["own;er".into(), "m1".into()]);
        assert_eq!(
            s,
            vec![
                "CREATE SCHEMA IF NOT EXISTS \"org\"\"a\" AUTHORIZATION \"own;er\"",
                "GRANT ALL PRIVILEGES ON SCHEMA \"org\"\"a\" TO \"own;er\", \"m1\"",
                "REVOKE ALL ON SCHEMA \"org\"\"a\" FROM PUBLIC",
            ]
        );
    }
}
