//! Starts the whole platform in-process for end-to-end tests and benchmarks:
//! every service and the gateway on loopback ports the OS picks, a fresh
//! database and a unique event prefix, and an HTTP client logged in as the
//! bootstrap administrator.

use std::time::Duration;

use kernel::settings::Secret;
use kernel::shutdown::Shutdown;
use kernel::testkit::TestPlatform;

/// The break-glass administrator's password in tests.
pub const LOCAL_ADMIN_PASSWORD: &str = "break-glass-password-1";

/// A running platform and a client for it.
pub struct Platform {
    /// The gateway's base URL.
    pub url: String,
    /// The bootstrap administrator's token.
    pub admin_token: String,
    /// Where everything listens.
    pub stack: paas::stack::Stack,
    /// The settings it runs with.
    pub settings: kernel::settings::Platform,
    /// An HTTP client.
    pub http: reqwest::Client,
    shutdown: Shutdown,
}

impl Platform {
    /// Starts everything.
    ///
    /// # Panics
    /// When a dependency is unreachable: no end-to-end test can run then.
    pub async fn start() -> Self {
        let t = TestPlatform::new().await;
        // Tracing as in production, so trace context really propagates; kept
        // for the process (dropping it would shut the tracer down).
        static TELEMETRY: std::sync::OnceLock<Option<kernel::telemetry::Telemetry>> = std::sync::OnceLock::new();
        TELEMETRY.get_or_init(|| kernel::telemetry::init("paas-e2e", &t.settings).ok());
        let admin_token = format!("{:032x}{:032x}", rand_u128(), rand_u128());
        let gateway = gateway::Settings {
            addr: "127.0.0.1:0".parse().expect("valid"),
            admin_token: Some(Secret::new(admin_token.clone())),
            upstream: gateway::settings::Upstreams::from_env(&t.env).expect("defaults"),
            local_admin_password: Some(Secret::new(LOCAL_ADMIN_PASSWORD)),
            local_admin_disabled: false,
        };
        let shutdown = Shutdown::new();
        let stack = paas::stack::start(&t.settings, gateway, &shutdown).await.expect("the platform starts");
        Self {
            url: stack.url(),
            admin_token,
            stack,
            settings: t.settings,
            http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client"),
            shutdown,
        }
    }

    /// `GET`/`POST`/... on an API path (`/api/v1/...`) as the administrator.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.url)).bearer_auth(&self.admin_token)
    }

    /// The same without credentials.
    pub fn anonymous(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.url))
    }

    /// Polls `probe` until it returns `Some`, or panics after `within`.
    pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(v) = probe().await {
                return v;
            }
            assert!(tokio::time::Instant::now() < deadline, "{what} did not happen within {within:?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

fn rand_u128() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let a = std::collections::hash_map::RandomState::new().build_hasher().finish() as u128;
    let b = std::collections::hash_map::RandomState::new().build_hasher().finish() as u128;
    (a << 64) | b
}
