//! Tenancy's domain against the real PostgreSQL: the hierarchy, quotas and
//! admission by reservation, including under heavy concurrency.

mod helpers;
mod members;
mod quotas;
mod requests;
mod reservations;
mod usage;
