//! The organisation or group a run is for: its schema, its role and its
//! member organisations, refused with a message a person can act on when
//! the run could not call that schema and those roles its own.

use crate::engine::entity::{EntityKind, EntityRef};
use crate::engine::schema::naming::MAX_IDENTIFIER_BYTES;
use crate::error::Error;
use diesel::QueryableByName;
use diesel::sql_types::{Integer, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use service_kit::prepared::prepared;

/// One organisation whose rows a run reads.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Member {
    #[diesel(sql_type = Integer)]
    pub id: i32,
    #[diesel(sql_type = Text)]
    pub uuid: String,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Text)]
    pub db_user: String,
    #[diesel(sql_type = Text)]
    pub schema_name: String,
}

/// What a run writes to and reads from: the entity's schema and role, and
/// its member organisations (the organisation itself when standalone).
#[derive(Debug, Clone)]
pub struct Target {
    pub entity: EntityRef,
    pub name: String,
    pub schema_name: String,
    pub db_user: String,
    pub members: Vec<Member>,
}

impl Target {
    pub fn member_ids(&self) -> Vec<i32> {
        self.members.iter().map(|m| m.id).collect()
    }

    /// Every role that may read the schema: the entity's own and, for a
    /// group, each member's.
    pub fn reader_roles(&self) -> Vec<String> {
        let mut roles = vec![self.db_user.clone()];
        for m in &self.members {
            if !roles.contains(&m.db_user) {
                roles.push(m.db_user.clone());
            }
        }
        roles
    }
}

/// The head row of a target (`o`: the organisation or group) and another
/// organisation or group whose schema is the same (the run of one would
/// write into, grant on and drop the other's tables).
#[derive(QueryableByName)]
struct Head {
    #[diesel(embed)]
    member: Member,
    #[diesel(sql_type = Nullable<Text>)]
    other_owner: Option<String>,
}

/// The `other_owner` column of [`Head`], for a row `o` of either table (a
/// literal for `concat!`: the query is [`prepared`], its text constant).
macro_rules! other_owner {
    () => {
        "(SELECT owner FROM (\
          SELECT 'organisation ' || x.uuid || ' (' || x.name || ')' AS owner FROM public.organisation x \
           WHERE x.schema_name = o.schema_name AND x.uuid <> o.uuid AND NOT x.is_voided \
          UNION ALL \
          SELECT 'organisation group ' || g.uuid || ' (' || g.name || ')' FROM public.organisation_group g \
           WHERE g.schema_name = o.schema_name AND g.uuid <> o.uuid \
          LIMIT 1) owners)"
    };
}

/// Finds the organisation or group, with a message a person can act on
/// when it does not exist or cannot be run.
/// Takes a shared connection so callers can pipeline it with other
/// queries on the same connection; it is one round trip itself (GetJob
/// pays for it on every call).
pub async fn load_target(conn: &AsyncPgConnection, entity: EntityRef) -> Result<Target, Error> {
    let uuid = entity.uuid.to_string();
    let (head, members) = match entity.kind {
        EntityKind::Organisation => load_organisation(conn, &uuid).await?,
        EntityKind::OrganisationGroup => load_group(conn, &uuid).await?,
    };
    let Head {
        member: head,
        other_owner,
    } = head;
    check_usable(entity, &uuid, &head, &members, other_owner)?;
    Ok(Target {
        entity,
        name: head.name,
        schema_name: head.schema_name,
        db_user: head.db_user,
        members,
    })
}

/// A standalone organisation's head row; it is its only member.
async fn load_organisation(
    mut conn: &AsyncPgConnection,
    uuid: &str,
) -> Result<(Head, Vec<Member>), Error> {
    let found: Vec<Head> = prepared(concat!(
        "SELECT o.id, o.uuid, o.name, o.db_user, o.schema_name, ",
        other_owner!(),
        " AS other_owner FROM public.organisation o WHERE o.uuid = $1 AND NOT o.is_voided"
    ))
    .bind_text(uuid)
    .load(&mut conn)
    .await?;
    let Some(org) = found.into_iter().next() else {
        return Err(not_found(conn, "organisation", uuid).await);
    };
    let members = vec![org.member.clone()];
    Ok((org, members))
}

/// A group's head row and its member organisations, which it must have.
async fn load_group(
    mut conn: &AsyncPgConnection,
    uuid: &str,
) -> Result<(Head, Vec<Member>), Error> {
    // Both pipelined: the members are found by the group's uuid.
    let group = prepared(concat!(
        "SELECT o.id, o.uuid, o.name, o.db_user, o.schema_name, ",
        other_owner!(),
        " AS other_owner FROM public.organisation_group o WHERE o.uuid = $1"
    ))
    .bind_text(uuid)
    .load::<Head>(&mut conn);
    let members = prepared(
        "SELECT o.id, o.uuid, o.name, o.db_user, o.schema_name \
         FROM public.organisation_group g \
         JOIN public.organisation_group_organisation ogo ON ogo.organisation_group_id = g.id \
         JOIN public.organisation o ON o.id = ogo.organisation_id \
         WHERE g.uuid = $1 AND NOT o.is_voided ORDER BY o.id",
    )
    .bind_text(uuid)
    .load::<Member>(&mut conn);
    let (found, members) = tokio::try_join!(group, members)?;
    let Some(group) = found.into_iter().next() else {
        return Err(not_found(conn, "organisation_group", uuid).await);
    };
    if members.is_empty() {
        return Err(Error::FailedPrecondition(format!(
            "organisation group {uuid} ({}) has no member organisations",
            group.member.name
        )));
    }
    Ok((group, members))
}

