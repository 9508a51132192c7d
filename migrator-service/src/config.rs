//! migrator-service's configuration: the shared sections plus the upstream
//! `sources:` and the optional `form_mapping:`.
//!
//! Durations are given in seconds and may be fractional (`0.5`), so tests can
//! run with short intervals and timeouts.

use serde::Deserialize;
use service_kit::config::{
    DatabaseSettings, LogSettings, MetricsSettings, MigrationSettings, ServerSettings,
    ServiceConfig, ServiceDefaults,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The whole configuration file. Every key is optional; unknown keys are
/// errors.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub database: DatabaseSettings,
    pub server: ServerSettings,
    pub log: LogSettings,
    pub migrations: MigrationSettings,
    pub metrics: MetricsSettings,
    /// The upstream servers to poll; none means the service only serves its
    /// API (audits, errors) over the repository.
    pub sources: Vec<SourceSettings>,
    /// Renames for forms whose names do not fit the naming convention, keyed
    /// by `formName`; a form's sub-forms are mapped under it
    /// (`sub_forms:`), apart from the forms, since a sub-form may share its
    /// name with a form (`child_registration_oa`). Forms and sub-forms not
    /// listed follow the convention: table = form (or sub-form) name,
    /// column = field name in snake_case, the field `id` ->
    /// `<bind_type>_id`.
    pub form_mapping: BTreeMap<String, FormMapping>,
    /// A YAML file of `form_mapping` entries, e.g. the repository's
    /// `forms/drishti/form_mapping.yaml` for the Drishti app's forms; an
    /// entry of `form_mapping:` here replaces the file's entry for the same
    /// form. A relative path is taken from the working directory.
    pub form_mapping_file: Option<PathBuf>,
    /// The deployment's form-table migrations.
    pub form_migrations: FormMigrationSettings,
}

impl Config {
    /// The form mapping in force: `form_mapping_file`'s entries, replaced
    /// form by form by `form_mapping:`'s. `Err` names the file and why it
    /// cannot be read.
    pub fn effective_form_mapping(&self) -> Result<BTreeMap<String, FormMapping>, String> {
        let mut mapping = match &self.form_mapping_file {
            Some(path) => read_form_mapping_file(path)?,
            None => BTreeMap::new(),
        };
        mapping.extend(self.form_mapping.clone());
        Ok(mapping)
    }
}

/// The entries of a `form_mapping_file`.
fn read_form_mapping_file(path: &std::path::Path) -> Result<BTreeMap<String, FormMapping>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("form_mapping_file {}: {e}", path.display()))?;
    serde_yaml::from_str::<Option<BTreeMap<String, FormMapping>>>(&text)
        .map(Option::unwrap_or_default)
        .map_err(|e| format!("form_mapping_file {}: {e}", path.display()))
}

/// `form_migrations:`: where the deployment's form-table migrations are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FormMigrationSettings {
    /// A directory of `*.sql` files, applied in file-name order by
    /// `migrator-service migrate` (with `migrations.apply_on_start`, at
    /// start-up too); none: the service applies no form migrations.
    pub directory: Option<PathBuf>,
}

/// How one form maps onto the repository when the convention does not fit.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FormMapping {
    /// The table that holds this form's rows (default: the form's name).
    pub table: Option<String>,
    /// Field name (as sent, e.g. `wifeAge`) -> column name, for fields whose
    /// column is not the snake_case of the field name.
    pub columns: BTreeMap<String, String>,
    /// This form's sub-forms, by sub-form name (as sent in
    /// `sub_forms[].name`).
    pub sub_forms: BTreeMap<String, SubFormMapping>,
    /// A field with no column fails the submission (`true`) or is left out
    /// and recorded in `unmapped_field` (`false`); unset: the source's
    /// `strict`.
    pub strict: Option<bool>,
}

/// How one sub-form of a form maps onto its child table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubFormMapping {
    /// The child table (default: the sub-form's name); it has a foreign key
    /// to the parent form's table.
    pub table: Option<String>,
    /// Field name -> column name, as for forms.
    pub columns: BTreeMap<String, String>,
}

/// A secret from the config (a password): never printed, not even by
/// `{:?}`.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it (the HTTP request).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

