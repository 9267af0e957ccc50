//! Events: their names, subjects and envelope, and the JetStream stream that
//! carries them.
//!
//! A subject is `<prefix>.<service>.<entity>.<verb>`. The prefix is deployment
//! configuration (tests use one per run), so it is never stored: the outbox
//! keeps `<service>.<entity>.<verb>` and the relay prepends the prefix.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use paas_proto::v1::EventEnvelope;
use prost::Message;
use uuid::Uuid;

use crate::settings::{EventPrefix, Platform};
use crate::{Error, Result};

/// A kind of event, e.g. `tenancy.tenant.created`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventType {
    /// The service that owns the entity.
    pub service: &'static str,
    /// The entity (`tenant`, `quota`).
    pub entity: &'static str,
    /// What happened (`created`, `changed`).
    pub verb: &'static str,
}

impl EventType {
    /// An event type.
    pub const fn new(service: &'static str, entity: &'static str, verb: &'static str) -> Self {
        Self { service, entity, verb }
    }

    /// `service.entity.verb`, the envelope's `type`.
    pub fn name(&self) -> String {
        format!("{}.{}.{}", self.service, self.entity, self.verb)
    }
}

/// How long JetStream keeps events. Consumers that were down longer than this
/// miss events; reconcilers are level-triggered, so they still converge.
pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Window in which JetStream drops a second message with the same
/// `Nats-Msg-Id`: longer than any relay retry after a crash.
pub const DEDUPLICATION_WINDOW: Duration = Duration::from_secs(10 * 60);

/// A received event.
#[derive(Debug, Clone)]
pub struct Event {
    /// The envelope as published.
    pub envelope: EventEnvelope,
}

impl Event {
    /// Decodes an envelope from a message body.
    ///
    /// # Errors
    /// The body is not an envelope or its id is not a UUID.
    pub fn decode(body: &[u8]) -> Result<Self> {
        let envelope = EventEnvelope::decode(body).map_err(|e| Error::invalid("envelope", e.to_string()))?;
        Uuid::parse_str(&envelope.id).map_err(|_| Error::invalid("envelope.id", "must be a UUID"))?;
        Ok(Self { envelope })
    }

    /// The event id (also its `Nats-Msg-Id`).
    pub fn id(&self) -> Uuid {
        Uuid::parse_str(&self.envelope.id).expect("checked at decode")
    }

    /// `service.entity.verb`.
    pub fn kind(&self) -> &str {
        &self.envelope.r#type
    }

    /// Whether this is an event of type `t`.
    pub fn is(&self, t: EventType) -> bool {
        self.envelope.r#type == t.name()
    }

    /// The tenant the event concerns, if any.
    pub fn tenant(&self) -> Option<Uuid> {
        Uuid::parse_str(&self.envelope.tenant_id).ok()
    }

    /// Decodes the payload as `M`.
    ///
    /// # Errors
    /// The payload is of another type or malformed.
    pub fn payload<M: Message + prost::Name + Default>(&self) -> Result<M> {
        if self.envelope.payload_type != M::full_name() {
            return Err(Error::invalid(
                "envelope.payload_type",
                format!("is {}, expected {}", self.envelope.payload_type, M::full_name()),
            ));
        }
        M::decode(self.envelope.payload.as_slice()).map_err(|e| Error::invalid("envelope.payload", e.to_string()))
    }
}

/// The platform's JetStream connection and its subject prefix.
#[derive(Clone)]
pub struct Bus {
    /// The JetStream context.
    pub jetstream: jetstream::Context,
    /// The plain NATS client under it.
    pub client: async_nats::Client,
    /// First token of every subject.
    pub prefix: EventPrefix,
}

impl Bus {
    /// Connects and makes sure the stream exists.
    ///
    /// # Errors
    /// NATS is unreachable or JetStream is not enabled.
    pub async fn connect(settings: &Platform) -> Result<Self> {
        let client = async_nats::ConnectOptions::new()
            .name("paas")
            .connect(settings.nats_url.as_str())
            .await
            .map_err(|e| {
                Error::Unavailable(format!("cannot connect to NATS at {}: {e}", settings.nats_url.as_str()))
            })?;
        let bus = Self {
            jetstream: jetstream::new(client.clone()),
            client,
            prefix: settings.event_prefix.clone(),
        };
        bus.ensure_stream().await?;
        Ok(bus)
    }

    /// The stream's name: the prefix upper-cased, `-` as `_`, plus `_EVENTS`.
    pub fn stream_name(&self) -> String {
        format!("{}_EVENTS", self.prefix.as_str().to_ascii_uppercase().replace('-', "_"))
    }

    /// The full subject of an event type's name (`service.entity.verb`).
    pub fn subject(&self, name: &str) -> String {
        format!("{}.{name}", self.prefix.as_str())
    }

    /// Creates the stream if it does not exist.
    ///
    /// # Errors
    /// JetStream refuses.
    pub async fn ensure_stream(&self) -> Result<stream::Stream> {
        self.jetstream
            .get_or_create_stream(stream::Config {
                name: self.stream_name(),
                subjects: vec![format!("{}.>", self.prefix.as_str())],
                max_age: RETENTION,
                duplicate_window: DEDUPLICATION_WINDOW,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Unavailable(format!("cannot create the event stream: {e}")))
    }
}
