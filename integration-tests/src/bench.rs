//! Shared by the benchmark programs: timing summaries and writing a
//! program's results into its own section of `BENCHMARKS.md` (and a JSON
//! file under `target/bench/`), so re-running one benchmark never touches
//! another's figures.

use std::path::PathBuf;
use std::time::Duration;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Replaces the text between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`
/// in BENCHMARKS.md (appending the section when it is not there yet), and
/// writes `json` to `target/bench/NAME.json`.
pub fn publish(name: &str, markdown: &str, json: &serde_json::Value) -> std::io::Result<()> {
    publish_in(
        "BENCHMARKS.md",
        "# Benchmarks\n\nEach section is written by the benchmark program named in it; ratios compare against a baseline measured in the same run on the same data.\n",
        name,
        markdown,
        json,
    )
}

/// Like [`publish`], into `file` (at the top of the workspace), which is
/// created with `heading` when absent.
pub fn publish_in(
    file: &str,
    heading: &str,
    name: &str,
    markdown: &str,
    json: &serde_json::Value,
) -> std::io::Result<()> {
    let path = root().join(file);
    let current = std::fs::read_to_string(&path).unwrap_or_else(|_| heading.to_string());
    let open = format!("<!-- bench:{name} -->");
    let close = format!("<!-- /bench:{name} -->");
    let section = format!("{open}\n{}\n{close}", markdown.trim_end());
    let updated = match (current.find(&open), current.find(&close)) {
        (Some(a), Some(b)) if b > a => {
            format!(
                "{}{}{}",
                &current[..a],
                section,
                &current[b + close.len()..]
            )
        }
        _ => format!("{}\n{}\n", current.trim_end(), section),
    };
    std::fs::write(&path, updated)?;
    let dir = root().join("target").join("bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join(format!("{name}.json")),
        serde_json::to_string_pretty(json).unwrap_or_default(),
    )
}

/// Mean, median and 99th percentile of samples.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub mean: Duration,
    pub p50: Duration,
    pub p99: Duration,
}

pub fn summarise(samples: &mut [Duration]) -> Summary {
    samples.sort();
    let n = samples.len().max(1);
    let total: Duration = samples.iter().sum();
    let at = |q: f64| {
        samples
            .get(
                ((n as f64 * q).ceil() as usize)
                    .saturating_sub(1)
                    .min(n - 1),
            )
            .copied()
            .unwrap_or_default()
    };
    Summary {
        mean: total / n as u32,
        p50: at(0.5),
        p99: at(0.99),
    }
}

/// Milliseconds with two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}
