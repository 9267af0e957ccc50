//! The event bus against the real PostgreSQL and NATS: outbox, relay and inbox.

mod helpers;
mod outbox_relay;
