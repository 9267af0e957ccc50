//! The platform's protobuf contracts, compiled by tonic: one gRPC service per
//! domain service and the event envelope with its payloads. This crate holds
//! generated types only; conversion to and from domain types lives in each
//! service's `grpc` module.

#![allow(missing_docs, clippy::all)]

/// Version 1 of the `paas` package.
pub mod v1 {
    tonic::include_proto!("paas.v1");

    /// Encoded descriptors of every message, for reflection and for naming
    /// payload types in event envelopes.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("paas_descriptor");
}
