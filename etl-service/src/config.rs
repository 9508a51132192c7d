//! etl-service's configuration: the shared sections plus `etl:`.

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
    pub etl: EtlSettings,
}

/// `etl:`: how runs are scheduled and performed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EtlSettings {
    /// Minutes between scheduled runs of an enabled organisation.
    pub interval_minutes: u64,
    /// Seconds between scheduled runs; when set, overrides
    /// `interval_minutes` (for tests and demos).
    pub interval_seconds: Option<u64>,
    /// Seconds a replica's claim on a run holds without renewal; a run whose
    /// replica died is failed this long after its last renewal.
    pub lease_seconds: u64,
    /// How often the scheduler looks for due work when nothing wakes it, in
    /// milliseconds (EnableAnalytics and RunNow wake it at once).
    pub scheduler_poll_ms: u64,
    /// Run the scheduler on this replica; `false` makes an API-only replica.
    pub scheduler_enabled: bool,
    /// Runs at once on this replica.
    pub max_concurrent_runs: usize,
    /// Rows changed within this many seconds before a run starts are left
    /// for the next run, so rows of transactions still in flight are never
    /// skipped.
    pub sync_offset_seconds: u64,
    /// Time zone DateTime questions are converted to (Avni's default).
    pub time_zone: String,
    /// Seconds a run may take, waiting for its entity's lock included; a run
    /// past it is stopped (its statement cancelled in PostgreSQL) and
    /// recorded as failed. Tables already synced keep their new rows, the
    /// others keep their old ones. 0 means no limit.
    pub run_timeout_seconds: u64,
    /// Connections one run syncs its tables on at once (tables in
    /// parallel, taken in the run's order): a first load uses the
    /// database's cores. Each is taken from `database.pool_size` while the
    /// run has more than one table to sync; 1 syncs on one connection.
    pub sync_connections: usize,
    /// Seconds RecreateSchema waits for its entity's lock (a run in
    /// progress) before failing with ABORTED. 0 means no limit.
    pub recreate_lock_wait_seconds: u64,
}

impl Default for EtlSettings {
    fn default() -> Self {
        Self {
            interval_minutes: 60,
            interval_seconds: None,
            lease_seconds: 60,
            scheduler_poll_ms: 5000,
            scheduler_enabled: true,
            max_concurrent_runs: 2,
            sync_offset_seconds: 10,
            time_zone: "Asia/Kolkata".to_string(),
            run_timeout_seconds: 3600,
            recreate_lock_wait_seconds: 30,
            sync_connections: 2,
        }
    }
}

impl EtlSettings {
    /// How long a run may take; `None` when unlimited.
    pub fn run_timeout(&self) -> Option<std::time::Duration> {
        (self.run_timeout_seconds > 0)
            .then(|| std::time::Duration::from_secs(self.run_timeout_seconds))
    }

    /// How long RecreateSchema waits for the lock; `None` when unlimited.
    pub fn recreate_lock_wait(&self) -> Option<std::time::Duration> {
        (self.recreate_lock_wait_seconds > 0)
            .then(|| std::time::Duration::from_secs(self.recreate_lock_wait_seconds))
    }

    /// The interval between scheduled runs.
    pub fn interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.interval_seconds
                .unwrap_or(self.interval_minutes.saturating_mul(60)),
        )
    }
}

impl ServiceConfig for Config {
    const DEFAULTS: ServiceDefaults = ServiceDefaults {
        binary: "etl-service",
        database_name: "avni",
        port: 50051,
        metrics_port: 9464,
        // A first load of a large table is one long statement; runs are
        // bounded by etl.run_timeout_seconds instead.
        statement_timeout_ms: 0,
    };

    service_kit::shared_sections!();

    fn validate(&self) -> Result<(), String> {
        let etl = &self.etl;
        if etl.interval_minutes == 0 {
            return Err("etl.interval_minutes must be at least 1".into());
        }
        if etl.interval_seconds == Some(0) {
            return Err("etl.interval_seconds must be at least 1".into());
        }
        if etl.lease_seconds < 3 {
            return Err("etl.lease_seconds must be at least 3".into());
        }
        if etl.scheduler_poll_ms < 50 {
            return Err("etl.scheduler_poll_ms must be at least 50".into());
        }
        if etl.max_concurrent_runs == 0 {
            return Err("etl.max_concurrent_runs must be at least 1".into());
        }
        if etl.sync_connections == 0 {
            return Err("etl.sync_connections must be at least 1".into());
        }
        if etl.time_zone.trim().is_empty() {
            return Err("etl.time_zone must name a time zone, e.g. Asia/Kolkata".into());
        }
        Ok(())
    }
}
