//! What can go wrong talking to the config center.

/// A client error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config center could not be reached, or answered that it is
    /// unavailable (5xx): retrying later may work, the cache serves meanwhile.
    #[error("the config center is unreachable: {0}")]
    Unreachable(String),
    /// The config center refused the request (a 4xx): the settings or the
    /// credential are wrong; retrying will not help until they change.
    #[error("the config center refused the request ({status}): {detail}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The problem's detail.
        detail: String,
    },
    /// The config center is unreachable and there is no cached copy.
    #[error("the config center is unreachable and nothing is cached: {0}")]
    NoCache(String),
    /// The local cache could not be read or written.
    #[error("config cache {path}: {source}")]
    Cache {
        /// The cache file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A setting is malformed.
    #[error("{setting}: {reason}")]
    Setting {
        /// Which.
        setting: &'static str,
        /// Why.
        reason: String,
    },
}

impl Error {
    /// Whether retrying later may succeed (the center is down or overloaded).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable(_) | Self::NoCache(_))
    }
}

/// A result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
