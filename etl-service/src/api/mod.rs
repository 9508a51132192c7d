//! The gRPC edge of `avni.etl.v1.EtlService`: [`request`] checks what a
//! caller sends and turns it into domain types; [`handlers`] calls the
//! control plane ([`crate::control`]) and maps its errors to status codes,
//! `reply` its rows to the contract's messages; `watch` streams a run's
//! events for WatchJobRun. Nothing below this folder knows of gRPC.

pub mod handlers;
mod reply;
pub mod request;
mod watch;

pub use handlers::EtlApi;