/// One upstream Drishti-compatible server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSettings {
    /// A short name, used in audits, logs and the API.
    pub name: String,
    /// The `all-form-submissions` URL (`https://host/all-form-submissions`);
    /// the service sets `timestamp` and `batch-size`, replacing any the URL
    /// carries itself (the original configuration's
    /// `?timestamp=0&batch-size=100`); its other query parameters are kept.
    pub url: String,
    /// HTTP Basic auth user name; none sends no credentials.
    #[serde(default)]
    pub username: Option<String>,
    /// HTTP Basic auth password. Never logged.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Submissions asked for per batch (`batch-size`). Default 100.
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// Seconds between polls once the backlog is drained. Default 180 (3
    /// minutes).
    #[serde(default = "default_poll_interval")]
    pub poll_interval_seconds: f64,
    /// Seconds allowed to open a connection to the upstream. Default 10.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_seconds: f64,
    /// Seconds allowed for one whole request, body included. Default 60.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_seconds: f64,
    /// A PEM file with extra CA certificates to trust (for an upstream with
    /// a private CA). The system's roots stay trusted; certificates are
    /// always verified.
    #[serde(default)]
    pub ca_certificate: Option<PathBuf>,
    /// Largest response body accepted, in bytes. The body is read in
    /// chunks and the request stops as soon as it passes the limit, so a
    /// runaway page costs at most this much memory. Default 32 MiB (a page
    /// of 100 real submissions is well under 1 MiB).
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: u64,
    /// After a batch, when the repository's catalog changed since this
    /// source last looked (a migration added a table or a column, while
    /// the service ran or before it started), fill the new columns from the
    /// archive for what this source already wrote, as `RefillColumns` does,
    /// under the source's batch lock. Default `true`; `false` leaves it to
    /// `RefillColumns`.
    #[serde(default = "default_true")]
    pub refill_after_migrations: bool,
    /// A field with no column fails its submission (`true`), or (`false`,
    /// the default) the submission is written with the fields that have
    /// columns and the field is recorded in `unmapped_field`. A form's
    /// `form_mapping.<form>.strict` overrides it.
    #[serde(default)]
    pub strict: bool,
    /// Retries of one request on connection errors, timeouts, 5xx, 429 and
    /// a 200 whose body is not a JSON array (a page cut short by a proxy).
    #[serde(default)]
    pub retry: RetrySettings,
}

/// `sources[].retry:`: how one upstream request is retried.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// Retries after the first attempt before the poll gives up until the
    /// next interval. Default 5.
    pub max_retries: u32,
    /// First backoff delay in seconds; it doubles on each retry, with
    /// jitter. Default 0.5.
    pub min_delay_seconds: f64,
    /// Largest backoff delay in seconds. Default 30.
    pub max_delay_seconds: f64,
    /// Longest `Retry-After` honoured, in seconds; a longer one ends the
    /// poll until the next interval. Default 300.
    pub max_retry_after_seconds: f64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_retries: 5,
            min_delay_seconds: 0.5,
            max_delay_seconds: 30.0,
            max_retry_after_seconds: 300.0,
        }
    }
}

impl SourceSettings {
    /// A source with defaults for everything but its name and URL.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            url: url.into(),
            username: None,
            password: None,
            batch_size: default_batch_size(),
            poll_interval_seconds: default_poll_interval(),
            connect_timeout_seconds: default_connect_timeout(),
            request_timeout_seconds: default_request_timeout(),
            ca_certificate: None,
            max_response_bytes: default_max_response_bytes(),
            refill_after_migrations: true,
            strict: false,
            retry: RetrySettings::default(),
        }
    }

    pub fn poll_interval(&self) -> Duration {
        seconds(self.poll_interval_seconds)
    }
    pub fn connect_timeout(&self) -> Duration {
        seconds(self.connect_timeout_seconds)
    }
    pub fn request_timeout(&self) -> Duration {
        seconds(self.request_timeout_seconds)
    }
}

impl RetrySettings {
    pub fn min_delay(&self) -> Duration {
        seconds(self.min_delay_seconds)
    }
    pub fn max_delay(&self) -> Duration {
        seconds(self.max_delay_seconds)
    }
    pub fn max_retry_after(&self) -> Duration {
        seconds(self.max_retry_after_seconds)
    }
}

/// Seconds to a `Duration`; invalid values were refused by `validate`, so
/// this only guards against them (as zero).
fn seconds(value: f64) -> Duration {
    Duration::try_from_secs_f64(value).unwrap_or(Duration::ZERO)
}

fn default_batch_size() -> u32 {
    100
}
fn default_poll_interval() -> f64 {
    180.0
}
fn default_connect_timeout() -> f64 {
    10.0
}
fn default_request_timeout() -> f64 {
    60.0
}
fn default_max_response_bytes() -> u64 {
    32 * 1024 * 1024
}

