//! The rows of the job tables as the code sees them, and their vocabularies
//! (triggers, statuses, table outcomes).

use crate::engine::entity::{EntityKind, EntityRef};
use crate::error::Error;
use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Integer, Jsonb, Nullable, Text, Timestamptz, Uuid};
use serde::{Deserialize, Serialize};

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Schedule,
    RunNow,
    Recreate,
    CommandLine,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::RunNow => "run_now",
            Trigger::Recreate => "recreate",
            Trigger::CommandLine => "command_line",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "schedule" => Trigger::Schedule,
            "run_now" => Trigger::RunNow,
            "recreate" => Trigger::Recreate,
            "command_line" => Trigger::CommandLine,
            _ => return None,
        })
    }
}

/// A run's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => RunStatus::Queued,
            "running" => RunStatus::Running,
            "succeeded" => RunStatus::Succeeded,
            "failed" => RunStatus::Failed,
            "cancelled" => RunStatus::Cancelled,
            _ => return None,
        })
    }

    pub fn is_finished(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled
        )
    }
}

/// An `etl_job` row.
#[derive(Debug, Clone, QueryableByName)]
pub struct JobRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Uuid)]
    pub entity_uuid: uuid::Uuid,
    #[diesel(sql_type = Text)]
    pub entity_type: String,
    #[diesel(sql_type = Integer)]
    pub interval_seconds: i32,
    #[diesel(sql_type = Timestamptz)]
    pub next_run_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    pub enabled_at: DateTime<Utc>,
}

impl JobRow {
    pub fn entity(&self) -> Result<EntityRef, Error> {
        entity_of(self.entity_uuid, &self.entity_type)
    }
}

/// Per-table outcome of a run, stored in `etl_run.table_results`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableOutcome {
    pub table_name: String,
    /// `created`, `altered` or `unchanged`.
    pub change: String,
    pub rows_upserted: i64,
    pub rows_deleted: i64,
    pub duration_ms: i64,
}

/// An `etl_run` row.
#[derive(Debug, Clone, QueryableByName)]
pub struct RunRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Uuid)]
    pub entity_uuid: uuid::Uuid,
    #[diesel(sql_type = Text)]
    pub entity_type: String,
    #[diesel(sql_type = Text)]
    pub trigger: String,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Timestamptz)]
    pub queued_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub started_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub finished_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    pub worker: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub error: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub error_detail: Option<String>,
    #[diesel(sql_type = Integer)]
    pub tables_total: i32,
    #[diesel(sql_type = Integer)]
    pub tables_done: i32,
    #[diesel(sql_type = Nullable<Text>)]
    pub current_table: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub rows_upserted: i64,
    #[diesel(sql_type = BigInt)]
    pub rows_deleted: i64,
    #[diesel(sql_type = Jsonb)]
    pub table_results: serde_json::Value,
}

impl RunRow {
    pub fn entity(&self) -> Result<EntityRef, Error> {
        entity_of(self.entity_uuid, &self.entity_type)
    }

    pub fn status(&self) -> RunStatus {
        RunStatus::parse(&self.status).unwrap_or(RunStatus::Failed)
    }

    pub fn tables(&self) -> Vec<TableOutcome> {
        serde_json::from_value(self.table_results.clone()).unwrap_or_default()
    }
}

/// An `etl_run_event` row.
#[derive(Debug, Clone, QueryableByName)]
pub struct RunEventRow {
    #[diesel(sql_type = BigInt)]
    pub run_id: i64,
    #[diesel(sql_type = Integer)]
    pub seq: i32,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Timestamptz)]
    pub event_time: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Text>)]
    pub table_name: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub rows_upserted: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub message: Option<String>,
}

fn entity_of(uuid: uuid::Uuid, kind: &str) -> Result<EntityRef, Error> {
    let kind = EntityKind::parse(kind).ok_or_else(|| {
        Error::FailedPrecondition(format!("unknown entity type {kind:?} in the job tables"))
    })?;
    Ok(EntityRef { uuid, kind })
}
