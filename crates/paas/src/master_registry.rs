//! A master registry beside the platform: the CNCF distribution registry
//! (Debian's `docker-registry`) started on a free loopback port with a
//! generated configuration: storage in its own temporary folder, token
//! authentication by the platform (`auth.token` realm, service, issuer and the
//! platform's signing certificate), notifications posted to the platform,
//! relative URLs so clients that reach it through the gateway's `/v2/` stay
//! there. It is then registered as the catalog's master registry. `paas up`
//! and the end-to-end tests start it; it stops when dropped.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kernel::caller::{Caller, CallerKey};
use kernel::grpc::{Outgoing, channel, uri};
use paas_proto::v1 as pb;
use paas_proto::v1::images_service_client::ImagesServiceClient;

use crate::stack::Stack;

/// Overrides where the registry binary is (default: `docker-registry` on the `PATH`).
pub const BINARY: &str = "PAAS_REGISTRY_BINARY";
/// The catalog name of the registry `paas up` starts.
pub const NAME: &str = "master";

/// A running registry.
pub struct MasterRegistry {
    /// `http://127.0.0.1:<port>`: the registry itself (clients use the gateway).
    pub url: String,
    /// Its address.
    pub addr: SocketAddr,
    /// Its folder: configuration, certificate, storage and log.
    pub dir: PathBuf,
    child: Child,
}

