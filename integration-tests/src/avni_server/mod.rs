//! A database shaped like a real Avni database: the fixture under
//! `sql/avni_server/` (avni-server's tables the ETL reads or writes, their
//! row-level security and the functions the behaviour depends on, written
//! from docs/real-systems/avni-server-schema.md), owned by the role
//! `openchs` as avni-server's are, with data written as avni-server writes
//! it: organisations created as its `POST /organisation` does (the row as
//! `openchs`, then `create_db_user()` and `create_implementation_schema()`),
//! their rows inserted under `SET ROLE <db_user>` with RLS on.
//!
//! [`catalog`] compares the fixture with a database built from the real
//! migrations when `AVNI_SCRATCH_URL` names one (the test
//! `avni_server_fixture` skips the comparison otherwise). To build one, as
//! avni-server's Makefile target `_build_db` prepares it: a private cluster
//! (`initdb`, any free port), the role `openchs` (LOGIN CREATEROLE) owning a
//! database `openchs`, the extensions `uuid-ossp`, `ltree` and `hstore`
//! created by the superuser, the roles `demo` (NOINHERIT NOLOGIN, granted to
//! openchs WITH ADMIN OPTION), `openchs_impl` (granted likewise) and
//! `organisation_user` (CREATEROLE, ADMIN openchs_impl); then every file of
//! avni-server's `avni-server-api/src/main/resources/db/migration` applied
//! with `psql -1 -v ON_ERROR_STOP=1` as `openchs`, versioned files in
//! Flyway order (versions compared numerically, `_` and `.` alike), then
//! the `R__*.sql` files by name. At avni-server v17.1.0 all 485 apply.

pub mod catalog;

use crate::postgres::{DropRoles, TestDatabase, connect, server_url};
use service_kit::sql::{quote_ident, quote_literal};
use tokio_postgres::Client;

/// avni-server's functions (load first: CHECKs call them).
pub const FUNCTIONS: &str = include_str!("../../sql/avni_server/functions.sql");
/// Its tables.
pub const SCHEMA: &str = include_str!("../../sql/avni_server/schema.sql");
/// Its row-level security.
pub const RLS: &str = include_str!("../../sql/avni_server/rls.sql");
/// The rows its migrations insert (organisation 1 and friends).
pub const SEED: &str = include_str!("../../sql/avni_server/seed.sql");
/// One organisation's rows, run under its role.
pub const ORG_DATA: &str = include_str!("../../sql/avni_server/org_data.sql");

/// The owner of every Avni table.
pub const OWNER: &str = "openchs";

/// The password `create_db_user` gets, as avni-server passes one.
const PASSWORD: &str = "password";

/// An organisation as avni-server created it.
#[derive(Debug, Clone)]
pub struct AvniOrg {
    pub id: i32,
    pub uuid: String,
    pub name: String,
    pub db_user: String,
    pub schema_name: String,
    /// The short name its data was generated under (`fixture.key`).
    pub key: String,
}

/// An organisation group as avni-server created it (no schema: avni-server
/// leaves the group's schema to the ETL).
#[derive(Debug, Clone)]
pub struct AvniGroup {
    pub id: i32,
    pub uuid: String,
    pub name: String,
    pub db_user: String,
    pub schema_name: String,
    pub members: Vec<AvniOrg>,
}

/// A fresh database with the fixture loaded. Its organisations' roles
/// (cluster-wide) end with `_<tag>` and are dropped with it.
pub struct AvniServerDb {
    pub db: TestDatabase,
    /// The database's URL as the owner `openchs`.
    pub owner_url: String,
    pub tag: String,
    _roles: DropRoles,
}

/// The example: a standalone organisation, a parent and its child (which
/// uses the parent's metadata and switches one of its questions off), and
/// a group of the standalone and the parent organisation.
pub struct Example {
    pub avni: AvniServerDb,
    pub standalone: AvniOrg,
    pub parent: AvniOrg,
    pub child: AvniOrg,
    pub group: AvniGroup,
}

/// Subjects per organisation in [`Example`].
pub const EXAMPLE_SUBJECTS: i32 = 3;

