//! The public gRPC contracts of both services, generated from `proto/`.
//!
//! Each package is a module; `*_FILE_DESCRIPTOR_SET` holds the encoded
//! descriptors for server reflection.

/// `avni.etl.v1`: the control API of etl-service.
pub mod etl {
    pub mod v1 {
        tonic::include_proto!("avni.etl.v1");

        /// Encoded `FileDescriptorSet` of `avni.etl.v1` and its imports.
        pub const FILE_DESCRIPTOR_SET: &[u8] =
            include_bytes!(concat!(env!("OUT_DIR"), "/etl_descriptor.bin"));
    }
}

/// `avni.migrator.v1`: the control API of migrator-service.
pub mod migrator {
    pub mod v1 {
        tonic::include_proto!("avni.migrator.v1");

        /// Encoded `FileDescriptorSet` of `avni.migrator.v1` and its imports.
        pub const FILE_DESCRIPTOR_SET: &[u8] =
            include_bytes!(concat!(env!("OUT_DIR"), "/migrator_descriptor.bin"));
    }
}
