//! The platform end to end: requests through the gateway, across gRPC, into
//! PostgreSQL, out through the outbox to JetStream and into another service.

mod access;
mod admission;
mod applications;
mod bindings;
mod charts;
mod clusters;
mod config_agent;
mod config_delivery;
mod config_gray;
mod configs;
mod dr_journey;
mod dr_tiers;
mod errors;
mod external_services;
mod failovers;
mod images;
mod isolation;
mod ldap;
mod logs;
mod node_ports;
mod oidc;
mod partitions;
mod pipelines;
mod provisioning;
mod quotas;
mod replication;
mod requests;
mod services;
mod sessions;
mod signatures;
mod strategies;
mod templates;
mod tenant_lifecycle;
mod tenant_slice;
mod tracing;
