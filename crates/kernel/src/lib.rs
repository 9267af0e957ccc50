//! The kernel: everything the platform's services share, so each service holds
//! only its domain. It owns settings loading and validation, telemetry (JSON
//! logs, OpenTelemetry traces, Prometheus metrics), the PostgreSQL pool with a
//! schema per service and its migrations, the event bus (transactional outbox,
//! relay to JetStream, durable consumers with an inbox), gRPC server and client
//! plumbing with the caller identity, the error model (gRPC status and RFC 7807
//! problem+json), ids, pagination and graceful shutdown.
//!
//! It owns no domain: tenants, clusters or apps live in their services.

#![warn(missing_docs)]

pub mod backoff;
pub mod caller;
pub mod db;
pub mod dn;
pub mod error;
pub mod event;
pub mod grpc;
pub mod health;
pub mod id;
pub mod inbox;
pub mod name;
pub mod outbox;
pub mod page;
pub mod quantity;
pub mod resilience;
pub mod seal;
pub mod service;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use error::{Error, Result};
