//! A real PostgreSQL for every test: a fresh database per test on the server
//! named by `DATABASE_URL` (or 127.0.0.1:5432), and, when none answers, a
//! private cluster started from the PostgreSQL binaries under `target/`.
//!
//! [`PrivateCluster`] is also what tests use when they must stop and start
//! PostgreSQL under a running service without disturbing other tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;
use tokio_postgres::NoTls;

/// The URL of the maintenance database of the server tests use.
static SERVER: OnceCell<String> = OnceCell::const_new();

const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const FALLBACK_PORT: u16 = 55432;

/// The server's maintenance URL (`.../postgres`), found once per process.
pub async fn server_url() -> &'static str {
    SERVER
        .get_or_init(|| async {
            let candidate = match std::env::var("DATABASE_URL") {
                Ok(url) if !url.is_empty() => with_database(&url, "postgres"),
                _ => DEFAULT_SERVER.to_string(),
            };
            if connect(&candidate).await.is_ok() {
                return candidate;
            }
            eprintln!(
                "no PostgreSQL answers at {candidate}; starting a private cluster on port {FALLBACK_PORT}"
            );
            let cluster = PrivateCluster::start_at(fallback_dir(), FALLBACK_PORT)
                .unwrap_or_else(|e| panic!("cannot start a private PostgreSQL cluster: {e}"));
            let url = cluster.url("postgres");
            // The fallback cluster outlives the test process on purpose: the
            // next test binary reuses it.
            std::mem::forget(cluster);
            url
        })
        .await
}

/// Replaces the database name of a postgres URL.
pub fn with_database(url: &str, database: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let scheme_end = head.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match head[scheme_end..].find('/') {
        Some(i) => &head[..scheme_end + i],
        None => head,
    };
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

/// Opens a plain connection and drives it in the background.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// A database of its own for one test, dropped when the value is dropped
/// (set `KEEP_TEST_DATABASES=1` to keep it for a look afterwards).
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    admin_url: String,
}

impl TestDatabase {
    /// A new empty database on the shared test server.
    pub async fn new() -> Self {
        Self::new_on(server_url().await).await
    }

    /// A new empty database on the server whose maintenance URL is given.
    pub async fn new_on(admin_url: &str) -> Self {
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let admin = connect(admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {admin_url}: {e}"));
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        Self {
            url: with_database(admin_url, &name),
            admin_url: admin_url.to_string(),
            name,
        }
    }

    /// A new database with a service's migrations applied.
    pub async fn migrated(migrations: service_kit::db::MigrationSet) -> Self {
        Self::migrated_on(server_url().await, migrations).await
    }

    /// A new database with `migrations` applied, on the server whose
    /// maintenance URL is given.
    pub async fn migrated_on(admin_url: &str, migrations: service_kit::db::MigrationSet) -> Self {
        let db = Self::new_on(admin_url).await;
        service_kit::db::run_pending_migrations(&db.url, migrations)
            .await
            .unwrap_or_else(|e| panic!("cannot migrate test database {}: {e}", db.name));
        db
    }

    /// A connection to this database.
    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.name))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if std::env::var("KEEP_TEST_DATABASES").is_ok_and(|v| v == "1") {
            eprintln!("keeping test database {}", self.url);
            return;
        }
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        on_own_runtime(async move {
            if let Ok(admin) = connect(&admin_url).await {
                let _ = admin
                    .batch_execute(&format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        service_kit::sql::quote_ident(&name)
                    ))
                    .await;
            }
        });
    }
}

/// Runs cleanup work to its end from a `Drop`, which may itself run inside
/// a runtime (where blocking on one is not allowed): on a thread of its own
/// with a runtime of its own. Best effort: a runtime that cannot be built
/// skips the work.
fn on_own_runtime(work: impl std::future::Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            rt.block_on(work);
        }
    })
    .join();
}

/// Drops roles when dropped, passing test or not: roles belong to the whole
/// cluster and outlive test databases. Declare it before the databases
/// the roles have privileges in, so it runs after they are gone.
pub struct DropRoles {
    /// These roles.
    pub names: Vec<String>,
    /// And every role whose name ends with this (a run's own marker).
    pub ending_with: Option<String>,
}

impl Drop for DropRoles {
    fn drop(&mut self) {
        let names = std::mem::take(&mut self.names);
        let suffix = self.ending_with.take();
        on_own_runtime(async move {
            let Ok(admin) = connect(server_url().await).await else {
                return;
            };
            let mut roles = names;
            if let Some(suffix) = suffix
                && let Ok(rows) = admin
                    .query(
                        "SELECT rolname::text FROM pg_roles WHERE right(rolname, length($1)) = $1",
                        &[&suffix],
                    )
                    .await
            {
                roles.extend(rows.iter().map(|r| r.get::<_, String>(0)));
            }
            for role in roles {
                let _ = admin
                    .batch_execute(&format!(
                        "DROP ROLE IF EXISTS {}",
                        service_kit::sql::quote_ident(&role)
                    ))
                    .await;
            }
        });
    }
}

fn workspace_target() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("..").join("target"))
}

fn fallback_dir() -> PathBuf {
    workspace_target().join("pg-test-cluster")
}

/// The directory with `initdb`, `pg_ctl` and `postgres`.
pub fn postgres_bin_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("PG_BIN_DIR") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A PostgreSQL cluster of the test's own, from `initdb` and `pg_ctl`, for
/// tests that stop and start PostgreSQL. Stopped and removed on drop.
pub struct PrivateCluster {
    pub data_dir: PathBuf,
    pub port: u16,
    bin: PathBuf,
    as_root: bool,
}

