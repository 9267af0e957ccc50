//! kubesim: a Kubernetes API server simulator for tests and `paas up`.
//!
//! It owns the part of the Kubernetes REST API the platform uses, served over
//! plain HTTP on loopback: discovery, the core, apps, networking, autoscaling,
//! coordination and Gateway API kinds; get, list (label/field selectors,
//! pagination), watch (resourceVersion, bookmarks, 410 Gone), create, update,
//! delete (finalizers, garbage collection, namespace cascade), patch (merge,
//! JSON, strategic as merge-by-name) and server-side apply with managedFields
//! and conflicts; errors as `Status` objects. It simulates what a cluster
//! reports back: nodes, scheduling by requests, pods becoming ready after a
//! delay, Deployment/ReplicaSet/StatefulSet/DaemonSet controllers and rollout
//! status, ResourceQuota usage and refusals, Jobs and CronJobs (pods whose
//! outcome, duration and log follow a documented rule, see
//! [`EXIT_CODE_ANNOTATION`]), Events with the real reasons, StorageClasses
//! and PersistentVolumeClaims binding, and a watch history compacted like
//! etcd's. Many clusters run in one process
//! ([`Fleet`]), each with a kubeconfig and per-cluster fault injection
//! ([`Fault`]).
//!
//! `paas kubesim --clusters N` calls [`run_standalone`], e.g.
//! `kubesim::run_standalone(n, kubesim::ClusterConfig::named("kubesim")).await`,
//! which prints one line per cluster (name, URL, admin URL, kubeconfig path).
//! Tests start clusters with [`Cluster::start`] and connect through
//! [`RunningCluster::kubeconfig_path`].
//!
//! Requests and answers may be JSON or, for the built-in kinds, protobuf
//! (`application/vnd.kubernetes.protobuf`, as kubectl 1.32+ sends; watches
//! too); reads
//! answer `meta.k8s.io` Tables with each kind's printer columns when asked
//! (`kubectl get`); discovery carries categories (`kubectl get all`) and
//! `/openapi/v3` the schemas of the built-in kinds (`kubectl explain`).
//! `CONFORMANCE.md` records every served behaviour, the test that pins it,
//! and the known differences from Kubernetes.
//!
//! It does not own authentication or authorization (every request is
//! allowed, and access reviews say so), admission webhooks, CRDs, TLS,
//! persistent storage, or real containers.

#![warn(missing_docs)]

mod access_review;
mod api;
mod apply;
mod autoscaler;
mod cluster;
mod container;
mod cron_job;
mod defaults;
mod event;
mod fault;
mod job;
mod kubeconfig;
mod limit_range;
mod negotiation;
mod openapi;
mod patch;
mod protobuf;
mod quantity;
mod quota;
pub mod resource;
mod scheduler;
mod selector;
mod status;
mod storage;
mod store;
mod table;
mod watch;
mod workload;

pub use apply::Subresource;
pub use cluster::{Cluster, ClusterConfig, Fleet, RunningCluster, run_standalone};
pub use container::{EXIT_CODE_ANNOTATION, RUN_SECONDS_ANNOTATION};
pub use fault::{Fault, FaultHandle};
pub use quantity::Quantity;
pub use status::{Error, Result};
pub use store::{ListQuery, Store, WriteOptions};