fn default_true() -> bool {
    true
}

/// Bounds of `sources[].max_response_bytes`.
pub const MIN_RESPONSE_BYTES: u64 = 1024;
pub const MAX_RESPONSE_BYTES: u64 = 1024 * 1024 * 1024;

/// Largest `batch-size` asked for; bounds memory per batch.
pub const MAX_BATCH_SIZE: u32 = 10_000;

fn check_seconds(source: &str, key: &str, value: f64, min: f64) -> Result<(), String> {
    if !value.is_finite() || value < min || value > 7.0 * 24.0 * 3600.0 {
        return Err(format!(
            "sources[{source}].{key} must be between {min} and 604800 seconds, got {value}"
        ));
    }
    Ok(())
}

impl ServiceConfig for Config {
    const DEFAULTS: ServiceDefaults = ServiceDefaults {
        binary: "migrator-service",
        database_name: "drishti_forms",
        port: 50052,
        metrics_port: 9465,
        // One batch's statements take well under a second; a minute means a hang.
        statement_timeout_ms: 60_000,
    };

    service_kit::shared_sections!();

    fn validate(&self) -> Result<(), String> {
        let mut names = std::collections::HashSet::new();
        for source in &self.sources {
            let name = source.name.as_str();
            if name.trim().is_empty() {
                return Err("sources[].name must not be empty".into());
            }
            if !names.insert(name) {
                return Err(format!("sources: the name {name:?} is used twice"));
            }
            source.validate()?;
        }
        if let Some(dir) = &self.form_migrations.directory
            && !dir.is_dir()
        {
            return Err(format!(
                "form_migrations.directory {} is not a directory",
                dir.display()
            ));
        }
        let empty = |s: &str| s.trim().is_empty();
        let blank = |table: &Option<String>, columns: &BTreeMap<String, String>| {
            table.as_deref().is_some_and(empty) || columns.iter().any(|(k, v)| empty(k) || empty(v))
        };
        for (form, mapping) in &self.effective_form_mapping()? {
            if empty(form) || blank(&mapping.table, &mapping.columns) {
                return Err(format!("form_mapping[{form}]: names must not be empty"));
            }
            for (sub_form, sub) in &mapping.sub_forms {
                if empty(sub_form) || blank(&sub.table, &sub.columns) {
                    return Err(format!(
                        "form_mapping[{form}].sub_forms[{sub_form}]: names must not be empty"
                    ));
                }
            }
        }
        Ok(())
    }
}

impl SourceSettings {
    /// Checks one source's keys; the message names the source and the key.
    fn validate(&self) -> Result<(), String> {
        let name = self.name.as_str();
        match reqwest::Url::parse(&self.url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {}
            _ => {
                return Err(format!(
                    "sources[{name}].url must be an http:// or https:// URL"
                ));
            }
        }
        if self.batch_size == 0 || self.batch_size > MAX_BATCH_SIZE {
            return Err(format!(
                "sources[{name}].batch_size must be between 1 and {MAX_BATCH_SIZE}"
            ));
        }
        if !(MIN_RESPONSE_BYTES..=MAX_RESPONSE_BYTES).contains(&self.max_response_bytes) {
            return Err(format!(
                "sources[{name}].max_response_bytes must be between {MIN_RESPONSE_BYTES} and {MAX_RESPONSE_BYTES}"
            ));
        }
        if self.password.is_some() && self.username.is_none() {
            return Err(format!(
                "sources[{name}].password is set but username is not"
            ));
        }
        self.validate_durations()?;
        if let Some(path) = &self.ca_certificate
            && !path.is_file()
        {
            return Err(format!(
                "sources[{name}].ca_certificate {} is not a readable file",
                path.display()
            ));
        }
        Ok(())
    }

