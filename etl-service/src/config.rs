//! etl-service's configuration: the shared sections plus `etl:`.

use serde::Deserialize;
use service_kit::config::{
    DatabaseSettings, LogSettings, MigrationSettings, ServerSettings, ServiceConfig,
    ServiceDefaults,
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
    pub etl: EtlSettings,
}

/// `etl:`: how runs are scheduled and performed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EtlSettings {
    /// Minutes between scheduled runs of an enabled organisation.
    pub interval_minutes: u64,
    /// Runs at once on this replica.
    pub max_concurrent_runs: usize,
    /// Rows changed within this many seconds before a run starts are left
    /// for the next run, so rows of transactions still in flight are never
    /// skipped.
    pub sync_offset_seconds: u64,
    /// Time zone DateTime questions are converted to (Avni's default).
    pub time_zone: String,
}

impl Default for EtlSettings {
    fn default() -> Self {
        Self {
            interval_minutes: 60,
            max_concurrent_runs: 2,
            sync_offset_seconds: 10,
            time_zone: "Asia/Kolkata".to_string(),
        }
    }
}

impl ServiceConfig for Config {
    const DEFAULTS: ServiceDefaults = ServiceDefaults {
        binary: "etl-service",
        database_name: "avni",
        port: 50051,
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

    fn validate(&self) -> Result<(), String> {
        let etl = &self.etl;
        if etl.interval_minutes == 0 {
            return Err("etl.interval_minutes must be at least 1".into());
        }
        if etl.max_concurrent_runs == 0 {
            return Err("etl.max_concurrent_runs must be at least 1".into());
        }
        if etl.time_zone.trim().is_empty() {
            return Err("etl.time_zone must name a time zone, e.g. Asia/Kolkata".into());
        }
        Ok(())
    }
}
