//! A running devops service on a fresh database, a real Git server
//! (`git daemon`) holding the sample repository the tests push to, and real
//! runners (`devops::agent`, what `paas runner` runs) in the test process.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use devops::agent::{self, Sandbox};
use kernel::caller::{Caller, CallerKey, Membership, Role};
use kernel::grpc::{Outgoing, channel, uri};
use kernel::service::Addresses;
use kernel::shutdown::Shutdown;
use kernel::testkit::{TestPlatform, eventually};
use paas_proto::v1 as pb;
use paas_proto::v1::devops_service_client::DevopsServiceClient;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use uuid::Uuid;

pub type Client = DevopsServiceClient<InterceptedService<Channel, Outgoing>>;

/// Long enough for a run of a few shell steps on a loaded 2-core machine.
pub const RUN_TIME: Duration = Duration::from_secs(60);

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../e2e/fixtures/pipeline-sample")
}

async fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .await
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `git daemon` serving a bare repository that accepts pushes, and a work
/// tree holding the sample repository.
pub struct GitServer {
    pub url: String,
    pub work: PathBuf,
    _dirs: tempfile::TempDir,
    _daemon: Child,
}

impl GitServer {
    pub async fn start() -> Self {
        let dirs = tempfile::tempdir().unwrap();
        let base = dirs.path().join("srv");
        std::fs::create_dir_all(&base).unwrap();
        git(&base, &["init", "--quiet", "--bare", "-b", "main", "sample.git"]).await;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let daemon = Command::new("git")
            .arg("daemon")
            .args([
                "--reuseaddr",
                "--export-all",
                "--enable=receive-pack",
                "--listen=127.0.0.1",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(&base)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("git daemon starts (Debian's git)");
        let url = format!("git://127.0.0.1:{port}/sample.git");
        let work = dirs.path().join("work");
        copy_dir(&fixture(), &work);
        git(&work, &["init", "--quiet", "-b", "main"]).await;
        git(&work, &["add", "-A"]).await;
        git(&work, &["commit", "--quiet", "-m", "the sample calculator"]).await;
        let probe = url.clone();
        eventually(Duration::from_secs(10), "git daemon answers", || {
            let url = probe.clone();
            async move {
                Command::new("git")
                    .args(["ls-remote", &url])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .await
                    .ok()
                    .filter(std::process::ExitStatus::success)
            }
        })
        .await;
        Self {
            url,
            work,
            _dirs: dirs,
            _daemon: daemon,
        }
    }

    /// Pushes `refspec` (`main`, `v1.0.0`) to the server; returns HEAD.
    pub async fn push(&self, refspec: &str) -> String {
        git(&self.work, &["push", "--quiet", &self.url, refspec]).await;
        self.head().await
    }

    pub async fn head(&self) -> String {
        git(&self.work, &["rev-parse", "HEAD"]).await
    }

    /// Changes a file and commits it.
    pub async fn commit(&self, file: &str, content: &str, message: &str) -> String {
        std::fs::write(self.work.join(file), content).unwrap();
        git(&self.work, &["commit", "--quiet", "-am", message]).await;
        self.head().await
    }

    pub async fn tag(&self, name: &str) {
        git(&self.work, &["tag", name]).await;
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A devops service, its database, and a tenant.
pub struct World {
    pub t: TestPlatform,
    pub key: CallerKey,
    pub shutdown: Shutdown,
    pub grpc: SocketAddr,
    pub runner_api: SocketAddr,
    pub tenant: Uuid,
    pub pool: sqlx::PgPool,
    /// Where build-image steps push.
    pub registry: devops::registry::Settings,
    /// How the world's runners isolate steps: bubblewrap when it works here.
    pub sandbox: Sandbox,
}

pub fn member(tenant: Uuid, who: &str, role: Role) -> Caller {
    Caller::user(who, vec![Membership { tenant, role }])
}

impl World {
    pub async fn new() -> Self {
        Self::with_registry(devops::registry::Settings::default()).await
    }

    /// A world whose build-image steps push to `registry`.
    pub async fn with_registry(registry: devops::registry::Settings) -> Self {
        let t = TestPlatform::new().await;
        let shutdown = Shutdown::new();
        let started = devops::start_with(
            &t.settings,
            registry.clone(),
            Addresses::ephemeral(),
            "127.0.0.1:0".parse().unwrap(),
            &shutdown,
        )
        .await
        .unwrap();
        let pool = kernel::db::connect(&t.settings, devops::NAME).await.unwrap();
        Self {
            key: CallerKey::new(t.settings.caller_key.clone()),
            shutdown,
            grpc: started.running.grpc,
            runner_api: started.runners,
            tenant: Uuid::now_v7(),
            pool,
            t,
            registry,
            sandbox: Sandbox::detect().await,
        }
    }

    /// Stops devops (as a crash would, between two steps of work) and starts
    /// a new one on the same database and runner port.
    pub async fn restart(&mut self) {
        self.shutdown.trigger();
        self.shutdown.drain(Duration::from_secs(10)).await;
        self.shutdown = Shutdown::new();
        let started = devops::start_with(
            &self.t.settings,
            self.registry.clone(),
            Addresses::ephemeral(),
            self.runner_api,
            &self.shutdown,
        )
        .await
        .unwrap();
        self.grpc = started.running.grpc;
    }

    pub fn client(&self, caller: &Caller) -> Client {
        DevopsServiceClient::with_interceptor(channel(&uri(self.grpc)).unwrap(), Outgoing::new(&self.key, caller))
    }

    /// A developer of the world's tenant.
    pub fn dev(&self) -> Client {
        self.client(&member(self.tenant, "dev", Role::Developer))
    }

    /// The gateway, as it forwards webhook deliveries.
    pub fn gateway(&self) -> Client {
        self.client(&Caller::service("gateway"))
    }

    /// A pipeline of the repository; `definition` empty: read from the repository.
    pub async fn pipeline(&self, git: &GitServer, definition: &str) -> pb::Pipeline {
        self.dev()
            .create_pipeline(pb::CreatePipelineRequest {
                tenant_id: self.tenant.to_string(),
                name: "sample".into(),
                repository: git.url.clone(),
                application_id: String::new(),
                definition: definition.into(),
                definition_source: if definition.is_empty() {
                    "repository"
                } else {
                    "platform"
                }
                .into(),
            })
            .await
            .unwrap()
            .into_inner()
    }

    /// A GitHub-format webhook of the pipeline and its secret.
    pub async fn webhook(&self, pipeline: &pb::Pipeline) -> (String, String) {
        let created = self
            .dev()
            .create_webhook(pb::CreateWebhookRequest {
                pipeline_id: pipeline.id.clone(),
                format: "github".into(),
            })
            .await
            .unwrap()
            .into_inner();
        (created.webhook.unwrap().id, created.secret)
    }

    /// Delivers a GitHub push event as a Git server would.
    pub async fn deliver(
        &self,
        hook: &str,
        secret: &str,
        delivery: &str,
        git_ref: &str,
        commit: &str,
    ) -> Result<pb::DeliverWebhookResponse, tonic::Status> {
        let body = format!(
            r#"{{"ref":"{git_ref}","before":"0000000000000000000000000000000000000000","after":"{commit}","repository":{{"name":"sample"}}}}"#
        );
        let header = |name: &str, value: &str| pb::Header {
            name: name.into(),
            value: value.into(),
        };
        let request = pb::DeliverWebhookRequest {
            webhook_id: hook.into(),
            headers: vec![
                header("X-GitHub-Event", "push"),
                header("X-GitHub-Delivery", delivery),
                header("X-Hub-Signature-256", &devops::webhook::sign(secret, body.as_bytes())),
            ],
            body: body.into_bytes(),
        };
        self.gateway()
            .deliver_webhook(request)
            .await
            .map(tonic::Response::into_inner)
    }

    /// A runner of the tenant, running in this process until dropped.
    pub async fn runner(&self, name: &str, concurrency: u32) -> RunnerProcess {
        let created = self
            .dev()
            .create_runner(pb::CreateRunnerRequest {
                tenant_id: self.tenant.to_string(),
                name: name.into(),
            })
            .await
            .unwrap()
            .into_inner();
        self.start_runner(&created.token, concurrency)
    }

    pub fn start_runner(&self, token: &str, concurrency: u32) -> RunnerProcess {
        let work = tempfile::tempdir().unwrap();
        let settings = agent::Settings {
            url: uri(self.runner_api),
            token: kernel::settings::Secret::new(token),
            concurrency,
            work_dir: work.path().to_path_buf(),
            sandbox: self.sandbox,
        };
        let stop = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(agent::run(settings, stop.clone()));
        RunnerProcess {
            task,
            _stop: stop,
            _work: work,
        }
    }

    pub async fn run(&self, id: &str) -> pb::Run {
        self.dev()
            .get_run(pb::GetRunRequest { id: id.into() })
            .await
            .unwrap()
            .into_inner()
    }

    /// Waits until the run is in `state`.
    pub async fn run_reaches(&self, id: &str, state: &str) -> pb::Run {
        eventually(RUN_TIME, &format!("run {id} {state}"), || async move {
            let run = self.run(id).await;
            assert!(
                !(is_final(&run.state) && run.state != state),
                "run ended {} instead of {state}: {}",
                run.state,
                run.message
            );
            (run.state == state).then_some(run)
        })
        .await
    }

    /// Waits until the run's step is in `state`.
    pub async fn step_reaches(&self, run: &str, step: &str, state: &str) -> pb::Step {
        eventually(RUN_TIME, &format!("step {step} {state}"), || async move {
            let run = self.run(run).await;
            run.stages
                .into_iter()
                .flat_map(|s| s.steps)
                .find(|s| s.name == step && s.state == state)
        })
        .await
    }

    pub async fn step(&self, run: &pb::Run, name: &str) -> pb::Step {
        let id = run
            .stages
            .iter()
            .flat_map(|s| &s.steps)
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no step {name}"))
            .id
            .clone();
        self.dev()
            .get_step(pb::GetStepRequest { id })
            .await
            .unwrap()
            .into_inner()
    }

    /// Subjects of the events devops recorded, in order.
    pub async fn events(&self) -> Vec<String> {
        sqlx::query_scalar("SELECT subject FROM outbox ORDER BY seq")
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }
}

pub fn is_final(state: &str) -> bool {
    matches!(state, "succeeded" | "failed" | "cancelled")
}

/// A runner in this process; dropping it kills it as a crash would.
pub struct RunnerProcess {
    pub task: JoinHandle<kernel::Result<()>>,
    _stop: tokio_util::sync::CancellationToken,
    _work: tempfile::TempDir,
}

impl Drop for RunnerProcess {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Debian's `docker-registry` on a free loopback port, without
/// authentication: build-image steps push to it as to the platform's.
pub struct BareRegistry {
    pub host: String,
    _dir: tempfile::TempDir,
    _process: Child,
}

impl BareRegistry {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let host = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        let data = dir.path().join("data");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {host}\n",
                data.display()
            ),
        )
        .unwrap();
        let process = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("docker-registry starts (scripts/deps installs it)");
        let probe = format!("http://{host}/v2/");
        eventually(Duration::from_secs(10), "the registry answers", || {
            let probe = probe.clone();
            async move {
                Command::new("curl")
                    .args(["-fsS", "-o", "/dev/null", &probe])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .await
                    .ok()
                    .filter(std::process::ExitStatus::success)
            }
        })
        .await;
        Self {
            host,
            _dir: dir,
            _process: process,
        }
    }

    /// Settings that push here over plain HTTP, without credentials.
    pub fn settings(&self) -> devops::registry::Settings {
        devops::registry::Settings {
            registry: Some(self.host.clone()),
            insecure: true,
            images_url: None,
        }
    }

    /// `skopeo inspect` of a reference in this registry: (raw manifest, config).
    pub async fn inspect(&self, reference: &str) -> (serde_json::Value, serde_json::Value) {
        let run = |raw: bool| {
            let mut c = Command::new("skopeo");
            c.args(["inspect", "--tls-verify=false"]);
            if raw {
                c.arg("--raw");
            }
            c.arg(format!("docker://{reference}"));
            c
        };
        let mut out = Vec::new();
        for raw in [true, false] {
            let o = run(raw).output().await.expect("skopeo runs");
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            out.push(serde_json::from_slice(&o.stdout).unwrap());
        }
        let config = out.pop().unwrap();
        (out.pop().unwrap(), config)
    }
}

impl World {
    /// A world whose e-mail notifications go to `smtp`.
    pub async fn with_smtp(smtp: devops::notification::Smtp) -> Self {
        Self::start(TestPlatform::new().await, devops::registry::Settings::default(), smtp).await
    }

    /// A world on `t`'s settings.
    pub async fn start(
        t: TestPlatform,
        registry: devops::registry::Settings,
        smtp: devops::notification::Smtp,
    ) -> Self {
        let shutdown = Shutdown::new();
        let started = devops::start_notifying(
            &t.settings,
            registry.clone(),
            smtp,
            Addresses::ephemeral(),
            "127.0.0.1:0".parse().unwrap(),
            &shutdown,
        )
        .await
        .unwrap();
        let pool = kernel::db::connect(&t.settings, devops::NAME).await.unwrap();
        Self {
            key: CallerKey::new(t.settings.caller_key.clone()),
            shutdown,
            grpc: started.running.grpc,
            runner_api: started.runners,
            tenant: Uuid::now_v7(),
            pool,
            t,
            registry,
            sandbox: Sandbox::detect().await,
        }
    }
}

/// Debian's aiosmtpd (`python3-aiosmtpd`) on a free loopback port, keeping
/// what it receives in a Maildir.
pub struct SmtpSink {
    pub port: u16,
    maildir: PathBuf,
    _dir: tempfile::TempDir,
    _process: Child,
}

impl SmtpSink {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("mail");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Debian's interpreter, where the package installs the module.
        let python = if Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3"
        } else {
            "python3"
        };
        let process = Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("aiosmtpd starts (scripts/deps installs python3-aiosmtpd)");
        eventually(Duration::from_secs(10), "the SMTP server answers", || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()
        })
        .await;
        Self {
            port,
            maildir,
            _dir: dir,
            _process: process,
        }
    }

    pub fn settings(&self) -> devops::notification::Smtp {
        devops::notification::Smtp {
            server: Some(format!("127.0.0.1:{}", self.port)),
            from: "paas@example.com".into(),
        }
    }

    /// The messages received so far, raw.
    pub fn messages(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
            .collect()
    }
}