/// Why `table` has no row for `uuid`: it does not exist, or, when the
/// service's role is subject to the table's row-level security (on a real
/// Avni database a role sees only its own organisation there), it may be
/// hidden from that role.
async fn not_found(mut conn: &AsyncPgConnection, table: &str, uuid: &str) -> Error {
    let what = table.replace('_', " ");
    let hidden: Result<Vec<RlsHides>, _> = prepared(
        "SELECT current_user::text AS role FROM pg_class c JOIN pg_roles r ON r.rolname = current_user \
         WHERE c.oid = to_regclass('public.' || $1) AND c.relrowsecurity \
           AND NOT (r.rolsuper OR r.rolbypassrls OR pg_has_role(current_user, c.relowner, 'USAGE'))",
    )
    .bind_text(table)
    .load(&mut conn)
    .await;
    match hidden.ok().and_then(|rows| rows.into_iter().next()) {
        Some(RlsHides { role }) => Error::NotFound(format!(
            "{what} {uuid} does not exist or is not visible to role {role}: row-level security on \
             public.{table} shows a role only its own organisation; connect as the owner of the Avni \
             tables (openchs) or as a role with BYPASSRLS"
        )),
        None => Error::NotFound(format!("{what} {uuid} does not exist")),
    }
}

#[derive(QueryableByName)]
struct RlsHides {
    #[diesel(sql_type = Text)]
    role: String,
}

/// Refuses a target whose schema or roles a run could not call its own:
/// missing, reserved, too long, or another organisation's or group's.
fn check_usable(
    entity: EntityRef,
    uuid: &str,
    head: &Member,
    members: &[Member],
    other_owner: Option<String>,
) -> Result<(), Error> {
    let what = entity.kind.as_str().replace('_', " ");
    if head.schema_name.trim().is_empty() {
        return Err(Error::FailedPrecondition(format!(
            "{what} {uuid} ({}) has no schema_name; set one in the {} table",
            head.name,
            entity.kind.as_str()
        )));
    }
    if let Some(reason) = unusable_schema(&head.schema_name) {
        return Err(Error::FailedPrecondition(format!(
            "{what} {uuid} ({}) has schema_name {:?}, {reason}; give it a schema of its own",
            head.name, head.schema_name
        )));
    }
    for m in std::iter::once(head).chain(members.iter()) {
        check_role(&what, head, m)?;
    }
    if let Some(other) = other_owner {
        return Err(Error::FailedPrecondition(format!(
            "{what} {uuid} ({}) has schema_name {:?}, which is also the schema of {other}; \
             each organisation and group needs a schema of its own",
            head.name, head.schema_name
        )));
    }
    Ok(())
}

/// Refuses `m` (the head, `what` it is, or one of its members) when its
/// `db_user` cannot be granted the schema.
fn check_role(what: &str, head: &Member, m: &Member) -> Result<(), Error> {
    if m.db_user.trim().is_empty() {
        return Err(Error::FailedPrecondition(format!(
            "organisation {} ({}) has no db_user; set one so its role can be granted access",
            m.uuid, m.name
        )));
    }
    if let Some(reason) = unusable_role(&m.db_user) {
        return Err(Error::FailedPrecondition(format!(
            "{} {} ({}) has db_user {:?}, {reason}; give it a role of its own",
            if m.uuid == head.uuid {
                what
            } else {
                "organisation"
            },
            m.uuid,
            m.name,
            m.db_user
        )));
    }
    Ok(())
}

/// Why a schema cannot be an organisation's reporting schema: the runs
/// create, grant and revoke in it as if it were theirs alone.
pub fn unusable_schema(schema: &str) -> Option<String> {
    let lower = schema.to_lowercase();
    if lower == "public" {
        Some("which holds the source and metadata tables".into())
    } else if lower == "information_schema" || lower.starts_with("pg_") {
        Some("which is a PostgreSQL system schema".into())
    } else if schema.len() > MAX_IDENTIFIER_BYTES {
        Some(too_long(schema, "organisations"))
    } else {
        None
    }
}

/// Why a `db_user` cannot be granted a reporting schema.
pub fn unusable_role(role: &str) -> Option<String> {
    if role == "public" {
        // `GRANT ... TO "public"` grants to every role.
        Some("which PostgreSQL reads as PUBLIC, every role".into())
    } else if role == "none" || role.starts_with("pg_") {
        Some("which PostgreSQL reserves".into())
    } else if role.len() > MAX_IDENTIFIER_BYTES {
        Some(too_long(role, "organisations"))
    } else {
        None
    }
}

fn too_long(name: &str, who: &str) -> String {
    format!(
        "which is {} bytes long; PostgreSQL cuts identifiers to {MAX_IDENTIFIER_BYTES} bytes \
         without a word, so two {who} could share one",
        name.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_and_source_schemas_are_refused() {
        for schema in [
            "public",
            "PUBLIC",
            "pg_catalog",
            "pg_toast",
            "information_schema",
        ] {
            assert!(unusable_schema(schema).is_some(), "{schema}");
        }
        for schema in ["org_a", "publication", "Org \"1\"; DROP"] {
            assert!(unusable_schema(schema).is_none(), "{schema}");
        }
        assert!(unusable_schema(&"s".repeat(64)).is_some());
        assert!(unusable_schema(&"स".repeat(21)).is_none(), "63 bytes fit");
    }

    #[test]
    fn roles_postgres_reads_otherwise_are_refused() {
        for role in ["public", "none", "pg_monitor", &"r".repeat(64)] {
            assert!(unusable_role(role).is_some(), "{role}");
        }
        for role in ["PUBLIC", "org_a", "etl test \"0\"; role", "  x "] {
            assert!(unusable_role(role).is_none(), "{role}");
        }
    }
}
