//! The demo: the whole product in one command. It finds (or starts) a
//! PostgreSQL, recreates two demo databases, loads a generated Avni-style
//! organisation, serves a few thousand Drishti-style submissions (with the
//! sample page's quirks mixed in) from an in-process fake upstream, starts
//! both real service binaries as child processes, enables analytics for the
//! organisation, shows both at work, prints a summary and the commands to
//! try, and serves until Ctrl-C (or stops after the summary with `--once`).

mod postgres;
mod progress;
mod summary;

use crate::avni::{self, Org, Size, Spec};
use crate::binaries::{Launch, ServiceProcess};
use crate::fake_upstream::{self, Data, FakeUpstream, Generator};
use crate::services::{AuthedChannel, Bearer};
use anyhow::{Context, anyhow, bail};
use avni_proto::etl::v1 as etl_pb;
use avni_proto::etl::v1::etl_service_client::EtlServiceClient;
use avni_proto::migrator::v1::forms_migrator_client::FormsMigratorClient;
use postgres::DemoServer;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// The name of the demo upstream in the migrator's config.
pub const SOURCE_NAME: &str = "demo-drishti";

/// What the demo does; see the `demo` binary's flags.
#[derive(Debug, Clone)]
pub struct Options {
    /// Stop after the summary instead of serving until Ctrl-C.
    pub once: bool,
    /// Subjects per subject type of the demo organisation.
    pub subjects: i64,
    /// Generated submissions served by the fake upstream.
    pub submissions: usize,
    /// A sample-page element after every this many submissions.
    pub quirks_every: usize,
    /// Prefix of the two demo databases (`<prefix>_avni`, `<prefix>_forms`).
    pub database_prefix: String,
    /// Listen on free ports instead of the services' usual ones.
    pub free_ports: bool,
    /// Start a private cluster whatever else answers.
    pub private_cluster: bool,
    /// The bearer token; a random one when not given.
    pub token: Option<String>,
    /// How long both services may take to finish their work.
    pub timeout: Duration,
}

/// Everything the demo started, stopped in order at the end.
#[derive(Default)]
struct Running {
    server: Option<DemoServer>,
    upstream: Option<FakeUpstream>,
    etl: Option<ServiceProcess>,
    migrator: Option<ServiceProcess>,
    /// Ctrl-C after the summary is the normal way to stop.
    summary_printed: bool,
}

impl Running {
    /// Stops the services (SIGTERM, waiting for a clean exit), then the
    /// upstream, then the private cluster if the demo started one. Returns
    /// what did not stop cleanly.
    fn shutdown(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, process) in [
            ("etl-service", &mut self.etl),
            ("migrator-service", &mut self.migrator),
        ] {
            if let Some(mut p) = process.take() {
                match p.stop(Duration::from_secs(35)) {
                    Ok(status) if status.success() => {}
                    Ok(status) => problems.push(format!("{name} exited with {status}")),
                    Err(e) => problems.push(format!("{name}: {e}")),
                }
            }
        }
        self.upstream.take();
        if let Some(DemoServer::Private(cluster)) = self.server.take() {
            println!("Stopping the private PostgreSQL cluster ...");
            drop(cluster);
        }
        problems
    }
}

/// Runs the demo; `Ok` when everything worked and stopped cleanly.
pub async fn run(options: Options) -> anyhow::Result<()> {
    let mut running = Running::default();
    let outcome = tokio::select! {
        r = demo(&options, &mut running) => r,
        // Ctrl-C, or SIGTERM: the services run in process groups of their
        // own, so the demo must stop them itself.
        () = service_kit::shutdown::signal() => {
            println!("\nStopping (Ctrl-C or SIGTERM) ...");
            if running.summary_printed {
                Ok(())
            } else {
                Err(anyhow!("interrupted before the summary"))
            }
        }
    };
    let problems = tokio::task::block_in_place(|| running.shutdown());
    outcome?;
    if !problems.is_empty() {
        bail!(
            "not everything stopped cleanly:\n  {}",
            problems.join("\n  ")
        );
    }
    println!("Stopped.");
    Ok(())
}

