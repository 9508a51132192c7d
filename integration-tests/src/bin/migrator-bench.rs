//! `migrator-bench`: the forms migrator's throughput and memory.
//!
//! For each batch size: N generated submissions from the fake upstream (the
//! `fake-upstream` binary, over real HTTP on loopback) drained into a fresh
//! repository by
//! the migrator's own drain, then the same rows (form rows, sub-form rows
//! and archive rows, converted by the migrator's own code) written with
//! `COPY` into another fresh repository, in the same run. Ratios count, not
//! absolute seconds: the machines are shared and noisy.
//!
//! Memory: the process's peak RSS (VmHWM, reset before each drain) and its
//! RSS as the drain goes on.
//!
//! Run: `cargo build --release -p integration-tests --bins &&
//! target/release/migrator-bench [--count N]`.

use clap::Parser;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use futures::SinkExt;
use integration_tests::fake_upstream::{Data, FakeUpstream, Generator};
use migrator_service::config::{Config, SourceSettings};
use migrator_service::poll::submission::decode;
use migrator_service::repository::catalog::{Catalog, Naming};
use migrator_service::repository::form_writer::{PreparedRow, prepare};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "migrator-bench")]
struct Args {
    /// Submissions generated upstream.
    #[arg(long, default_value_t = 200_000)]
    count: usize,
    /// Batch sizes to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [100u32, 1000])]
    batch_sizes: Vec<u32>,
    /// The Markdown file whose "Forms migrator" section gets the results.
    #[arg(long, default_value = "BENCHMARKS.md")]
    output: PathBuf,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The upstream: the `fake-upstream` binary beside this one when it is
/// there (another process, as a real server is, so its work is not counted
/// in this process's time or memory), else an in-process fake.
struct Upstream {
    url: String,
    place: &'static str,
    _child: Option<ChildGuard>,
    _in_process: Option<FakeUpstream>,
}

struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Upstream {
    async fn start(count: usize) -> Result<Self, String> {
        let sibling = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("fake-upstream")))
            .filter(|p| p.exists());
        if let Some(path) = sibling {
            let port = integration_tests::postgres::free_port()?;
            let listen = format!("127.0.0.1:{port}");
            let child = std::process::Command::new(&path)
                .args(["--listen", &listen, "--generate", &count.to_string()])
                .stdout(std::process::Stdio::null())
                .spawn()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let guard = ChildGuard(child);
            let started = Instant::now();
            while std::net::TcpStream::connect(&listen).is_err() {
                if started.elapsed() > Duration::from_secs(10) {
                    return Err("fake-upstream did not start".into());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            return Ok(Self {
                url: format!("http://{listen}{}", integration_tests::fake_upstream::PATH),
                place: "the `fake-upstream` binary, a separate process",
                _child: Some(guard),
                _in_process: None,
            });
        }
        let fake = FakeUpstream::start(Data::Generated(Generator::new(count))).await;
        Ok(Self {
            url: fake.url(),
            place: "an in-process fake (its work is counted with the migrator's)",
            _child: None,
            _in_process: Some(fake),
        })
    }
}

/// One batch size's results.
struct Run {
    batch_size: u32,
    migrator: Duration,
    copy: Duration,
    peak_rss_kb: u64,
    /// (submissions processed, RSS in kB) as the drain went on.
    rss_samples: Vec<(usize, u64)>,
}

impl Run {
    fn rate(&self, count: usize, d: Duration) -> f64 {
        count as f64 / d.as_secs_f64().max(1e-9)
    }
}

fn proc_status_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Resets VmHWM to the current RSS (Linux: "5" to clear_refs).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

async fn drain(
    count: usize,
    upstream_url: &str,
    batch_size: u32,
) -> Result<(Duration, u64, Vec<(usize, u64)>), String> {
    let db = integration_tests::migrator::migrated_repository().await;
    let mut config = Config::default();
    config.database.url = db.url.clone();
    config.database.pool_size = 2;
    let mut source = SourceSettings::new("bench", upstream_url);
    source.batch_size = batch_size;
    source.request_timeout_seconds = 120.0;
    config.sources = vec![source];
    let pool = service_kit::db::build_pool(&config.database);
    let migrator =
        migrator_service::app::build_migrator(pool, &config).map_err(|e| e.to_string())?;
    let Some(source) = migrator.source("bench").cloned() else {
        return Err("no source".into());
    };
    reset_peak_rss();
    let mut samples = Vec::new();
    let mut next_sample = 0usize;
    let started = Instant::now();
    let summary = migrator
        .drain(&source, &CancellationToken::new(), |s| {
            let done = s.written + s.failed + s.duplicates;
            if done >= next_sample {
                samples.push((done, proc_status_kb("VmRSS:")));
                next_sample = done + count / 10;
            }
        })
        .await
        .map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    let peak = proc_status_kb("VmHWM:");
    samples.push((count, proc_status_kb("VmRSS:")));
    if summary.written != count || summary.failed != 0 {
        return Err(format!(
            "the drain wrote {} and failed {} of {count}",
            summary.written, summary.failed
        ));
    }
    let client = db.client().await;
    let rows: i64 = client
        .query_one(
            "SELECT (SELECT count(*) FROM ec_registration) + (SELECT count(*) FROM anc_registration) \
             + (SELECT count(*) FROM anc_visit) + (SELECT count(*) FROM pnc_visit)",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    if rows != count as i64 {
        return Err(format!(
            "{rows} form rows after the drain, expected {count}"
        ));
    }
    Ok((elapsed, peak, samples))
}

/// A value in COPY's text format.
fn copy_field(out: &mut String, value: Option<&str>) {
    let Some(v) = value else {
        out.push_str("\\N");
        return;
    };
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// COPY text of every table for the same submissions, built before the
/// clock starts so only the database's work is timed.
struct CopyData {
    /// table -> (column list, rows as COPY text)
    tables: BTreeMap<String, (Vec<String>, String)>,
}

fn copy_data(generator: &Generator, catalog: &Catalog) -> Result<CopyData, String> {
    let naming = Naming::default();
    let mut tables: BTreeMap<String, (Vec<String>, String)> = BTreeMap::new();
    let mut next_id: BTreeMap<String, i64> = BTreeMap::new();
    let archive_columns: Vec<String> = [
        "source",
        "instance_id",
        "form_name",
        "entity_id",
        "anm_id",
        "client_version",
        "server_version",
        "payload",
        "status",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for i in 0..generator.count {
        let raw = generator.element(i).to_string();
        let sub = decode(&raw).map_err(|f| f.detail)?;
        let row: PreparedRow = prepare(&sub, catalog, &naming, false).map_err(|f| f.detail)?;
        let Some(table) = catalog.table(&row.table) else {
            return Err(format!("no table {}", row.table));
        };
        // Parent ids are given explicitly so sub-form rows can point at them.
        let id = {
            let n = next_id.entry(row.table.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let mut values: Vec<Option<String>> = vec![None; table.columns.len()];
        for (c, v) in &row.values {
            values[*c] = v.clone();
        }
        if let Some((id_col, _)) = table.column("id") {
            values[id_col] = Some(id.to_string());
        }
        let entry = tables.entry(table.name.clone()).or_insert_with(|| {
            (
                table.columns.iter().map(|c| c.name.clone()).collect(),
                String::new(),
            )
        });
        push_row(&mut entry.1, &values);
        for child in &row.children {
            let Some(child_table) = catalog.table(&child.table) else {
                return Err(format!("no table {}", child.table));
            };
            let columns: Vec<String> = child_table
                .columns
                .iter()
                .filter(|c| c.name != "id")
                .map(|c| c.name.clone())
                .collect();
            let entry = tables
                .entry(child_table.name.clone())
                .or_insert_with(|| (columns.clone(), String::new()));
            for child_row in &child.rows {
                let mut values: Vec<Option<String>> = vec![None; child_table.columns.len()];
                for (c, v) in child_row {
                    values[*c] = v.clone();
                }
                if let Some((fk, _)) = child_table.column(&child.fk_column) {
                    values[fk] = Some(id.to_string());
                }
                let kept: Vec<Option<String>> = child_table
                    .columns
                    .iter()
                    .zip(values)
                    .filter(|(c, _)| c.name != "id")
                    .map(|(_, v)| v)
                    .collect();
                push_row(&mut entry.1, &kept);
            }
        }
        let archive = tables
            .entry("form_submission".to_string())
            .or_insert_with(|| (archive_columns.clone(), String::new()));
        push_row(
            &mut archive.1,
            &[
                Some("bench".to_string()),
                Some(sub.instance_id.clone()),
                Some(sub.form_name.clone()),
                sub.entity_id.clone(),
                sub.anm_id.clone(),
                sub.client_version.map(|v| v.to_string()),
                Some(sub.server_version.to_string()),
                Some(raw),
                Some("written".to_string()),
            ],
        );
    }
    Ok(CopyData { tables })
}

fn push_row(out: &mut String, values: &[Option<String>]) {
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push('\t');
        }
        copy_field(out, v.as_deref());
    }
    out.push('\n');
}

async fn copy_baseline(generator: &Generator) -> Result<Duration, String> {
    let db = integration_tests::migrator::migrated_repository().await;
    let catalog = {
        let mut conn = AsyncPgConnection::establish(&db.url)
            .await
            .map_err(|e| e.to_string())?;
        Catalog::load(&mut conn).await.map_err(|e| e.to_string())?
    };
    let data = copy_data(generator, &catalog)?;
    let mut client = db.client().await;
    // Parents first, so the children's foreign keys hold.
    let order = |name: &str| usize::from(name == "child_pnc_visit");
    let mut tables: Vec<_> = data.tables.into_iter().collect();
    tables.sort_by_key(|(name, _)| order(name));
    let started = Instant::now();
    let tx = client.transaction().await.map_err(|e| e.to_string())?;
    for (name, (columns, text)) in tables {
        let columns: Vec<String> = columns
            .iter()
            .map(|c| service_kit::sql::quote_ident(c))
            .collect();
        let sql = format!(
            "COPY {} ({}) FROM STDIN",
            service_kit::sql::quote_ident(&name),
            columns.join(", ")
        );
        let sink = tx.copy_in(&sql).await.map_err(|e| format!("{sql}: {e}"))?;
        let mut sink = Box::pin(sink);
        for chunk in text.as_bytes().chunks(1 << 20) {
            sink.send(bytes::Bytes::copy_from_slice(chunk))
                .await
                .map_err(|e| format!("{name}: {e}"))?;
        }
        sink.as_mut()
            .finish()
            .await
            .map_err(|e| format!("{name}: {e}"))?;
    }
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(started.elapsed())
}

fn report(count: usize, runs: &[Run], command: &str, upstream: &str) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "## Forms migrator\n");
    let _ = writeln!(
        t,
        "Produced by `{command}` on the project machine (2 shared cores). {count} generated submissions \
         (four forms in turn; every fourth a `pnc_visit` with two `child_pnc_visit` rows) served over loopback HTTP \
         by {upstream}, drained into a fresh repository, against `COPY` of the same rows (form, sub-form and \
         `form_submission` archive rows, converted by the migrator's own code beforehand) into another fresh \
         repository in the same run. The ratio is what counts; the target at batch size 1,000 is 0.25.\n"
    );
    let _ = writeln!(
        t,
        "| batch size | migrator (s) | migrator (submissions/s) | COPY (s) | COPY (submissions/s) | ratio | peak RSS (MB) | RSS at 10% → 100% of the backlog (MB) |"
    );
    let _ = writeln!(t, "|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in runs {
        let m = r.rate(count, r.migrator);
        let c = r.rate(count, r.copy);
        let samples: Vec<String> = r
            .rss_samples
            .iter()
            .map(|(_, kb)| format!("{:.0}", *kb as f64 / 1024.0))
            .collect();
        let _ = writeln!(
            t,
            "| {} | {:.1} | {:.0} | {:.1} | {:.0} | {:.2} | {:.0} | {} |",
            r.batch_size,
            r.migrator.as_secs_f64(),
            m,
            r.copy.as_secs_f64(),
            c,
            m / c,
            r.peak_rss_kb as f64 / 1024.0,
            samples.join(" → ")
        );
    }
    let _ = writeln!(
        t,
        "\nThe reference system managed 100 submissions per 3 minutes (0.56/s). Peak RSS (VmHWM) is of the \
         benchmark process, which runs the migrator's drain, reset before each drain; the RSS column samples it \
         every tenth of the backlog."
    );
    t
}

/// Replaces (or appends) the "## Forms migrator" section.
fn write_section(path: &PathBuf, section: &str) -> Result<(), String> {
    let existing = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".to_string());
    let updated = match existing.find("## Forms migrator") {
        Some(start) => {
            let rest = &existing[start + 3..];
            let end = rest
                .find("\n## ")
                .map(|i| start + 3 + i + 1)
                .unwrap_or(existing.len());
            format!("{}{}{}", &existing[..start], section, &existing[end..])
        }
        None => format!(
            "{}\n{}",
            existing.trim_end_matches('\n').to_string() + "\n",
            section
        ),
    };
    std::fs::write(path, updated).map_err(|e| format!("{}: {e}", path.display()))
}

async fn run(args: Args) -> Result<(), String> {
    let generator = Generator::new(args.count);
    let upstream = Upstream::start(args.count).await?;
    let mut runs = Vec::new();
    for &batch_size in &args.batch_sizes {
        eprintln!(
            "batch size {batch_size}: draining {} submissions…",
            args.count
        );
        let (migrator, peak_rss_kb, rss_samples) =
            drain(args.count, &upstream.url, batch_size).await?;
        eprintln!("batch size {batch_size}: COPY of the same rows…");
        let copy = copy_baseline(&generator).await?;
        runs.push(Run {
            batch_size,
            migrator,
            copy,
            peak_rss_kb,
            rss_samples,
        });
    }
    let command = format!(
        "cargo build --release -p integration-tests --bins && target/release/migrator-bench --count {} --batch-sizes {}",
        args.count,
        args.batch_sizes
            .iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let section = report(args.count, &runs, &command, upstream.place);
    println!("{section}");
    write_section(&args.output, &section)?;
    if let Some(path) = &args.json {
        let json: Vec<serde_json::Value> = runs
            .iter()
            .map(|r| {
                serde_json::json!({
                    "batch_size": r.batch_size,
                    "submissions": args.count,
                    "migrator_seconds": r.migrator.as_secs_f64(),
                    "copy_seconds": r.copy.as_secs_f64(),
                    "ratio": r.copy.as_secs_f64() / r.migrator.as_secs_f64().max(1e-9),
                    "peak_rss_kb": r.peak_rss_kb,
                    "rss_samples_kb": r.rss_samples,
                })
            })
            .collect();
        std::fs::write(
            path,
            serde_json::to_string_pretty(&json).unwrap_or_default(),
        )
        .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("migrator-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
