//! Generates the Rust client and server code from the `.proto` files with protox,
//! a pure-Rust protobuf compiler, so no system `protoc` is needed. The encoded
//! file descriptor sets are written to `OUT_DIR` for server reflection.

use prost::Message;
use std::path::PathBuf;

const PROTOS: &[(&str, &str)] = &[
    ("avni/etl/v1/etl_service.proto", "etl_descriptor.bin"),
    (
        "avni/migrator/v1/forms_migrator.proto",
        "migrator_descriptor.bin",
    ),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    for (file, descriptor) in PROTOS {
        println!("cargo:rerun-if-changed={file}");
        let fds = protox::compile([file], ["."])?;
        std::fs::write(out_dir.join(descriptor), fds.encode_to_vec())?;
        tonic_prost_build::configure()
            .build_client(true)
            .build_server(true)
            .compile_fds(fds)?;
    }
    Ok(())
}
