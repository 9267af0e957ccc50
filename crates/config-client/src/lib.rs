//! A client of the platform's config center, for any Rust program and for
//! `paas config-agent`. It fetches an application's effective configuration
//! (for a tenant, application, environment and cluster) through the gateway,
//! keeps it current with one long poll over every set it is built from
//! (resuming from the releases it holds, so no release is missed or seen
//! twice), saves each version to a local file cache (atomic writes), falls
//! back to that cache when the config center is unreachable, and tells
//! callbacks which keys changed, with old and new values.
//!
//! It authenticates with an application access key (or an API token) and
//! names itself with an instance id and labels, which the config center
//! records (and gray releases select by).
//!
//! It does not decrypt secrets: secret items are delivered to clusters as
//! Kubernetes Secrets only, and the client leaves them out.
//!
//! ```no_run
//! # async fn run() -> Result<(), config_client::Error> {
//! use config_client::{ConfigClient, Settings};
//! let settings = Settings::new("http://gateway:8080", "paasak_...", "<tenant id>", "shop")
//!     .environment("production")
//!     .instance("shop-7f9c")
//!     .label("zone", "a")
//!     .cache_dir("/var/cache/shop-config");
//! let mut client = ConfigClient::new(settings)?;
//! client.on_change(|changes, _snapshot| {
//!     for c in changes {
//!         println!("{}: {:?} -> {:?}", c.path(), c.old, c.new);
//!     }
//! });
//! let snapshot = client.start().await?;
//! println!("{:?}", snapshot.value("app.properties", "db.url"));
//! loop {
//!     client.poll().await?;
//! }
//! # }
//! ```

#![warn(missing_docs)]

mod cache;
mod client;
mod error;
mod settings;
mod snapshot;

pub use cache::write_atomically;
pub use client::{ConfigClient, Source};
pub use error::{Error, Result};
pub use settings::Settings;
pub use snapshot::{Change, Item, SetRelease, Snapshot};