async fn demo(options: &Options, running: &mut Running) -> anyhow::Result<()> {
    let started = Instant::now();
    // One directory per database prefix: demos run at once (the tests run
    // two) keep their configs and logs apart.
    let work_dir = target_dir().join("demo").join(&options.database_prefix);
    std::fs::create_dir_all(work_dir.join("logs"))
        .with_context(|| format!("cannot create {}", work_dir.display()))?;
    let bins = Binaries::locate()?;

    let server = running
        .server
        .insert(DemoServer::find(options.private_cluster).await?);
    println!("PostgreSQL: {}", server.describe());
    let avni_db = format!("{}_avni", options.database_prefix);
    let forms_db = format!("{}_forms", options.database_prefix);
    let avni_url = server.recreate(&avni_db).await?;
    let forms_url = server.recreate(&forms_db).await?;
    // The forms repository's tables: the shipped set for the Drishti app's
    // forms (none are built into the service), applied by `migrate`, with
    // its mapping (the demo's pnc_visit children go to pnc_child_visit).
    let form_tables = crate::migrator::shipped_drishti_migrations();
    let mapping = crate::migrator::shipped_drishti_mapping();
    let migrator_config = work_dir.join("migrator.yaml");
    // First without the upstream (not started yet), for `migrate`.
    let write_migrator_config = |upstream_url: Option<&str>| {
        let sources = upstream_url.map_or(String::new(), |url| {
            format!(
                "sources:\n  - name: {SOURCE_NAME}\n    url: {url}\n    \
                 batch_size: 100\n    poll_interval_seconds: 10\n"
            )
        });
        std::fs::write(
            &migrator_config,
            format!(
                "# written by the demo\n{sources}form_migrations:\n  directory: {}\nform_mapping_file: {}\n",
                form_tables.display(),
                mapping.display()
            ),
        )
        .with_context(|| format!("cannot write {}", migrator_config.display()))
    };
    write_migrator_config(None)?;
    bins.migrate(&bins.etl, None, &avni_url)?;
    bins.migrate(&bins.migrator, Some(&migrator_config), &forms_url)?;
    println!(
        "Databases: {avni_db} (Avni source and reporting schemas), {forms_db} (forms repository), migrated"
    );

    let org = load_organisation(&avni_url, options.subjects).await?;
    let source_rows = summary::source_rows(&avni_url, &org).await?;
    println!(
        "Avni source: organisation {:?} ({}) with {} rows (subjects, enrolments, encounters)",
        org.name,
        org.uuid,
        summary::thousands(source_rows)
    );

    let generator = Generator::new(options.submissions);
    let elements = fake_upstream::with_sample_quirks(&generator, options.quirks_every)
        .map_err(|e| anyhow!(e))?;
    let total_submissions = elements.len() as u64;
    let newest = elements
        .iter()
        .filter_map(|e| e["serverVersion"].as_str()?.parse::<i64>().ok())
        .max()
        .unwrap_or(0);
    let upstream = running.upstream.insert(
        FakeUpstream::start_on("127.0.0.1:0", Data::Elements(elements))
            .await
            .map_err(|e| anyhow!(e))?,
    );
    let upstream_url = upstream.url();
    println!(
        "Drishti-style upstream: {upstream_url} serving {total_submissions} submissions \
         ({} of them the sample page's quirks)",
        total_submissions - options.submissions as u64
    );

    let token = options
        .token
        .clone()
        .unwrap_or_else(|| format!("demo-{}", uuid::Uuid::new_v4().simple()));
    let wanted = Ports::pick(options.free_ports);
    let etl_config = work_dir.join("etl.yaml");
    std::fs::write(
        &etl_config,
        "# written by the demo\netl:\n  scheduler_poll_ms: 200\n",
    )
    .with_context(|| format!("cannot write {}", etl_config.display()))?;
    write_migrator_config(Some(&upstream_url))?;

    let etl = running.etl.insert(start_service(
        &bins.etl,
        &etl_config,
        &avni_url,
        wanted.etl,
        wanted.etl_metrics,
        &token,
        &work_dir,
    )?);
    let migrator = running.migrator.insert(start_service(
        &bins.migrator,
        &migrator_config,
        &forms_url,
        wanted.migrator,
        wanted.migrator_metrics,
        &token,
        &work_dir,
    )?);
    let ports = Ports::bound(etl, migrator)?;
    println!(
        "etl-service:      gRPC {} (pid {}), metrics http://{}/metrics",
        ports.etl,
        etl.id(),
        ports.etl_metrics
    );
    println!(
        "migrator-service: gRPC {} (pid {}), metrics http://{}/metrics",
        ports.migrator,
        migrator.id(),
        ports.migrator_metrics
    );
    println!("Logs: {}", work_dir.join("logs").display());

    let mut etl_client =
        EtlServiceClient::with_interceptor(channel(ports.etl).await?, Bearer::new(Some(&token)));
    let mut migrator_client = FormsMigratorClient::with_interceptor(
        channel(ports.migrator).await?,
        Bearer::new(Some(&token)),
    );
    let entity = etl_pb::Entity {
        uuid: org.uuid.clone(),
        r#type: etl_pb::EntityType::Organisation as i32,
    };
    etl_client
        .enable_analytics(etl_pb::EnableAnalyticsRequest {
            entity: Some(entity.clone()),
        })
        .await
        .context("EnableAnalytics failed")?;
    println!(
        "Analytics enabled for {:?}; the migrator is draining the upstream ...\n",
        org.name
    );

    let work = progress::follow(
        &mut etl_client,
        &mut migrator_client,
        &entity,
        newest,
        total_submissions,
        options.timeout,
    )
    .await?;

    let report = summary::Report::collect(summary::Inputs {
        etl: &mut etl_client,
        migrator: &mut migrator_client,
        avni_url: &avni_url,
        forms_url: &forms_url,
        org: &org,
        work,
        ports: &ports,
        token: &token,
        total_submissions,
        elapsed: started.elapsed(),
    })
    .await?;
    print!("{report}");
    running.summary_printed = true;
    if !report.succeeded() {
        bail!(
            "the ETL run did not succeed: see the summary and {}",
            work_dir.join("logs").display()
        );
    }
    if options.once {
        println!("--once: stopping.");
        return Ok(());
    }
    println!("Serving until Ctrl-C.");
    wait_while_running(running).await
}

