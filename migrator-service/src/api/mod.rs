//! The gRPC edge of `avni.migrator.v1.FormsMigrator`: [`request`] checks
//! what a caller sends; [`handlers`] calls the poller and the repository
//! and maps their errors to status codes. Nothing below this folder knows
//! of gRPC.

pub mod handlers;
pub mod request;

pub use handlers::MigratorApi;