    fn validate_durations(&self) -> Result<(), String> {
        let name = self.name.as_str();
        let retry = &self.retry;
        for (key, value, min) in [
            ("poll_interval_seconds", self.poll_interval_seconds, 0.01),
            (
                "connect_timeout_seconds",
                self.connect_timeout_seconds,
                0.01,
            ),
            (
                "request_timeout_seconds",
                self.request_timeout_seconds,
                0.01,
            ),
            ("retry.min_delay_seconds", retry.min_delay_seconds, 0.0),
            ("retry.max_delay_seconds", retry.max_delay_seconds, 0.0),
            (
                "retry.max_retry_after_seconds",
                retry.max_retry_after_seconds,
                0.0,
            ),
        ] {
            check_seconds(name, key, value, min)?;
        }
        if retry.max_delay_seconds < retry.min_delay_seconds {
            return Err(format!(
                "sources[{name}].retry.max_delay_seconds must not be below min_delay_seconds"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::Write;

    fn load(yaml: &str) -> Result<Config, String> {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(yaml.as_bytes()).expect("write");
        service_kit::config::load(Some(f.path()), &HashMap::<String, String>::new())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn reads_a_source_with_defaults() {
        let c = load(
            "sources:\n  - name: drishti\n    url: https://example.org/all-form-submissions\n    username: u\n    password: hunter2\n",
        )
        .expect("loads");
        let s = &c.sources[0];
        assert_eq!(s.batch_size, 100);
        assert_eq!(s.poll_interval(), Duration::from_secs(180));
        assert_eq!(s.retry.max_retries, 5);
        assert_eq!(s.max_response_bytes, 32 * 1024 * 1024);
        assert_eq!(s.password.as_ref().map(Secret::expose), Some("hunter2"));
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "password leaked: {shown}");
    }

    #[test]
    fn refuses_bad_values_and_unknown_keys() {
        for (yaml, needle) in [
            ("sources:\n  - name: a\n    url: ftp://x\n", "url"),
            (
                "sources:\n  - name: a\n    url: http://x\n    batch_size: 0\n",
                "batch_size",
            ),
            (
                "sources:\n  - name: a\n    url: http://x\n    poll_interval_seconds: -1\n",
                "poll_interval_seconds",
            ),
            (
                "sources:\n  - name: a\n    url: http://x\n    colour: red\n",
                "colour",
            ),
            (
                "sources:\n  - name: a\n    url: http://x\n  - name: a\n    url: http://y\n",
                "twice",
            ),
            (
                "sources:\n  - name: a\n    url: http://x\n    password: p\n",
                "username",
            ),
            (
                "sources:\n  - name: a\n    url: http://x\n    max_response_bytes: 10\n",
                "max_response_bytes",
            ),
        ] {
            let err = load(yaml).expect_err(yaml);
            assert!(err.contains(needle), "{err} should mention {needle}");
        }
    }

    #[test]
    fn the_example_config_is_valid() {
        let c = load(include_str!("../config.example.yaml")).expect("the example loads");
        assert_eq!(c.sources.len(), 1);
        assert_eq!(c.sources[0].batch_size, 100);
        assert_eq!(c.sources[0].poll_interval(), Duration::from_secs(180));
        assert!(c.form_mapping.contains_key("ec_edit_v9"));
    }

    #[test]
    fn reads_the_shipped_drishti_mapping_file_under_inline_entries() {
        let shipped = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../forms/drishti/form_mapping.yaml"
        );
        let c = load(&format!(
            "form_mapping_file: {shipped}\nform_mapping:\n  tt_booster: {{table: tt_boosters}}\n"
        ))
        .expect("loads");
        let m = c.effective_form_mapping().expect("the file reads");
        assert_eq!(m["tt_1"].table.as_deref(), Some("tt"));
        assert_eq!(
            m["tt_booster"].table.as_deref(),
            Some("tt_boosters"),
            "inline wins"
        );
        assert_eq!(
            m["pnc_registration_oa"].sub_forms["child_registration_oa"]
                .table
                .as_deref(),
            Some("pnc_registration_oa_child")
        );
    }

    #[test]
    fn refuses_a_mapping_file_that_is_missing_or_not_a_mapping() {
        let err = load("form_mapping_file: /nonexistent/form_mapping.yaml\n").expect_err("missing");
        assert!(
            err.contains("form_mapping_file /nonexistent/form_mapping.yaml"),
            "{err}"
        );
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(b"tt_1: {table: tt, colour: red}\n")
            .expect("write");
        let err =
            load(&format!("form_mapping_file: {}\n", f.path().display())).expect_err("bad key");
        assert!(
            err.contains("form_mapping_file") && err.contains("colour"),
            "{err}"
        );
    }

    #[test]
    fn reads_form_mapping() {
        let c = load("form_mapping:\n  ec_edit_v9:\n    table: ec_registration\n    columns:\n      wifeName: name_of_wife\n").expect("loads");
        let m = &c.form_mapping["ec_edit_v9"];
        assert_eq!(m.table.as_deref(), Some("ec_registration"));
        assert_eq!(m.columns["wifeName"], "name_of_wife");
    }
}
