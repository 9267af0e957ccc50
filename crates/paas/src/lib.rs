//! The platform assembled: [`stack`] starts every service and the gateway in
//! one process, for `paas up` and for end-to-end tests; [`member_clusters`]
//! adds simulated member clusters for `paas up`; [`master_registry`] starts
//! the OCI registry beside it; [`config_agent`] keeps a directory of config
//! files current (`paas config-agent`). The `paas` binary (`main.rs`) only
//! parses the command line and calls into here.

pub mod config_agent;
pub mod master_registry;
pub mod member_clusters;
pub mod stack;
