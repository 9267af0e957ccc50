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
        Self::start_with(|_| {}).await
    }

    /// Starts everything, letting the test adjust the gateway's settings.
    ///
    /// # Panics
    /// When a dependency is unreachable.
    pub async fn start_with(configure: impl FnOnce(&mut gateway::Settings)) -> Self {
        Self::start_with_env(&[], configure).await
    }

    /// Starts everything with extra service settings (`PAAS_FEDERATION_...`)
    /// and the gateway's adjusted by the test.
    ///
    /// # Panics
    /// When a dependency is unreachable or a setting is malformed.
    pub async fn start_with_env(vars: &[(&str, &str)], configure: impl FnOnce(&mut gateway::Settings)) -> Self {
        let mut t = TestPlatform::new().await;
        // Platform tests deploy images of no registry (registry.example/web:1)
        // into production; the admission tests turn it on.
        t.env.set("PAAS_IMAGES_ADMISSION", "off");
        for (k, v) in vars {
            t.env.set(*k, *v);
        }
        // Platform-wide settings among them (e.g. the pool size) apply too.
        t.settings = kernel::settings::Platform::from_env(&t.env).expect("valid platform settings");
        // Tracing as in production, so trace context really propagates; kept
        // for the process (dropping it would shut the tracer down).
        static TELEMETRY: std::sync::OnceLock<Option<kernel::telemetry::Telemetry>> = std::sync::OnceLock::new();
        TELEMETRY.get_or_init(|| kernel::telemetry::init("paas-e2e", &t.settings).ok());
        let admin_token = format!("{:032x}{:032x}", rand_u128(), rand_u128());
        let mut gateway = gateway::Settings {
            addr: "127.0.0.1:0".parse().expect("valid"),
            admin_token: Some(Secret::new(admin_token.clone())),
            upstream: gateway::settings::Upstreams::from_env(&t.env).expect("defaults"),
            local_admin_password: Some(Secret::new(LOCAL_ADMIN_PASSWORD)),
            local_admin_disabled: false,
            directory: None,
            oidc: Vec::new(),
            public_url: None,
            sessions: gateway::session::Timeouts::default(),
        };
        configure(&mut gateway);
        let shutdown = Shutdown::new();
        let stack = paas::stack::start_in(&t.settings, &t.env, gateway, &shutdown)
            .await
            .expect("the platform starts");
        Self {
            url: stack.url(),
            admin_token,
            stack,
            settings: t.settings,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            shutdown,
        }
    }

    /// `GET`/`POST`/... on an API path (`/api/v1/...`) as the administrator.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.admin_token)
    }

    /// The same without credentials.
    pub fn anonymous(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.url))
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

/// A real OpenLDAP server for one test: its own folder and port, seeded from
/// `e2e/fixtures/ldap/seed.ldif`, stopped when dropped.
pub struct Slapd {
    /// `ldap://127.0.0.1:<port>`.
    pub url: String,
    /// `ldaps://127.0.0.1:<port>`, when started with TLS.
    pub ldaps_url: Option<String>,
    /// The test CA that signed the server's certificate, when started with TLS.
    pub ca_file: Option<std::path::PathBuf>,
    child: std::process::Child,
    dir: std::path::PathBuf,
}

fn run(program: &str, args: &[&str], dir: &std::path::Path) {
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A throwaway CA and a certificate for 127.0.0.1 signed by it, made with
/// openssl in `dir`: `ca.pem`, `server.pem`, `server.key`.
fn test_certificates(dir: &std::path::Path) {
    run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=paas test CA",
        ],
        dir,
    );
    run(
        "openssl",
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
        dir,
    );
    let extensions = "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
                      keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n";
    std::fs::write(dir.join("server.ext"), extensions).unwrap();
    run(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
        dir,
    );
}

