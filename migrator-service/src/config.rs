//! migrator-service's configuration: the shared sections plus the upstream
//! `sources:`.

use serde::Deserialize;
use service_kit::config::{
    DatabaseSettings, LogSettings, MetricsSettings, MigrationSettings, ServerSettings,
    ServiceConfig, ServiceDefaults,
};

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
}

/// One upstream Drishti-compatible server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSettings {
    /// A short name, used in audits, logs and the API.
    pub name: String,
    /// The `all-form-submissions` URL.
    pub url: String,
    /// Submissions asked for per batch.
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// Minutes between polls once the backlog is drained.
    #[serde(default = "default_poll_interval_minutes")]
    pub poll_interval_minutes: u64,
}

fn default_batch_size() -> u32 {
    100
}

fn default_poll_interval_minutes() -> u64 {
    3
}

impl ServiceConfig for Config {
    const DEFAULTS: ServiceDefaults = ServiceDefaults {
        binary: "migrator-service",
        database_name: "drishti_forms",
        port: 50052,
        metrics_port: 9465,
    };

    fn database_mut(&mut self) -> &mut DatabaseSettings {
        &mut self.database
    }
    fn server_mut(&mut self) -> &mut ServerSettings {
        &mut self.server
    }
    fn database(&self) -> &DatabaseSettings {
        &self.database
    }
    fn server(&self) -> &ServerSettings {
        &self.server
    }
    fn log(&self) -> &LogSettings {
        &self.log
    }
    fn migrations(&self) -> &MigrationSettings {
        &self.migrations
    }
    fn metrics(&self) -> &MetricsSettings {
        &self.metrics
    }
    fn metrics_mut(&mut self) -> &mut MetricsSettings {
        &mut self.metrics
    }

    fn validate(&self) -> Result<(), String> {
        let mut names = std::collections::HashSet::new();
        for source in &self.sources {
            if source.name.trim().is_empty() {
                return Err("sources[].name must not be empty".into());
            }
            if !names.insert(source.name.as_str()) {
                return Err(format!("sources: the name {:?} is used twice", source.name));
            }
            if !(source.url.starts_with("http://") || source.url.starts_with("https://")) {
                return Err(format!(
                    "sources[{}].url must be an http:// or https:// URL",
                    source.name
                ));
            }
            if source.batch_size == 0 {
                return Err(format!(
                    "sources[{}].batch_size must be at least 1",
                    source.name
                ));
            }
        }
        Ok(())
    }
}