impl AvniServerDb {
    /// A new database owned by `openchs`, with the extensions avni-server's
    /// build creates as a superuser, and the fixture loaded as `openchs`.
    pub async fn new() -> Self {
        let admin_url = server_url().await;
        ensure_cluster_roles(admin_url).await;
        let db = TestDatabase::new().await;
        let tag = db.name[db.name.len() - 10..].to_string();
        let roles = DropRoles {
            names: Vec::new(),
            ending_with: Some(format!("_{tag}")),
        };
        let su = db.client().await;
        su.batch_execute(&format!(
            "ALTER DATABASE {} OWNER TO {OWNER}; \
             CREATE EXTENSION IF NOT EXISTS \"uuid-ossp\"; CREATE EXTENSION IF NOT EXISTS ltree;",
            quote_ident(&db.name)
        ))
        .await
        .unwrap_or_else(|e| panic!("prepare {}: {e}", db.name));
        let owner_url = with_user(&db.url, OWNER);
        let owner = connect(&owner_url)
            .await
            .unwrap_or_else(|e| panic!("connect as {OWNER}: {e}"));
        for (file, sql) in [
            ("functions.sql", FUNCTIONS),
            ("schema.sql", SCHEMA),
            ("rls.sql", RLS),
            ("seed.sql", SEED),
        ] {
            owner
                .batch_execute(sql)
                .await
                .unwrap_or_else(|e| panic!("load sql/avni_server/{file}: {}", pg_error(&e)));
        }
        Self {
            db,
            owner_url,
            tag,
            _roles: roles,
        }
    }

    /// The standalone, parent, child and group organisations, filled.
    pub async fn example() -> Example {
        let avni = Self::new().await;
        let standalone = avni.create_organisation("standalone", None).await;
        let parent = avni.create_organisation("parent", None).await;
        let child = avni.create_organisation("child", Some(&parent)).await;
        for org in [&standalone, &parent, &child] {
            avni.fill(org, EXAMPLE_SUBJECTS).await;
        }
        let group = avni
            .create_group("group", vec![standalone.clone(), parent.clone()])
            .await;
        Example {
            avni,
            standalone,
            parent,
            child,
            group,
        }
    }

    /// A connection as `openchs`, which RLS does not apply to.
    pub async fn owner(&self) -> Client {
        connect(&self.owner_url)
            .await
            .unwrap_or_else(|e| panic!("connect as {OWNER}: {e}"))
    }

    /// A connection as `openchs` under `SET ROLE <db_user>`: what
    /// avni-server (and avni-etl) use for an organisation's work.
    pub async fn session(&self, db_user: &str) -> Client {
        let client = self.owner().await;
        client
            .batch_execute(&format!("SET ROLE {}", quote_ident(db_user)))
            .await
            .unwrap_or_else(|e| panic!("SET ROLE {db_user}: {e}"));
        client
    }

    /// The role name for the organisation `key` of this database.
    pub fn role(&self, key: &str) -> String {
        format!("{key}_{}", self.tag)
    }

    /// An organisation as avni-server's `POST /organisation` makes it: the
    /// row (as `openchs`), then `create_db_user(db_user, password)` and
    /// `create_implementation_schema(schema_name, db_user)`. Works the same
    /// before or after the ETL's `migrate`.
    pub async fn create_organisation(&self, key: &str, parent: Option<&AvniOrg>) -> AvniOrg {
        let owner = self.owner().await;
        let uuid = uuid::Uuid::new_v4().to_string();
        let name = format!("Org {key}");
        let db_user = self.role(key);
        let schema_name = key.to_string();
        let parent_id = parent.map(|p| p.id);
        let id: i32 = owner
            .query_one(
                "INSERT INTO organisation (name, db_user, uuid, parent_organisation_id, media_directory, \
                 schema_name, category_id, status_id) VALUES ($1, $2, $3, $4, $5, $6, 1, 1) RETURNING id",
                &[&name, &db_user, &uuid, &parent_id, &key, &schema_name],
            )
            .await
            .unwrap_or_else(|e| panic!("insert organisation {key}: {}", pg_error(&e)))
            .get(0);
        owner
            .batch_execute(&format!(
                "SELECT create_db_user({}, {}); SELECT create_implementation_schema({}, {});",
                quote_literal(&db_user),
                quote_literal(PASSWORD),
                quote_literal(&schema_name),
                quote_literal(&db_user)
            ))
            .await
            .unwrap_or_else(|e| panic!("create role and schema of {key}: {}", pg_error(&e)));
        AvniOrg {
            id,
            uuid,
            name,
            db_user,
            schema_name,
            key: key.to_string(),
        }
    }

