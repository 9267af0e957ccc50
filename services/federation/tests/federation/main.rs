//! Federation against real PostgreSQL and kubesim clusters: health monitor,
//! leases, credentials at rest, drift repair and bindings.

mod bindings;
mod credentials;
mod drift;
mod failover;
mod health;
mod helpers;
mod pinning;
mod pull_secrets;
mod registry_mirrors;
mod settings;
mod status;