impl PrivateCluster {
    /// A private cluster (started off the async runtime) holding one new
    /// database with `migrations` applied.
    pub async fn with_migrated_database(
        migrations: service_kit::db::MigrationSet,
    ) -> (Self, TestDatabase) {
        let cluster = tokio::task::spawn_blocking(Self::start)
            .await
            .expect("join")
            .unwrap_or_else(|e| panic!("private cluster: {e}"));
        let db = TestDatabase::migrated_on(&cluster.url("postgres"), migrations).await;
        (cluster, db)
    }

    /// A new cluster on a free port, in a fresh directory under `target/`.
    pub fn start() -> Result<Self, String> {
        let port = free_port()?;
        let dir = workspace_target()
            .join("pg-private")
            .join(format!("{}-{port}", std::process::id()));
        Self::start_at(dir, port)
    }

    /// Starts (initialising if needed) a cluster in `dir` on `port`.
    pub fn start_at(dir: PathBuf, port: u16) -> Result<Self, String> {
        let bin = postgres_bin_dir()
            .ok_or("no PostgreSQL binaries found under /usr/lib/postgresql (set PG_BIN_DIR)")?;
        let as_root = running_as_root();
        let cluster = Self {
            data_dir: dir,
            port,
            bin,
            as_root,
        };
        if !cluster.data_dir.join("PG_VERSION").exists() {
            std::fs::create_dir_all(&cluster.data_dir).map_err(|e| e.to_string())?;
            if as_root {
                chown_postgres(&cluster.data_dir)?;
            }
            cluster.run(
                "initdb",
                &[
                    "-D",
                    &cluster.data_dir.to_string_lossy(),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--no-sync",
                    "-E",
                    "UTF8",
                ],
            )?;
        }
        cluster.start_server()?;
        Ok(cluster)
    }

    /// The URL of a database in this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start_server(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off -c full_page_writes=off",
            self.port
        );
        let log = self.data_dir.join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir.to_string_lossy(),
                "-l",
                &log.to_string_lossy(),
                "-o",
                &options,
                "-w",
                "start",
            ],
        )?;
        self.wait_ready(Duration::from_secs(30))
    }

    /// Stops the server at once (in-flight transactions are aborted).
    pub fn stop_server(&self) -> Result<(), String> {
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir.to_string_lossy(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        )
    }

    fn wait_ready(&self, limit: Duration) -> Result<(), String> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("PostgreSQL on port {} did not come up", self.port))
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let path = self.bin.join(program);
        let output = if self.as_root {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&path)
                .args(args)
                .output()
        } else {
            Command::new(&path).args(args).output()
        }
        .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = self.stop_server();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

fn chown_postgres(dir: &Path) -> Result<(), String> {
    // The postgres user must be able to reach the directory too.
    let mut ancestor = dir.parent();
    while let Some(p) = ancestor {
        if p.starts_with(workspace_target()) {
            let _ = Command::new("chmod").arg("o+x").arg(p).status();
        }
        ancestor = p.parent();
    }
    let status = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(dir)
        .status()
        .map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("chown postgres {} failed", dir.display()))
    }
}

/// The ports [`free_port`] hands out: below Linux's ephemeral range
/// (32768-60999), so that neither an outgoing connection nor another
/// `bind(port 0)` takes one between the check and the child's own bind.
const FREE_PORTS: std::ops::Range<u32> = 20_000..32_000;

/// A TCP port nobody listens on right now, for a child process to bind.
///
/// Ports are handed out in turn, never twice in one process, starting at an
/// offset drawn from the process id, so that processes picking ports at the
/// same time (a test and the demo it starts) do not pick the same one. (A
/// port asked of the kernel with `bind(0)` and released could be handed out
/// again at once: two demos in one CI run once got the same one.)
pub fn free_port() -> Result<u16, String> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static HANDED_OUT: AtomicU32 = AtomicU32::new(0);
    let span = FREE_PORTS.end - FREE_PORTS.start;
    let offset = std::process::id().wrapping_mul(2_654_435_761) % span;
    for _ in 0..span {
        let n = HANDED_OUT.fetch_add(1, Ordering::Relaxed);
        let port = FREE_PORTS.start + (offset + n) % span;
        let port = u16::try_from(port).map_err(|e| e.to_string())?;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(format!(
        "no free port in {}-{}",
        FREE_PORTS.start,
        FREE_PORTS.end - 1
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_database_names() {
        assert_eq!(
            with_database("postgres://u@h:1/a?sslmode=disable", "b"),
            "postgres://u@h:1/b?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h:1", "b"), "postgres://u@h:1/b");
    }

    #[test]
    fn free_ports_are_never_handed_out_twice_and_are_not_ephemeral() {
        let held: Vec<_> = (0..300)
            .map(|_| {
                let port = free_port().expect("a free port");
                // Held, as a child would hold it: the next ones must differ.
                std::net::TcpListener::bind(("127.0.0.1", port)).expect("free as promised")
            })
            .collect();
        let mut ports: Vec<u16> = held
            .iter()
            .map(|l| l.local_addr().expect("addr").port())
            .collect();
        assert!(
            ports.iter().all(|p| (20_000..32_000).contains(p)),
            "{ports:?}"
        );
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 300);
    }
}
