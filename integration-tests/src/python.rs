//! The Python client of the contracts: `grpcio-tools` (pinned in
//! `integration-tests/python/requirements.txt`) installed into
//! `target/tools/pyclient`, and code generated from `proto/` with it, as
//! README.md shows for clients in other languages.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The pinned requirements.
pub fn requirements_path() -> PathBuf {
    workspace_root().join("integration-tests/python/requirements.txt")
}

/// The `.proto` files, relative to `proto/`.
pub const PROTO_FILES: [&str; 2] = [
    "avni/etl/v1/etl_service.proto",
    "avni/migrator/v1/forms_migrator.proto",
];

/// The directory with `grpc`, `grpc_tools` and `google.protobuf`, installed
/// with pip on first use (and again when the requirements change: the
/// installed copy is stamped with them).
pub fn site_packages() -> Result<PathBuf, String> {
    static SITE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    SITE.get_or_init(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("target"));
        let dir = target.join("tools/pyclient");
        let stamp = dir.join(".requirements-installed");
        let wanted = std::fs::read_to_string(requirements_path())
            .map_err(|e| format!("{}: {e}", requirements_path().display()))?;
        if std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
            return Ok(dir);
        }
        let output = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--upgrade",
                "--target",
            ])
            .arg(&dir)
            .arg("-r")
            .arg(requirements_path())
            .output()
            .map_err(|e| format!("cannot run pip: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "pip install -r {} failed: {}",
                requirements_path().display(),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        std::fs::write(&stamp, wanted).map_err(|e| format!("{}: {e}", stamp.display()))?;
        Ok(dir)
    })
    .clone()
}

/// Generates the Python messages, stubs and type stubs of every contract
/// into `out` (`avni/etl/v1/etl_service_pb2.py`, `..._pb2_grpc.py`, ...).
pub fn generate_client(out: &Path) -> Result<(), String> {
    let site = site_packages()?;
    let output = Command::new("python3")
        .current_dir(workspace_root().join("proto"))
        .env("PYTHONPATH", &site)
        .args(["-m", "grpc_tools.protoc", "-I", "."])
        .arg(format!("--python_out={}", out.display()))
        .arg(format!("--grpc_python_out={}", out.display()))
        .arg(format!("--pyi_out={}", out.display()))
        .args(PROTO_FILES)
        .output()
        .map_err(|e| format!("cannot run grpc_tools.protoc: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "grpc_tools.protoc failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}
