//! The deployment's own form-table migrations: the `*.sql` files of the
//! directory `form_migrations.directory` names, applied in file-name order
//! by `migrator-service migrate` (or at start-up with
//! `migrations.apply_on_start`), each in a transaction of its own with its
//! row in `form_migration` (name and SHA-256). A file changed after it was
//! applied is refused by name; pending ones are named at start-up.

use crate::error::Error;
use diesel::QueryableByName;
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;

/// One migration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormMigration {
    /// The file name (`0001_anc_visit.sql`).
    pub name: String,
    pub sql: String,
    pub checksum: String,
}

/// The `*.sql` files of `dir`, in file-name order.
pub fn read_dir(dir: &Path) -> Result<Vec<FormMigration>, Error> {
    let unreadable = |e: std::io::Error| {
        Error::FailedPrecondition(format!("form_migrations.directory {}: {e}", dir.display()))
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("sql") || !path.is_file() {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                Error::FailedPrecondition(format!(
                    "form migration {} has a name that is not UTF-8",
                    path.display()
                ))
            })?
            .to_string();
        let sql = std::fs::read_to_string(&path).map_err(|e| {
            Error::FailedPrecondition(format!("form migration {}: {e}", path.display()))
        })?;
        let checksum = format!("{:x}", Sha256::digest(sql.as_bytes()));
        files.push(FormMigration {
            name,
            sql,
            checksum,
        });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

#[derive(QueryableByName)]
struct Applied {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    checksum: String,
}

async fn applied(conn: &mut AsyncPgConnection) -> Result<HashMap<String, String>, Error> {
    let rows: Vec<Applied> = diesel::sql_query("SELECT name, checksum FROM form_migration")
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(|r| (r.name, r.checksum)).collect())
}

/// The files not applied yet; an applied file whose text changed since is
/// an error naming it.
pub async fn pending<'a>(
    conn: &mut AsyncPgConnection,
    files: &'a [FormMigration],
) -> Result<Vec<&'a FormMigration>, Error> {
    let done = applied(conn).await?;
    let mut out = Vec::new();
    for file in files {
        match done.get(&file.name) {
            None => out.push(file),
            Some(sum) if *sum == file.checksum => {}
            Some(_) => {
                return Err(Error::FailedPrecondition(format!(
                    "form migration {} was changed after it was applied; write a new file instead",
                    file.name
                )));
            }
        }
    }
    Ok(out)
}

/// Applies the pending files in order, each in its own transaction under
/// an advisory lock (two `migrate` at once apply each file once); the
/// names applied.
pub async fn apply(
    conn: &mut AsyncPgConnection,
    files: &[FormMigration],
) -> Result<Vec<String>, Error> {
    let mut done = Vec::new();
    for file in pending(conn, files).await? {
        let applied_now = conn
            .transaction(async |conn| {
                diesel::sql_query(
                    "SELECT pg_advisory_xact_lock(hashtext('avni-migrator:form-migrations'))::text AS locked",
                )
                .execute(conn)
                .await?;
                if applied(conn).await?.contains_key(&file.name) {
                    return Ok::<bool, Error>(false);
                }
                conn.batch_execute(&file.sql).await.map_err(|e| {
                    Error::FailedPrecondition(format!("form migration {} failed: {e}", file.name))
                })?;
                diesel::sql_query("INSERT INTO form_migration (name, checksum) VALUES ($1, $2)")
                    .bind::<Text, _>(&file.name)
                    .bind::<Text, _>(&file.checksum)
                    .execute(conn)
                    .await?;
                Ok(true)
            })
            .await?;
        if applied_now {
            tracing::info!(migration = %file.name, "form migration applied");
            done.push(file.name.clone());
        }
    }
    Ok(done)
}
