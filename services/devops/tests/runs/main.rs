//! Pipelines end to end inside devops: a real `git push` to `git daemon`, a
//! signed webhook, the conductor, and real runners executing the sample
//! repository's steps.

mod flow;
mod gates;
mod helpers;
mod images;
mod notifications;
mod resilience;
mod sandbox;
