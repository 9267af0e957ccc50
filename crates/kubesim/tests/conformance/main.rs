//! kubesim conformance: each test drives a simulated cluster through a real
//! client (kube-rs, kube-runtime, kubectl) and checks the behaviour a real
//! Kubernetes API server has.

mod helpers;

mod api;
mod compaction;
mod defaults;
mod events;
mod faults;
mod jobs;
mod kubectl;
mod protobuf;
mod python_client;
mod rollout;
mod simulation;
mod standalone;
mod views;
mod watch;
