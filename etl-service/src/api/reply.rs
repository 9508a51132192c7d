//! Domain rows as the contract's messages: jobs, runs, events, table types
//! and name reports.

use crate::control::jobs::{RunEventRow, RunRow, RunStatus, Trigger};
use crate::control::service::JobView;
use crate::engine::entity::{EntityKind, EntityRef};
use crate::engine::schema::layout::TableKind;
use crate::engine::schema::name_check;
use avni_proto::etl::v1 as pb;
use chrono::{DateTime, Utc};

pub(super) fn table_type(kind: TableKind) -> pb::TableType {
    match kind {
        TableKind::Subject => pb::TableType::Subject,
        TableKind::ProgramEnrolment => pb::TableType::ProgramEnrolment,
        TableKind::ProgramExit => pb::TableType::ProgramExit,
        TableKind::ProgramEncounter => pb::TableType::ProgramEncounter,
        TableKind::ProgramEncounterCancel => pb::TableType::ProgramEncounterCancel,
        TableKind::Encounter => pb::TableType::Encounter,
        TableKind::EncounterCancel => pb::TableType::EncounterCancel,
        TableKind::RepeatableQuestionGroup => pb::TableType::RepeatableQuestionGroup,
        TableKind::Address => pb::TableType::Address,
        TableKind::Users => pb::TableType::Users,
        TableKind::SyncTelemetry => pb::TableType::SyncTelemetry,
        TableKind::GroupToMember => pb::TableType::GroupToMember,
        TableKind::HouseholdToMember => pb::TableType::HouseholdToMember,
    }
}

pub(super) fn name_report_message(
    report: &name_check::NameReport,
    schema_name: String,
) -> pb::ValidateNamesResponse {
    use name_check::{ProblemKind as K, Severity as S};
    pb::ValidateNamesResponse {
        tables: report
            .tables
            .iter()
            .map(|t| pb::PlannedTable {
                name: t.name.clone(),
                r#type: table_type(t.identity.kind) as i32,
                full_name: t.full_name.clone(),
                shortened: t.shortened,
                subject_type_name: t.subject_type_name.clone().unwrap_or_default(),
                program_name: t.program_name.clone().unwrap_or_default(),
                encounter_type_name: t.encounter_type_name.clone().unwrap_or_default(),
                reference_name: t.reference_name.clone(),
            })
            .collect(),
        problems: report
            .problems
            .iter()
            .map(|p| pb::NameProblem {
                severity: match p.severity {
                    S::Error => pb::Severity::Error,
                    S::Warning => pb::Severity::Warning,
                    S::Notice => pb::Severity::Notice,
                } as i32,
                kind: match p.kind {
                    K::Collision => pb::ProblemKind::Collision,
                    K::Shortened => pb::ProblemKind::Shortened,
                    K::EmptyAfterNormalisation => pb::ProblemKind::EmptyAfterNormalisation,
                    K::ReferenceCollision => pb::ProblemKind::ReferenceCollision,
                    K::ReferenceNonAscii => pb::ProblemKind::ReferenceNonAscii,
                    K::MissingName => pb::ProblemKind::MissingName,
                    K::UnknownReference => pb::ProblemKind::UnknownReference,
                    K::ExistingRelation => pb::ProblemKind::ExistingRelation,
                } as i32,
                message: p.message.clone(),
                table_name: p.table_name.clone(),
                names: p.names.clone(),
            })
            .collect(),
        valid: report.valid(),
        schema_name,
    }
}

pub(super) fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

pub(super) fn entity_message(entity: EntityRef) -> pb::Entity {
    pb::Entity {
        uuid: entity.uuid.to_string(),
        r#type: match entity.kind {
            EntityKind::Organisation => pb::EntityType::Organisation,
            EntityKind::OrganisationGroup => pb::EntityType::OrganisationGroup,
        } as i32,
    }
}

pub(super) fn run_message(run: &RunRow) -> pb::JobRun {
    let status = match run.status() {
        RunStatus::Queued => pb::RunStatus::Queued,
        RunStatus::Running if run.started_at.is_none() => pb::RunStatus::Queued,
        RunStatus::Running => pb::RunStatus::Running,
        RunStatus::Succeeded => pb::RunStatus::Succeeded,
        RunStatus::Failed => pb::RunStatus::Failed,
        RunStatus::Cancelled => pb::RunStatus::Cancelled,
    };
    let trigger = match Trigger::parse(&run.trigger) {
        Some(Trigger::Schedule) => pb::RunTrigger::Schedule,
        Some(Trigger::RunNow) => pb::RunTrigger::RunNow,
        Some(Trigger::Recreate) => pb::RunTrigger::Recreate,
        Some(Trigger::CommandLine) => pb::RunTrigger::CommandLine,
        None => pb::RunTrigger::Unspecified,
    };
    pb::JobRun {
        id: run.id,
        entity: run.entity().ok().map(entity_message),
        trigger: trigger as i32,
        status: status as i32,
        queued_time: Some(timestamp(run.queued_at)),
        start_time: run.started_at.map(timestamp),
        end_time: run.finished_at.map(timestamp),
        error: run.error.clone().unwrap_or_default(),
        error_detail: run.error_detail.clone().unwrap_or_default(),
        progress: Some(pb::RunProgress {
            tables_total: run.tables_total,
            tables_done: run.tables_done,
            current_table: run.current_table.clone().unwrap_or_default(),
            rows_upserted: run.rows_upserted,
            rows_deleted: run.rows_deleted,
        }),
        tables: run
            .tables()
            .into_iter()
            .map(|t| pb::TableResult {
                change: match t.change.as_str() {
                    "created" => pb::TableChange::Created,
                    "altered" => pb::TableChange::Altered,
                    "unchanged" => pb::TableChange::Unchanged,
                    _ => pb::TableChange::Unspecified,
                } as i32,
                table_name: t.table_name,
                rows_upserted: t.rows_upserted,
                rows_deleted: t.rows_deleted,
                duration: Some(prost_types::Duration {
                    seconds: t.duration_ms / 1000,
                    nanos: ((t.duration_ms % 1000) * 1_000_000) as i32,
                }),
            })
            .collect(),
        worker: run.worker.clone().unwrap_or_default(),
    }
}

