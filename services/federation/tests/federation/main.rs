//! Federation against real PostgreSQL and kubesim clusters: health monitor,
//! leases, credentials at rest and drift repair.

mod credentials;
mod drift;
mod health;
mod helpers;