/// One HTTP request a [`HookReceiver`] took.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A plain HTTP/1.1 endpoint on a free loopback port that records each
/// request and answers 500 to the first `failures` of them, 204 after.
pub struct HookReceiver {
    pub url: String,
    pub received: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
    task: JoinHandle<()>,
}

impl HookReceiver {
    pub async fn start(failures: usize) -> Self {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/paas", listener.local_addr().unwrap());
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = received.clone();
        let task = tokio::spawn(async move {
            let mut answered = 0usize;
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let mut stream = BufReader::new(stream);
                let mut headers = Vec::new();
                let mut line = String::new();
                stream.read_line(&mut line).await.unwrap_or(0);
                loop {
                    line.clear();
                    if stream.read_line(&mut line).await.unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = line.trim_end().split_once(':') {
                        headers.push((k.trim().to_string(), v.trim().to_string()));
                    }
                }
                let length = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.parse::<usize>().ok())
                    .unwrap_or(0);
                let mut body = vec![0; length];
                if stream.read_exact(&mut body).await.is_err() {
                    continue;
                }
                log.lock().unwrap().push(Received { headers, body });
                let status = if answered < failures {
                    "500 Internal Server Error"
                } else {
                    "204 No Content"
                };
                answered += 1;
                let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = stream.get_mut().write_all(answer.as_bytes()).await;
            }
        });
        Self { url, received, task }
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for HookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
