//! The platform assembled: [`stack`] starts every service and the gateway in
//! one process, for `paas up` and for end-to-end tests. The `paas` binary
//! (`main.rs`) only parses the command line and calls into here.

pub mod stack;