impl MasterRegistry {
    /// Stops the registry process, keeping its folder: [`MasterRegistry::resume`]
    /// serves the same storage on the same address again (tests of a target
    /// that goes down).
    pub fn pause(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the registry again after [`MasterRegistry::pause`].
    ///
    /// # Errors
    /// The process does not start or answer.
    pub async fn resume(&mut self) -> anyhow::Result<()> {
        let binary = binary().ok_or_else(|| anyhow::anyhow!("the registry binary is gone"))?;
        self.child = spawn(&binary, &self.dir)?;
        wait_until_answering(self).await
    }
}

fn spawn(binary: &Path, dir: &Path) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("registry.log"))?;
    Ok(Command::new(binary)
        .arg("serve")
        .arg(dir.join("config.yml"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?)
}

/// Starts a sub-registry beside the platform running as `stack`: token
/// authentication by the platform like the master's, but no notifications
/// (what replication copies there is not a push to the catalog), registered
/// as `name` in `data_centre`; `None` when the registry binary is not installed.
///
/// # Errors
/// The registry does not start or answer, or the catalog refuses it.
pub async fn start_sub(
    platform: &kernel::settings::Platform,
    stack: &Stack,
    name: &str,
    data_centre: &str,
) -> anyhow::Result<Option<(MasterRegistry, String)>> {
    let Some(binary) = binary() else {
        return Ok(None);
    };
    let images = stack
        .service(images::NAME)
        .ok_or_else(|| anyhow::anyhow!("the images service is not running"))?;
    let key = CallerKey::new(platform.caller_key.clone());
    let mut client = ImagesServiceClient::with_interceptor(
        channel(&uri(images.grpc))?,
        Outgoing::new(&key, &Caller::service("paas")),
    );
    let certificate = client
        .get_token_certificate(pb::GetTokenCertificateRequest {})
        .await?
        .into_inner()
        .certificate_pem;
    let dir = std::env::temp_dir().join(format!("paas-registry-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(dir.join("data"))?;
    std::fs::write(dir.join("token.pem"), certificate)?;
    let addr = free_port()?;
    let mut config = config(&dir, addr, &stack.url(), "");
    if let Some(c) = config.as_object_mut() {
        c.remove("notifications");
    }
    std::fs::write(dir.join("config.yml"), serde_json::to_string_pretty(&config)?)?;
    let child = spawn(&binary, &dir)?;
    let registry = MasterRegistry {
        url: format!("http://{addr}"),
        addr,
        dir,
        child,
    };
    wait_until_answering(&registry).await?;
    let created = client
        .create_registry(pb::CreateRegistryRequest {
            name: name.to_string(),
            url: registry.url.clone(),
            data_centre: data_centre.to_string(),
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(Some((registry, created.id)))
}

impl Drop for MasterRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The registry binary, if installed.
pub fn binary() -> Option<PathBuf> {
    if let Ok(path) = std::env::var(BINARY) {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join("docker-registry"))
        .find(|p| p.is_file())
}

/// The registry's configuration (YAML, which JSON is a subset of).
fn config(dir: &Path, addr: SocketAddr, gateway: &str, notification_token: &str) -> serde_json::Value {
    serde_json::json!({
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": true}},
        "storage": {
            "filesystem": {"rootdirectory": dir.join("data")},
            "delete": {"enabled": true},
            "maintenance": {"uploadpurging": {"enabled": false}}
        },
        "http": {
            "addr": addr.to_string(),
            "relativeurls": true,
            "secret": format!("{:032x}", rand::random::<u128>())
        },
        "auth": {"token": {
            "realm": format!("{gateway}{}", gateway::registry::TOKEN_PATH),
            "service": images::signing::SERVICE,
            "issuer": images::signing::ISSUER,
            "rootcertbundle": dir.join("token.pem")
        }},
        "notifications": {"endpoints": [{
            "name": "paas",
            "url": format!("{gateway}{}", gateway::registry::NOTIFICATIONS_PATH),
            "headers": {"Authorization": [format!("Bearer {notification_token}")]},
            "timeout": "5s",
            "threshold": 3,
            "backoff": "1s"
        }]}
    })
}

fn free_port() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// Starts a registry for the platform running as `stack` and registers it
/// as the master; `None` when the registry binary is not installed.
///
/// # Errors
/// The registry does not start or answer, or the catalog refuses it.
pub async fn start(platform: &kernel::settings::Platform, stack: &Stack) -> anyhow::Result<Option<MasterRegistry>> {
    let Some(binary) = binary() else {
        return Ok(None);
    };
    let images = stack
        .service(images::NAME)
        .ok_or_else(|| anyhow::anyhow!("the images service is not running"))?;
    let key = CallerKey::new(platform.caller_key.clone());
    let mut client = ImagesServiceClient::with_interceptor(
        channel(&uri(images.grpc))?,
        Outgoing::new(&key, &Caller::service("paas")),
    );
    let certificate = client
        .get_token_certificate(pb::GetTokenCertificateRequest {})
        .await?
        .into_inner()
        .certificate_pem;
    let dir = std::env::temp_dir().join(format!("paas-registry-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(dir.join("data"))?;
    std::fs::write(dir.join("token.pem"), certificate)?;
    let addr = free_port()?;
    let token = gateway::registry::notification_token(platform.caller_key.expose());
    let config = config(&dir, addr, &stack.url(), &token);
    std::fs::write(dir.join("config.yml"), serde_json::to_string_pretty(&config)?)?;
    let log = std::fs::File::create(dir.join("registry.log"))?;
    let child = Command::new(&binary)
        .arg("serve")
        .arg(dir.join("config.yml"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let registry = MasterRegistry {
        url: format!("http://{addr}"),
        addr,
        dir,
        child,
    };
    wait_until_answering(&registry).await?;
    let id = register(&mut client, &registry.url).await?;
    // The images service runs on this host, so it can collect this
    // registry's garbage with the same configuration file.
    client
        .set_registry_gc_config(pb::SetRegistryGcConfigRequest {
            registry_id: id,
            config: registry.dir.join("config.yml").display().to_string(),
        })
        .await?;
    Ok(Some(registry))
}

async fn wait_until_answering(registry: &MasterRegistry) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    for _ in 0..100 {
        // 401: up, and asking for the platform's tokens.
        if let Ok(r) = http.get(format!("{}/v2/", registry.url)).send().await
            && r.status() == reqwest::StatusCode::UNAUTHORIZED
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = std::fs::read_to_string(registry.dir.join("registry.log")).unwrap_or_default();
    anyhow::bail!("the registry did not answer on {}: {log}", registry.url)
}

/// Registers `url` as the master, replacing a master left by an earlier run;
/// answers the registry's id.
async fn register(
    client: &mut ImagesServiceClient<
        tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Outgoing>,
    >,
    url: &str,
) -> anyhow::Result<String> {
    let mut cursor = String::new();
    loop {
        let page = client
            .list_registries(pb::ListRegistriesRequest {
                page: Some(pb::PageRequest { limit: 500, cursor }),
            })
            .await?
            .into_inner();
        for r in page.registries.iter().filter(|r| r.master || r.name == NAME) {
            if r.url == url {
                return Ok(r.id.clone());
            }
            client
                .delete_registry(pb::DeleteRegistryRequest { id: r.id.clone() })
                .await?;
        }
        cursor = page.page.map(|p| p.next_cursor).unwrap_or_default();
        if cursor.is_empty() {
            break;
        }
    }
    let created = client
        .create_registry(pb::CreateRegistryRequest {
            name: NAME.to_string(),
            url: url.to_string(),
            master: true,
            username: String::new(),
            password: String::new(),
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(created.id)
}