/// Returns when a service exits by itself (an error); Ctrl-C is handled by
/// the caller.
async fn wait_while_running(running: &mut Running) -> anyhow::Result<()> {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        for (name, process) in [
            ("etl-service", &mut running.etl),
            ("migrator-service", &mut running.migrator),
        ] {
            if let Some(p) = process
                && let Some(status) = p.exited()
            {
                bail!(
                    "{name} exited with {status}; see {}",
                    p.log_path().display()
                );
            }
        }
    }
}

async fn load_organisation(avni_url: &str, subjects: i64) -> anyhow::Result<Org> {
    let client = crate::postgres::connect(avni_url).await?;
    let spec = Spec {
        size: Size {
            subjects_per_type: subjects,
            encounters_per_enrolment: 2,
            encounters_per_subject: 1,
        },
        ..Spec::default()
    };
    // The generator is test code that panics on errors: keep a panic from
    // taking the demo down without its clean-up.
    let world = tokio::spawn(async move { avni::generate(&client, &spec).await })
        .await
        .map_err(|e| anyhow!("generating the demo organisation failed: {e}"))?;
    world
        .organisations
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("the generator made no organisation"))
}

fn start_service(
    binary: &Path,
    config: &Path,
    database_url: &str,
    listen: SocketAddr,
    metrics: SocketAddr,
    token: &str,
    work_dir: &Path,
) -> anyhow::Result<ServiceProcess> {
    let name = binary
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("service")
        .to_string();
    let config = config.to_string_lossy();
    let args = ["--config", config.as_ref(), "serve"];
    let listen_text = listen.to_string();
    let metrics_text = metrics.to_string();
    let env = [
        ("DATABASE_URL", database_url),
        ("GRPC_LISTEN", listen_text.as_str()),
        ("METRICS_LISTEN", metrics_text.as_str()),
        ("AUTH_TOKENS", token),
    ];
    let mut launch = Launch::new(binary, &args, &env, listen);
    launch.log_path = Some(work_dir.join("logs").join(format!("{name}.log")));
    launch.own_process_group = true;
    launch.startup_limit = Duration::from_secs(60);
    ServiceProcess::launch(launch).map_err(|e| anyhow!("{name} did not start: {e}"))
}

