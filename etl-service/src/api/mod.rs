//! The gRPC edge of `avni.etl.v1.EtlService`: [`request`] checks what a
//! caller sends and turns it into domain types; [`handlers`] calls the
//! control plane ([`crate::control`]) and maps its rows and errors to the
//! contract. Nothing below this folder knows of gRPC.

pub mod handlers;
pub mod request;

pub use handlers::EtlApi;