/// A free port for a server that must be told its port before it starts.
///
/// Drawn below Linux's ephemeral range (32768-60999): a port the kernel
/// hands out there (to another test's listener on port 0 or to any outgoing
/// connection) may take it between this check and the server's bind, which
/// made a provider or directory fail to start now and then.
fn free_port() -> u16 {
    loop {
        let port = 20_000 + (rand_u128() % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Slapd {
    /// The directory's root entry.
    pub const BASE: &'static str = "dc=acme,dc=example";
    /// The administrator that may change the directory in tests.
    pub const ADMIN_DN: &'static str = "cn=admin,dc=acme,dc=example";
    /// Its password.
    pub const ADMIN_PASSWORD: &'static str = "admin-secret";

    /// Starts slapd (installed by `scripts/deps`) on plain LDAP.
    ///
    /// # Panics
    /// When slapd is missing or does not start.
    pub fn start() -> Self {
        Self::launch(false)
    }

    /// Starts slapd with a certificate from a throwaway CA: StartTLS on
    /// [`Self::url`] and LDAPS on [`Self::ldaps_url`].
    ///
    /// # Panics
    /// When slapd or openssl is missing, or slapd does not start.
    pub fn start_with_tls() -> Self {
        Self::launch(true)
    }

    fn launch(tls: bool) -> Self {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ldap");
        let dir = std::env::temp_dir().join(format!("paas-slapd-{}-{:x}", std::process::id(), rand_u128() as u64));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let tls_directives = if tls {
            test_certificates(&dir);
            format!(
                "TLSCACertificateFile {0}/ca.pem\nTLSCertificateFile {0}/server.pem\nTLSCertificateKeyFile {0}/server.key\n",
                dir.display()
            )
        } else {
            String::new()
        };
        let conf = std::fs::read_to_string(fixtures.join("slapd.conf.template"))
            .unwrap()
            .replace("@DIR@", dir.to_str().unwrap())
            .replace("@TLS@\n", &tls_directives);
        std::fs::write(dir.join("slapd.conf"), conf).unwrap();
        let slapd = ["/usr/sbin/slapd", "slapd"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("slapd");
        let slapadd = ["/usr/sbin/slapadd", "slapadd"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("slapadd");
        let seeded = std::process::Command::new(slapadd)
            .arg("-f")
            .arg(dir.join("slapd.conf"))
            .arg("-l")
            .arg(fixtures.join("seed.ldif"))
            .output()
            .expect("slapadd is installed (scripts/deps installs slapd)");
        assert!(
            seeded.status.success(),
            "slapadd: {}",
            String::from_utf8_lossy(&seeded.stderr)
        );
        let port = free_port();
        let url = format!("ldap://127.0.0.1:{port}");
        let ldaps = tls.then(|| (free_port(), ()));
        let ldaps_url = ldaps.map(|(p, ())| format!("ldaps://127.0.0.1:{p}"));
        let listen = match &ldaps_url {
            Some(ldaps) => format!("{url}/ {ldaps}/"),
            None => format!("{url}/"),
        };
        let mut child = std::process::Command::new(slapd)
            .arg("-f")
            .arg(dir.join("slapd.conf"))
            .arg("-h")
            .arg(listen)
            .args(["-d", "0"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("slapd starts");
        let ports: Vec<u16> = std::iter::once(port).chain(ldaps.map(|(p, ())| p)).collect();
        for _ in 0..100 {
            if ports
                .iter()
                .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok())
            {
                let ca_file = tls.then(|| dir.join("ca.pem"));
                return Self {
                    url,
                    ldaps_url,
                    ca_file,
                    child,
                    dir,
                };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("slapd did not listen on {ports:?}");
    }

    /// Gateway settings that log in against this directory; members of
    /// `cn=platform-admins` are platform administrators, `employeeType=disabled` is off.
    pub fn settings(&self) -> gateway::directory::DirectorySettings {
        gateway::directory::DirectorySettings {
            url: self.url.clone(),
            starttls: false,
            ca_file: None,
            bind_dn: "cn=reader,ou=people,dc=acme,dc=example".into(),
            bind_password: Secret::new("reader-secret"),
            user_base: "ou=people,dc=acme,dc=example".into(),
            user_filter: "(&(objectClass=inetOrgPerson)(uid={login}))".into(),
            login_attribute: "uid".into(),
            group_base: "ou=groups,dc=acme,dc=example".into(),
            name_attribute: "cn".into(),
            mail_attribute: "mail".into(),
            disabled_filter: Some("(employeeType=disabled)".into()),
            admin_groups: vec!["cn=platform-admins,ou=groups,dc=acme,dc=example".into()],
            timeout: gateway::directory::TIMEOUT,
        }
    }
}

/// A stopped directory (see [`Slapd::pause`]); it runs again when dropped.
pub struct Paused<'a>(&'a Slapd);

impl Slapd {
    /// Stops the server with SIGSTOP: it keeps its port, so connections are
    /// accepted by the kernel, but nothing answers (a hung directory).
    ///
    /// # Panics
    /// When the signal cannot be sent.
    pub fn pause(&self) -> Paused<'_> {
        self.signal("-STOP");
        Paused(self)
    }

    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} slapd");
    }
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        self.0.signal("-CONT");
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A client of this platform registered at the test OIDC provider.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OidcClient {
    /// Its id.
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
    /// Where the provider may send the browser back.
    pub redirect_uris: Vec<String>,
    /// Where the provider may send the browser after logging out.
    pub post_logout_redirect_uris: Vec<String>,
    /// Seconds its ID tokens live (default one hour).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token_ttl: Option<u64>,
    /// Delays its token answers by this many milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_delay_ms: Option<u64>,
}

impl OidcClient {
    /// A client of the gateway at `gateway_url`, logging in as provider `name`.
    pub fn for_gateway(gateway_url: &str, name: &str) -> Self {
        Self {
            client_id: format!("paas-{name}"),
            client_secret: format!("paas-{name}-secret"),
            redirect_uris: vec![format!("{gateway_url}/api/v1/login/oidc/{name}/callback")],
            post_logout_redirect_uris: vec![format!("{gateway_url}/")],
            id_token_ttl: None,
            token_delay_ms: None,
        }
    }
}

/// A real OpenID Connect provider for one test (node-oidc-provider, from
/// `e2e/fixtures/oidc`, whose packages `scripts/deps` installs), with the
/// accounts of `accounts.json` (copied, so a test can change them).
pub struct OidcProvider {
    /// `http://127.0.0.1:<port>`.
    pub issuer: String,
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl OidcProvider {
    /// The issuer URL a provider started on a free port will have; the
    /// gateway's settings need it before the provider (which needs the
    /// gateway's address for its clients) can start.
    pub fn reserve_issuer() -> String {
        format!("http://127.0.0.1:{}", free_port())
    }

    /// Gateway settings for provider `name` at `issuer`, with `client`.
    pub fn settings(issuer: &str, name: &str) -> gateway::oidc::ProviderSettings {
        let client = OidcClient::for_gateway("http://unused", name);
        gateway::oidc::ProviderSettings {
            name: name.into(),
            display_name: format!("Test provider {name}"),
            issuer: issuer.into(),
            client_id: client.client_id,
            client_secret: Some(Secret::new(client.client_secret)),
            scopes: vec!["openid".into(), "profile".into(), "email".into(), "groups".into()],
            groups_claim: "groups".into(),
            admin_groups: vec!["paas-admins".into()],
            post_logout_url: None,
        }
    }

    /// Starts the provider at `issuer` (from [`Self::reserve_issuer`]).
    ///
    /// # Panics
    /// When node or the fixture's packages are missing, or it does not start.
    pub fn start(issuer: &str, clients: &[OidcClient]) -> Self {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/oidc");
        assert!(
            fixtures.join("node_modules/oidc-provider").exists(),
            "the OIDC provider's packages are missing: run scripts/deps (npm ci in e2e/fixtures/oidc)"
        );
        let port: u16 = issuer
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("issuer from reserve_issuer");
        let dir = std::env::temp_dir().join(format!("paas-oidc-{}-{:x}", std::process::id(), rand_u128() as u64));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(fixtures.join("accounts.json"), dir.join("accounts.json")).unwrap();
        let config = serde_json::json!({"port": port, "clients": clients, "accounts": dir.join("accounts.json")});
        std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
        let mut child = std::process::Command::new("node")
            .arg(fixtures.join("server.js"))
            .arg(dir.join("config.json"))
            .current_dir(&fixtures)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
            .spawn()
            .expect("node starts (scripts/deps installs Node.js)");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Self {
                    issuer: issuer.into(),
                    child,
                    dir,
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the OIDC provider exited ({status}): {}",
                    std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the OIDC provider did not listen on {issuer}");
    }

    /// Makes the provider sign with a new key (a new `kid`) and stop
    /// publishing the old one, as a key rotation does.
    ///
    /// # Panics
    /// When the provider does not answer.
    pub async fn rotate_keys(&self) {
        let r = reqwest::Client::new()
            .post(format!("{}/test/rotate-keys", self.issuer))
            .send()
            .await
            .expect("the provider answers");
        assert_eq!(r.status(), reqwest::StatusCode::NO_CONTENT);
    }

    /// Replaces a test account's groups (read by the provider at every login).
    pub fn set_groups(&self, login: &str, groups: &[&str]) {
        let path = self.dir.join("accounts.json");
        let mut accounts: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        accounts[login]["groups"] = serde_json::json!(groups);
        std::fs::write(path, accounts.to_string()).unwrap();
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
