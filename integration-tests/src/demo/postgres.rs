//! The PostgreSQL server the demo uses: the one `DATABASE_URL` names, else
//! one answering on localhost:5432, else a private throwaway cluster started
//! from the machine's PostgreSQL binaries under `target/`.

use crate::postgres::{PrivateCluster, connect, with_database};
use anyhow::{Context, anyhow};
use service_kit::config::redact_url;
use service_kit::sql::quote_ident;
use std::time::Duration;

const LOCAL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Where the demo's databases live.
pub enum DemoServer {
    /// A server someone else runs; left running at the end.
    External {
        /// The maintenance database's URL (`.../postgres`).
        admin_url: String,
        /// How it was found, for people.
        origin: &'static str,
    },
    /// A cluster of the demo's own; stopped and removed when dropped.
    Private(PrivateCluster),
}

impl DemoServer {
    /// Finds or starts a server; `private` skips the finding.
    pub async fn find(private: bool) -> anyhow::Result<Self> {
        if private {
            return Self::start_private().await;
        }
        if let Ok(url) = std::env::var("DATABASE_URL")
            && !url.trim().is_empty()
        {
            let admin_url = with_database(url.trim(), "postgres");
            answers(&admin_url).await.with_context(|| {
                format!(
                    "DATABASE_URL is set, but {} does not answer",
                    redact_url(&admin_url)
                )
            })?;
            return Ok(Self::External {
                admin_url,
                origin: "DATABASE_URL",
            });
        }
        if answers(LOCAL).await.is_ok() {
            return Ok(Self::External {
                admin_url: LOCAL.to_string(),
                origin: "found on localhost:5432",
            });
        }
        println!("No PostgreSQL answers on localhost:5432 and DATABASE_URL is not set.");
        Self::start_private().await
    }

    async fn start_private() -> anyhow::Result<Self> {
        println!("Starting a private throwaway PostgreSQL cluster under target/ ...");
        let cluster = tokio::task::spawn_blocking(PrivateCluster::start)
            .await
            .map_err(|e| anyhow!("starting a private cluster panicked: {e}"))?
            .map_err(|e| {
                anyhow!(
                    "cannot start a private PostgreSQL cluster: {e}\n\
                     Install PostgreSQL (its server binaries: initdb, pg_ctl), start one on \
                     localhost:5432, or set DATABASE_URL."
                )
            })?;
        Ok(Self::Private(cluster))
    }

    /// The maintenance database's URL.
    pub fn admin_url(&self) -> String {
        match self {
            Self::External { admin_url, .. } => admin_url.clone(),
            Self::Private(cluster) => cluster.url("postgres"),
        }
    }

    /// The URL of a database on this server.
    pub fn url(&self, database: &str) -> String {
        with_database(&self.admin_url(), database)
    }

    /// One line for people: which server and why.
    pub fn describe(&self) -> String {
        match self {
            Self::External { admin_url, origin } => {
                format!("{} ({origin})", redact_url(admin_url))
            }
            Self::Private(cluster) => format!(
                "{} (a private cluster in {}, removed when the demo stops)",
                cluster.url("postgres"),
                cluster
                    .data_dir
                    .canonicalize()
                    .unwrap_or_else(|_| cluster.data_dir.clone())
                    .display()
            ),
        }
    }

    /// Drops `database` if it exists and creates it empty; returns its URL.
    pub async fn recreate(&self, database: &str) -> anyhow::Result<String> {
        let admin = connect(&self.admin_url())
            .await
            .with_context(|| format!("cannot connect to {}", redact_url(&self.admin_url())))?;
        let name = quote_ident(database);
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .with_context(|| format!("cannot drop the old database {database}"))?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("cannot create the database {database}"))?;
        Ok(self.url(database))
    }
}

/// Connects once, giving up after a few seconds.
async fn answers(url: &str) -> anyhow::Result<()> {
    let client = tokio::time::timeout(Duration::from_secs(5), connect(url))
        .await
        .map_err(|_| anyhow!("timed out"))??;
    client.simple_query("SELECT 1").await?;
    Ok(())
}
