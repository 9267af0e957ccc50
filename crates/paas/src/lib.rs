//! The platform assembled: [`stack`] starts every service and the gateway in
//! one process, for `paas up` and for end-to-end tests; [`member_clusters`]
//! adds simulated member clusters for `paas up`. The `paas` binary
//! (`main.rs`) only parses the command line and calls into here.

pub mod member_clusters;
pub mod stack;