    /// An organisation group as avni-server's `OrganisationGroupController`
    /// makes it: the rows and `create_db_user`, no schema.
    pub async fn create_group(&self, key: &str, members: Vec<AvniOrg>) -> AvniGroup {
        let owner = self.owner().await;
        let uuid = uuid::Uuid::new_v4().to_string();
        let name = format!("Group {key}");
        let db_user = self.role(key);
        let schema_name = key.to_string();
        let id: i32 = owner
            .query_one(
                "INSERT INTO organisation_group (name, db_user, account_id, schema_name, uuid) \
                 VALUES ($1, $2, 1, $3, $4) RETURNING id",
                &[&name, &db_user, &schema_name, &uuid],
            )
            .await
            .unwrap_or_else(|e| panic!("insert group {key}: {}", pg_error(&e)))
            .get(0);
        for m in &members {
            owner
                .execute(
                    "INSERT INTO organisation_group_organisation (name, organisation_group_id, organisation_id) \
                     VALUES ($1, $2, $3)",
                    &[&m.name, &id, &m.id],
                )
                .await
                .unwrap_or_else(|e| panic!("add {} to group {key}: {}", m.name, pg_error(&e)));
        }
        owner
            .batch_execute(&format!(
                "SELECT create_db_user({}, {})",
                quote_literal(&db_user),
                quote_literal(PASSWORD)
            ))
            .await
            .unwrap_or_else(|e| panic!("create role of group {key}: {}", pg_error(&e)));
        AvniGroup {
            id,
            uuid,
            name,
            db_user,
            schema_name,
            members,
        }
    }

    /// Writes `org`'s rows (`org_data.sql`) under its role: its users,
    /// genders and locations, its metadata unless it sees a parent's, and
    /// `subjects` subjects with an enrolment, a program encounter, an
    /// encounter and an approval each.
    pub async fn fill(&self, org: &AvniOrg, subjects: i32) {
        let session = self.session(&org.db_user).await;
        session
            .batch_execute(&format!(
                "SET fixture.key = {}; SET fixture.subjects = {subjects};",
                quote_literal(&org.key)
            ))
            .await
            .unwrap_or_else(|e| panic!("settings for {}: {e}", org.key));
        session
            .batch_execute(ORG_DATA)
            .await
            .unwrap_or_else(|e| panic!("org_data.sql for {}: {}", org.key, pg_error(&e)));
    }
}

/// The roles avni-server's database build creates outside its migrations
/// (its Makefile): `openchs` (LOGIN CREATEROLE, the owner) and
/// `openchs_impl` (organisation 1's role). Cluster-wide, so created once and
/// shared by every test database; tests running at once may race to create
/// them, which is harmless.
async fn ensure_cluster_roles(admin_url: &str) {
    let admin = connect(admin_url)
        .await
        .unwrap_or_else(|e| panic!("connect {admin_url}: {e}"));
    for (role, attributes) in [
        (OWNER, "LOGIN CREATEROLE"),
        ("openchs_impl", "NOLOGIN NOINHERIT"),
    ] {
        let exists = admin
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
            .await
            .unwrap_or_else(|e| panic!("look up role {role}: {e}"))
            .is_some();
        if exists {
            continue;
        }
        if let Err(e) = admin
            .batch_execute(&format!("CREATE ROLE {} {attributes}", quote_ident(role)))
            .await
        {
            let raced = e
                .as_db_error()
                .is_some_and(|d| d.code().code() == "42710" || d.code().code() == "23505");
            assert!(raced, "create role {role}: {e}");
        }
    }
}

/// `url` with its user replaced.
pub fn with_user(url: &str, user: &str) -> String {
    let scheme_end = url.find("://").map(|i| i + 3).unwrap_or(0);
    let rest = &url[scheme_end..];
    let host_start = rest.find('@').map(|i| i + 1).unwrap_or(0);
    format!("{}{user}@{}", &url[..scheme_end], &rest[host_start..])
}

/// A database error with its detail, for panics.
pub fn pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!(
            "{}: {}{}",
            d.code().code(),
            d.message(),
            d.where_().map(|w| format!(" ({w})")).unwrap_or_default()
        ),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_of_a_url_is_replaced() {
        assert_eq!(
            with_user("postgres://postgres@127.0.0.1:5432/x", "openchs"),
            "postgres://openchs@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_user("postgres://127.0.0.1:5432/x?sslmode=disable", "openchs"),
            "postgres://openchs@127.0.0.1:5432/x?sslmode=disable"
        );
    }
}