pub(super) fn job_message(view: &JobView) -> pb::Job {
    pb::Job {
        entity: Some(entity_message(view.entity)),
        entity_name: view.entity_name.clone(),
        schema_name: view.schema_name.clone(),
        enabled: view.job.is_some(),
        next_run_time: view.job.as_ref().map(|j| timestamp(j.next_run_at)),
        interval: Some(prost_types::Duration {
            seconds: view.interval_seconds,
            nanos: 0,
        }),
        last_run: view.last_run.as_ref().map(run_message),
        current_run: view.current_run.as_ref().map(run_message),
        enabled_time: view.job.as_ref().map(|j| timestamp(j.enabled_at)),
    }
}

pub(super) fn event_message(event: &RunEventRow, run: &RunRow) -> pb::WatchJobRunResponse {
    let kind = match event.kind.as_str() {
        "run_queued" => pb::RunEventKind::RunQueued,
        "run_started" => pb::RunEventKind::RunStarted,
        "schema_applied" => pb::RunEventKind::SchemaApplied,
        "table_started" => pb::RunEventKind::TableStarted,
        "table_finished" => pb::RunEventKind::TableFinished,
        "run_finished" => pb::RunEventKind::RunFinished,
        _ => pb::RunEventKind::Unspecified,
    };
    let run_message = run_message(run);
    pb::WatchJobRunResponse {
        run_id: event.run_id,
        kind: kind as i32,
        event_time: Some(timestamp(event.event_time)),
        table_name: event.table_name.clone().unwrap_or_default(),
        rows_upserted: event.rows_upserted,
        progress: run_message.progress.clone(),
        run: Some(run_message),
        message: event.message.clone().unwrap_or_default(),
    }
}

/// BatchGetJobs' reply: the jobs, the next page's token, and each entity
/// whose job could not be read with its status in words.
pub(super) fn batch_message(batch: crate::control::JobBatch) -> pb::BatchGetJobsResponse {
    pb::BatchGetJobsResponse {
        jobs: batch.views.iter().map(job_message).collect(),
        next_page_token: batch
            .next_after
            .map(|id| format!("after-{id}"))
            .unwrap_or_default(),
        errors: batch
            .errors
            .into_iter()
            .map(|(entity, e)| {
                let status = tonic::Status::from(e);
                pb::BatchGetJobsError {
                    entity: Some(entity_message(entity)),
                    code: status.code() as i32,
                    message: status.message().to_string(),
                }
            })
            .collect(),
    }
}

pub(super) fn user_activity_message(
    r: crate::reports::UserActivityReport,
) -> pb::GetUserActivityResponse {
    let labels = |rows: Vec<crate::reports::LabelCount>| {
        rows.into_iter()
            .map(|l| pb::LabelCount {
                label: l.label,
                users: l.users,
            })
            .collect()
    };
    pb::GetUserActivityResponse {
        schema_name: r.schema_name,
        user_activity: r
            .user_activity
            .into_iter()
            .map(|a| pb::UserActivity {
                user_id: a.user_id,
                user_name: a.user_name,
                registrations: a.registrations,
                enrolments: a.enrolments,
                program_encounters: a.program_encounters,
                general_encounters: a.general_encounters,
                total: a.total,
            })
            .collect(),
        sync_failures: r
            .sync_failures
            .into_iter()
            .map(|f| pb::UserSyncFailures {
                user_id: f.user_id,
                user_name: f.user_name,
                failures: f.count,
            })
            .collect(),
        device_models: labels(r.device_models),
        app_versions: labels(r.app_versions),
        latest_syncs: r
            .latest_syncs
            .into_iter()
            .map(|s| pb::DeviceSync {
                user_id: s.user_id,
                user_name: s.user_name,
                sync_status: s.sync_status,
                sync_source: s.sync_source,
                app_version: s.app_version,
                android_version: s.android_version,
                device_name: s.device_name,
                start_time: s.sync_start_time.map(timestamp),
                end_time: s.sync_end_time.map(timestamp),
            })
            .collect(),
        median_sync: r
            .median_sync
            .into_iter()
            .map(|w| pb::WeeklySyncMedian {
                week_start: w.week_start,
                median: w.median_seconds.map(seconds),
                syncs: w.syncs,
            })
            .collect(),
    }
}

/// A length in seconds (fractions kept to the microsecond).
fn seconds(s: f64) -> prost_types::Duration {
    let micros = (s * 1_000_000.0).round() as i64;
    prost_types::Duration {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1000) as i32,
    }
}