async fn channel(addr: SocketAddr) -> anyhow::Result<Channel> {
    Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await
        .with_context(|| format!("cannot connect to {addr}"))
}

/// The addresses both services listen on.
pub struct Ports {
    pub etl: SocketAddr,
    pub migrator: SocketAddr,
    pub etl_metrics: SocketAddr,
    pub migrator_metrics: SocketAddr,
}

impl Ports {
    /// The services' usual ports where they are free (so the README's
    /// commands work as written), else port 0: each service picks a free
    /// one itself and logs it, which [`Ports::bound`] reads back. (Ports
    /// picked here and bound later by the service could be taken in between,
    /// by a second demo for one.)
    fn pick(free_only: bool) -> Self {
        let pick = |usual: u16| {
            let free = !free_only && std::net::TcpListener::bind(("127.0.0.1", usual)).is_ok();
            SocketAddr::from(([127, 0, 0, 1], if free { usual } else { 0 }))
        };
        Self {
            etl: pick(50051),
            migrator: pick(50052),
            etl_metrics: pick(9464),
            migrator_metrics: pick(9465),
        }
    }

    /// Where the started services listen, as they logged it.
    fn bound(etl: &ServiceProcess, migrator: &ServiceProcess) -> anyhow::Result<Self> {
        let metrics = |p: &ServiceProcess, name: &str| {
            p.metrics_addr
                .ok_or_else(|| anyhow!("{name} serves no metrics; see {}", p.log_path().display()))
        };
        Ok(Self {
            etl: etl.addr,
            migrator: migrator.addr,
            etl_metrics: metrics(etl, "etl-service")?,
            migrator_metrics: metrics(migrator, "migrator-service")?,
        })
    }
}

/// The two service binaries, built in the demo's own profile when the demo
/// runs under cargo.
struct Binaries {
    etl: PathBuf,
    migrator: PathBuf,
}

impl Binaries {
    fn locate() -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find the demo's own path")?;
        let dir = exe
            .parent()
            .ok_or_else(|| anyhow!("{} has no directory", exe.display()))?;
        if let Ok(cargo) = std::env::var("CARGO") {
            let profile = match dir.file_name().and_then(|n| n.to_str()) {
                Some("debug") | None => "dev",
                Some(other) => other,
            };
            println!("Building etl-service and migrator-service ({profile} profile) ...");
            let status = Command::new(cargo)
                .current_dir(workspace_root())
                .args([
                    "build",
                    "--quiet",
                    "--profile",
                    profile,
                    "-p",
                    "etl-service",
                    "-p",
                    "migrator-service",
                    "--bin",
                    "etl-service",
                    "--bin",
                    "migrator-service",
                ])
                .status()
                .context("cannot run cargo build")?;
            if !status.success() {
                bail!("cargo build of the services failed ({status})");
            }
        }
        let bins = Self {
            etl: dir.join("etl-service"),
            migrator: dir.join("migrator-service"),
        };
        for b in [&bins.etl, &bins.migrator] {
            if !b.exists() {
                bail!(
                    "{} is missing: run the demo with cargo (see README.md), or build the services first",
                    b.display()
                );
            }
        }
        Ok(bins)
    }

    /// `<binary> [--config <config>] migrate` against `database_url`.
    fn migrate(
        &self,
        binary: &Path,
        config: Option<&Path>,
        database_url: &str,
    ) -> anyhow::Result<()> {
        let mut command = Command::new(binary);
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let output = command
            .arg("migrate")
            .env("DATABASE_URL", database_url)
            .env_remove("RUST_LOG")
            .output()
            .with_context(|| format!("cannot run {}", binary.display()))?;
        if !output.status.success() {
            bail!(
                "{} migrate failed: {}{}",
                binary.display(),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// A client type both halves of the demo use.
pub type EtlClient = EtlServiceClient<AuthedChannel>;
/// A client type both halves of the demo use.
pub type MigratorClient = FormsMigratorClient<AuthedChannel>;
