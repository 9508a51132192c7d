//! WatchJobRun: finding the run to watch, and streaming its events from
//! the run-history tables (so a watcher on any replica sees every run).

use super::reply::event_message;
use crate::api::request;
use crate::control::Control;
use crate::control::jobs;
use crate::error::Error;
use avni_proto::etl::v1 as pb;
use std::pin::Pin;
use std::time::Duration;
use tokio_stream::Stream;
use tonic::Status;

pub(super) type WatchStream =
    Pin<Box<dyn Stream<Item = Result<pb::WatchJobRunResponse, Status>> + Send>>;

/// How often a watcher looks for new events.
const WATCH_POLL: Duration = Duration::from_millis(200);

/// Finds the run to watch: by id, or the entity's active run, waiting (for
/// at most a minute) for its next run when none is active.
pub(super) async fn resolve_watched_run(
    control: &Control,
    target: &pb::watch_job_run_request::Target,
) -> Result<i64, Error> {
    match target {
        pb::watch_job_run_request::Target::RunId(id) => {
            let id = request::run_id(*id)?;
            let mut conn = control.pool().get().await?;
            jobs::find_run(&mut conn, id)
                .await?
                .map(|r| r.id)
                .ok_or_else(|| Error::NotFound(format!("run_id {id}: no such run")))
        }
        pb::watch_job_run_request::Target::Entity(entity) => {
            let entity = request::entity("entity", Some(entity))?;
            {
                let conn = control.pool().get().await?;
                crate::control::service::find_target(&conn, entity).await?;
            }
            // A connection per poll, given back before the wait: idle
            // watchers must not hold the API pool.
            for _ in 0..300 {
                let active = {
                    let conn = control.pool().get().await?;
                    jobs::active_run(&conn, entity).await?
                };
                if let Some(run) = active {
                    return Ok(run.id);
                }
                tokio::time::sleep(WATCH_POLL).await;
            }
            Err(Error::FailedPrecondition(format!(
                "{entity} has no run in progress and none started within a minute; call RunNow first"
            )))
        }
    }
}

/// Streams a run's events until its `run_finished` event (or the caller
/// goes away).
pub(super) fn watch(control: Control, run_id: i64) -> WatchStream {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        let mut seen = 0;
        loop {
            let step = async {
                let mut conn = control.pool().get().await?;
                let events = jobs::events_after(&mut conn, run_id, seen).await?;
                let run = if events.is_empty() {
                    None
                } else {
                    jobs::find_run(&mut conn, run_id).await?
                };
                Ok::<_, Error>((events, run))
            }
            .await;
            match step {
                Ok((events, Some(run))) => {
                    for event in &events {
                        seen = event.seq;
                        let finished = event.kind == "run_finished";
                        if tx.send(Ok(event_message(event, &run))).await.is_err() {
                            return;
                        }
                        if finished {
                            return;
                        }
                    }
                }
                Ok((_, None)) => {}
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
            }
            tokio::select! {
                () = tx.closed() => return,
                () = tokio::time::sleep(WATCH_POLL) => {}
            }
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
