//! `paas runner`: the process that executes steps. It presents its token to
//! devops' runner port, takes jobs from a gRPC stream, and runs each in a
//! fresh workspace: the source fetched with the `git` CLI at the run's
//! commit, every command in `sh -e` with a clean environment (only `PATH`,
//! `HOME`, `CI`, the run's `PAAS_*` variables and the step's own), inside
//! bubblewrap when `bwrap` is installed, in its own process group so a time
//! limit or a cancellation kills everything it started. `build-image` steps
//! build the workspace's Containerfile with buildah and push it with skopeo
//! where devops says, reporting the digest. Output streams back as it comes;
//! heartbeats keep the steps' leases, and tell it which steps to stop.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kernel::{Error, Result};
use paas_proto::v1 as pb;
use paas_proto::v1::runner_service_client::RunnerServiceClient;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::conductor::HEARTBEAT;
use crate::junit;

/// `PATH` inside steps: the system's programs, nothing from the runner's
/// own environment.
pub const STEP_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Output is sent at least this often while a step writes.
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// Output is sent at once when this much is buffered.
pub const FLUSH_BYTES: usize = 64 * 1024;
/// How long the runner waits before reconnecting after devops went away.
pub const RECONNECT: Duration = Duration::from_secs(1);
/// How often output is offered again while devops does not answer (one
/// [`RECONNECT`] apart): the step's lease outlasts these tries.
pub const OUTPUT_RETRIES: u32 = 15;
/// How long a Git fetch may take before the step fails.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(300);

/// How steps are isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sandbox {
    /// `bwrap`: a read-only system (`/usr`, `/etc` and the `/bin`, `/lib`
    /// links), a private `/tmp`, the workspace (at `/workspace`) the only
    /// writable place, nothing else of the host's files (the runner's own
    /// work directory, other steps' workspaces and home directories are not
    /// there), new PID/IPC/UTS namespaces. The network is the host's: steps
    /// fetch dependencies and talk to registries, and a pipeline with no
    /// network would be a different product; what the sandbox keeps is the
    /// runner's and other runs' files out of a step's reach.
    /// `build-image` steps run buildah outside it (buildah isolates the
    /// Containerfile's `RUN` instructions itself, with chroot isolation).
    Bubblewrap,
    /// Plain processes (a clean environment and a process group only).
    None,
}

impl Sandbox {
    /// Bubblewrap when `bwrap` works here, else none.
    pub async fn detect() -> Self {
        let works = Command::new("bwrap")
            .args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "true"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success());
        if works { Self::Bubblewrap } else { Self::None }
    }

    /// The name the runner registers with.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bubblewrap => "bwrap",
            Self::None => "none",
        }
    }
}

/// The runner's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// devops' runner API (`http://host:7306`).
    pub url: String,
    /// The token devops gave the runner.
    pub token: kernel::settings::Secret,
    /// Steps run at once.
    pub concurrency: u32,
    /// Where workspaces are made.
    pub work_dir: PathBuf,
    /// The sandbox to use.
    pub sandbox: Sandbox,
}

/// devops' runner API, `http://host:port`.
pub const URL: &str = "PAAS_RUNNER_URL";
/// The runner's token (from `POST /api/v1/runners`).
pub const TOKEN: &str = "PAAS_RUNNER_TOKEN";
/// Steps run at once.
pub const CONCURRENCY: &str = "PAAS_RUNNER_CONCURRENCY";
/// Default concurrency: one step per core of a small build machine.
pub const CONCURRENCY_DEFAULT: u32 = 4;
/// Where workspaces are made (default: `paas-runner` in the temp directory).
pub const WORK_DIR: &str = "PAAS_RUNNER_WORK_DIR";
/// `auto` (bubblewrap when it works) or `none`.
pub const SANDBOX: &str = "PAAS_RUNNER_SANDBOX";

impl Settings {
    /// Reads the runner's settings; `auto` sandboxing probes for `bwrap`.
    ///
    /// # Errors
    /// A variable is missing or malformed.
    pub async fn from_env(env: &kernel::settings::Env) -> Result<Self, kernel::settings::SettingError> {
        let sandbox = match env.or(SANDBOX, "auto".to_string())?.as_str() {
            "none" => Sandbox::None,
            "auto" => Sandbox::detect().await,
            other => {
                return Err(kernel::settings::SettingError {
                    variable: SANDBOX.into(),
                    expected: "auto or none".into(),
                    found: Some(other.into()),
                });
            }
        };
        let work_dir = env
            .optional::<String>(WORK_DIR)?
            .map_or_else(|| std::env::temp_dir().join("paas-runner"), PathBuf::from);
        Ok(Self {
            url: env.required(URL)?,
            token: env.secret(TOKEN, 16)?,
            concurrency: env.or(CONCURRENCY, CONCURRENCY_DEFAULT)?.clamp(1, 256),
            work_dir,
            sandbox,
        })
    }
}

type Client = RunnerServiceClient<InterceptedService<Channel, Bearer>>;

/// Adds the runner's token to every call.
#[derive(Clone)]
pub struct Bearer(AsciiMetadataValue);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        request.metadata_mut().insert("authorization", self.0.clone());
        Ok(request)
    }
}

fn client(settings: &Settings) -> Result<Client> {
    let bearer: AsciiMetadataValue = format!("Bearer {}", settings.token.expose())
        .parse()
        .map_err(|_| Error::invalid("token", "must be printable ASCII"))?;
    let channel = kernel::grpc::channel(&settings.url)?;
    Ok(RunnerServiceClient::with_interceptor(channel, Bearer(bearer)))
}

/// Steps running here, with the token that stops each.
type Running = Arc<Mutex<HashMap<String, CancellationToken>>>;

/// Runs the runner until `stop`: registers, takes jobs, reconnects when
/// devops goes away. Steps in flight finish (or are cancelled) on stop.
///
/// # Errors
/// The token is refused or the settings are unusable.
pub async fn run(settings: Settings, stop: CancellationToken) -> Result<()> {
    let client = client(&settings)?;
    std::fs::create_dir_all(&settings.work_dir).map_err(Error::internal)?;
    let running: Running = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    // In the set, so the heartbeats stop when the runner's task is dropped:
    // a runner that dies must look dead to devops.
    tasks.spawn(heartbeats(client.clone(), running.clone(), stop.clone()));
    while !stop.is_cancelled() {
        let mut c = client.clone();
        let registered = c
            .register(pb::RegisterRunnerRequest {
                concurrency: settings.concurrency,
                sandbox: settings.sandbox.as_str().into(),
            })
            .await;
        match registered {
            Ok(r) => {
                let r = r.into_inner();
                tracing::info!(runner = %r.id, name = %r.name, sandbox = %r.sandbox, "runner registered");
            }
            Err(s) if s.code() == tonic::Code::Unauthenticated => {
                return Err(Error::Unauthenticated(s.message().to_string()));
            }
            Err(s) => {
                tracing::warn!(error = %s.message(), "devops is unreachable; retrying");
                tokio::select! { () = stop.cancelled() => break, () = tokio::time::sleep(RECONNECT) => continue }
            }
        }
        let stream = match c.take_jobs(pb::TakeJobsRequest {}).await {
            Ok(s) => s.into_inner(),
            Err(s) => {
                tracing::warn!(error = %s.message(), "cannot take jobs; retrying");
                tokio::select! { () = stop.cancelled() => break, () = tokio::time::sleep(RECONNECT) => continue }
            }
        };
        let mut stream = stream;
        loop {
            let next = tokio::select! {
                () = stop.cancelled() => break,
                n = stream.message() => n,
            };
            match next {
                Ok(Some(job)) => {
                    let token = stop.child_token();
                    running
                        .lock()
                        .expect("the running map is never poisoned")
                        .insert(job.step_id.clone(), token.clone());
                    let (client, running, settings) = (client.clone(), running.clone(), settings.clone());
                    tasks.spawn(async move {
                        let step = job.step_id.clone();
                        execute(&client, &settings, job, token).await;
                        running.lock().expect("the running map is never poisoned").remove(&step);
                    });
                }
                Ok(None) | Err(_) => {
                    tracing::warn!("the job stream ended; reconnecting");
                    tokio::time::sleep(RECONNECT).await;
                    break;
                }
            }
        }
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn heartbeats(mut client: Client, running: Running, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(HEARTBEAT) => {}
        }
        let ids: Vec<String> = running
            .lock()
            .expect("the running map is never poisoned")
            .keys()
            .cloned()
            .collect();
        match client.heartbeat(pb::HeartbeatRequest { step_ids: ids }).await {
            Ok(r) => {
                let map = running.lock().expect("the running map is never poisoned");
                for id in r.into_inner().cancel_step_ids {
                    if let Some(token) = map.get(&id) {
                        tracing::info!(step = %id, "devops cancelled the step");
                        token.cancel();
                    }
                }
            }
            Err(s) => tracing::warn!(error = %s.message(), "heartbeat failed"),
        }
    }
}

/// Sends output to devops in batches; cancels the step when devops says so.
async fn ship_output(
    mut client: Client,
    step: String,
    attempt: u32,
    mut rx: mpsc::Receiver<Vec<u8>>,
    cancel: CancellationToken,
) {
    let mut buffer = Vec::new();
    let mut open = true;
    // When the oldest unsent output must go, however much more follows it.
    let mut due = tokio::time::Instant::now();
    while open || !buffer.is_empty() {
        if open {
            tokio::select! {
                chunk = rx.recv() => match chunk {
                    Some(c) => {
                        if buffer.is_empty() {
                            due = tokio::time::Instant::now() + FLUSH_EVERY;
                        }
                        buffer.extend_from_slice(&c);
                        if buffer.len() < FLUSH_BYTES {
                            continue;
                        }
                    }
                    None => open = false,
                },
                () = tokio::time::sleep_until(due), if !buffer.is_empty() => {}
            }
        }
        if buffer.is_empty() {
            continue;
        }
        let data = std::mem::take(&mut buffer);
        // devops may be restarting: hold the output and try again, as long as
        // the step's lease would survive it.
        for attempt_no in 0.. {
            let request = pb::AppendOutputRequest {
                step_id: step.clone(),
                attempt,
                data: data.clone(),
            };
            match client.append_output(request).await {
                Ok(r) => {
                    if r.get_ref().cancel {
                        cancel.cancel();
                    }
                    break;
                }
                Err(s) if transient(&s) && attempt_no < OUTPUT_RETRIES => tokio::time::sleep(RECONNECT).await,
                Err(s) => {
                    tracing::warn!(step = %step, error = %s.message(), "output lost");
                    break;
                }
            }
        }
    }
}

/// How a step's process ended.
enum Ended {
    Exited(i32),
    TimedOut,
    Cancelled,
}

/// Runs one job to its end and reports it.
async fn execute(client: &Client, settings: &Settings, job: pb::Job, cancel: CancellationToken) {
    let (tx, rx) = mpsc::channel::<Vec<u8>>(256);
    let shipper = tokio::spawn(ship_output(
        client.clone(),
        job.step_id.clone(),
        job.attempt,
        rx,
        cancel.clone(),
    ));
    let workspace = settings.work_dir.join(format!("{}-{}", job.step_id, job.attempt));
    let mut result = perform(settings, &job, &workspace, &tx, &cancel).await;
    drop(tx);
    let _ = shipper.await;
    let _ = tokio::fs::remove_dir_all(&workspace).await;
    result.step_id.clone_from(&job.step_id);
    result.attempt = job.attempt;
    let mut client = client.clone();
    // devops may be restarting: keep trying for a while, the step's lease
    // keeps it ours as long as heartbeats get through.
    for _ in 0..60 {
        match client.finish_step(result.clone()).await {
            Ok(_) => return,
            Err(s) if transient(&s) => tokio::time::sleep(RECONNECT).await,
            Err(s) => {
                tracing::warn!(step = %job.step_id, error = %s.message(), "cannot report the step's end");
                return;
            }
        }
    }
}

/// An error that a retry may cure (devops restarting or unreachable).
fn transient(s: &tonic::Status) -> bool {
    matches!(
        s.code(),
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
    )
}

async fn say(tx: &mpsc::Sender<Vec<u8>>, text: &str) {
    let _ = tx.send(format!("[paas] {text}\n").into_bytes()).await;
}

fn failed(exit_code: i32, message: impl Into<String>) -> pb::FinishStepRequest {
    pb::FinishStepRequest {
        exit_code,
        message: message.into(),
        succeeded: false,
        ..Default::default()
    }
}

async fn perform(
    settings: &Settings,
    job: &pb::Job,
    workspace: &Path,
    tx: &mpsc::Sender<Vec<u8>>,
    cancel: &CancellationToken,
) -> pb::FinishStepRequest {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(job.timeout_seconds.max(1));
    if !matches!(job.kind.as_str(), "run" | "test" | "build-image") {
        return failed(-1, format!("this runner does not execute {} steps", job.kind));
    }
    let _ = tokio::fs::remove_dir_all(workspace).await;
    if let Err(e) = tokio::fs::create_dir_all(workspace).await {
        return failed(-1, format!("cannot create the workspace: {e}"));
    }
    say(
        tx,
        &format!("fetching {} {} at {}", job.repository, job.git_ref, job.commit),
    )
    .await;
    if let Err(why) = fetch(workspace, job, cancel).await {
        say(tx, &why).await;
        return failed(-1, why);
    }
    if job.kind == "build-image" {
        let Some(push) = &job.push else {
            return failed(-1, "devops sent no push destination for the image");
        };
        let storage = workspace.with_extension("buildah");
        let result = build_image(push, workspace, &storage, tx, deadline, cancel).await;
        let _ = tokio::fs::remove_dir_all(&storage).await;
        return result;
    }
    if !job.image.is_empty() {
        say(
            tx,
            &format!("image {} is not used: this runner executes on its host", job.image),
        )
        .await;
    }
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), STEP_PATH.into()),
        ("CI".into(), "true".into()),
        ("PAAS_RUN_ID".into(), job.run_id.clone()),
        ("PAAS_STEP_ID".into(), job.step_id.clone()),
        ("PAAS_GIT_REF".into(), job.git_ref.clone()),
        ("PAAS_COMMIT".into(), job.commit.clone()),
        ("PAAS_VERSION".into(), job.version.clone()),
    ];
    env.extend(job.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut exit = 0;
    for command in &job.commands {
        let _ = tx.send(format!("$ {command}\n").into_bytes()).await;
        let line = command_line(settings.sandbox, workspace, command);
        match run_command(line, workspace, &env, tx, deadline, cancel).await {
            Ok(Ended::Exited(0)) => {}
            Ok(Ended::Exited(code)) => {
                exit = code;
                say(tx, &format!("the command exited with {code}")).await;
                break;
            }
            Ok(Ended::TimedOut) => {
                let why = format!("the step took longer than its {}s time limit", job.timeout_seconds);
                say(tx, &why).await;
                return failed(-1, why);
            }
            Ok(Ended::Cancelled) => {
                say(tx, "cancelled").await;
                return failed(-1, "cancelled");
            }
            Err(why) => {
                say(tx, &why).await;
                return failed(-1, why);
            }
        }
    }
    let mut result = pb::FinishStepRequest {
        exit_code: exit,
        succeeded: exit == 0,
        message: if exit == 0 {
            String::new()
        } else {
            format!("a command exited with {exit}")
        },
        ..Default::default()
    };
    if job.kind == "test" {
        let mut summary = junit::Summary::default();
        for report in &job.reports {
            match tokio::fs::read_to_string(workspace.join(report)).await {
                Ok(xml) => match junit::read(&xml) {
                    Ok(s) => summary.merge(s),
                    Err(e) => {
                        result.succeeded = false;
                        result.message = format!("{report}: {e}");
                    }
                },
                Err(_) => {
                    result.succeeded = false;
                    result.message = format!("the report {report} was not written");
                }
            }
        }
        say(
            tx,
            &format!(
                "tests: {} run, {} failed, {} skipped",
                summary.total, summary.failed, summary.skipped
            ),
        )
        .await;
        if summary.failed > 0 {
            result.succeeded = false;
            result.message = format!("{} of {} tests failed", summary.failed, summary.total);
        }
        result.tests_total = Some(summary.total);
        result.tests_failed = Some(summary.failed);
        result.tests_skipped = Some(summary.skipped);
        result.test_failures = summary
            .failures
            .into_iter()
            .map(|(name, message)| pb::TestFailure { name, message })
            .collect();
    }
    result
}

/// Builds the step's Containerfile with buildah (vfs storage of its own,
/// chroot isolation: no daemon and no privileges beyond the runner's), then
/// pushes it with skopeo, which takes the registry token as a bearer token.
/// The image carries the OCI annotations (and labels) of its source and
/// revision; the digest the registry answered is the step's artifact.
async fn build_image(
    push: &pb::ImagePush,
    workspace: &Path,
    storage: &Path,
    tx: &mpsc::Sender<Vec<u8>>,
    deadline: tokio::time::Instant,
    cancel: &CancellationToken,
) -> pb::FinishStepRequest {
    let tmp = storage.join("tmp");
    if let Err(e) = tokio::fs::create_dir_all(&tmp).await {
        return failed(-1, format!("cannot create the image storage: {e}"));
    }
    let env = vec![
        ("PATH".to_string(), STEP_PATH.to_string()),
        ("TMPDIR".to_string(), tmp.to_string_lossy().into_owned()),
        ("BUILDAH_ISOLATION".to_string(), "chroot".to_string()),
    ];
    let root = storage.join("root").to_string_lossy().into_owned();
    let run_root = storage.join("run").to_string_lossy().into_owned();
    let archive = format!("oci-archive:{}", storage.join("image.tar").display());
    let digest_file = storage.join("digest");
    let buildah = |args: Vec<String>| {
        let mut c = Command::new("buildah");
        c.args(["--root", &root, "--runroot", &run_root, "--storage-driver", "vfs"])
            .args(args);
        c
    };
    let annotations = [
        format!("org.opencontainers.image.source={}", push.source),
        format!("org.opencontainers.image.revision={}", push.revision),
    ];
    let mut build: Vec<String> = vec!["build".into(), "--isolation".into(), "chroot".into()];
    for a in &annotations {
        build.extend(["--annotation".into(), a.clone(), "--label".into(), a.clone()]);
    }
    build.extend([
        "-f".into(),
        workspace.join(&push.containerfile).to_string_lossy().into_owned(),
        "-t".into(),
        push.reference.clone(),
        workspace.to_string_lossy().into_owned(),
    ]);
    let mut copy: Vec<String> = vec!["copy".into()];
    if push.insecure {
        copy.push("--dest-tls-verify=false".into());
    }
    if !push.registry_token.is_empty() {
        copy.extend(["--dest-registry-token".into(), push.registry_token.clone()]);
    }
    copy.extend([
        "--digestfile".into(),
        digest_file.to_string_lossy().into_owned(),
        archive.clone(),
        format!("docker://{}", push.reference),
    ]);
    let mut skopeo = Command::new("skopeo");
    skopeo.args(&copy);
    let commands = [
        (
            "buildah build",
            format!("buildah build -f {} -t {}", push.containerfile, push.reference),
            buildah(build),
        ),
        (
            "buildah push",
            format!("buildah push {} {archive}", push.reference),
            buildah(vec!["push".into(), push.reference.clone(), archive.clone()]),
        ),
        // The token stays out of the log.
        (
            "skopeo copy",
            format!("skopeo copy {archive} docker://{}", push.reference),
            skopeo,
        ),
    ];
    for (what, shown, mut command) in commands {
        let _ = tx.send(format!("$ {shown}\n").into_bytes()).await;
        command.current_dir(workspace);
        match run_command(command, storage, &env, tx, deadline, cancel).await {
            Ok(Ended::Exited(0)) => {}
            Ok(Ended::Exited(code)) => {
                say(tx, &format!("the command exited with {code}")).await;
                return failed(code, format!("{what} exited with {code}"));
            }
            Ok(Ended::TimedOut) => return failed(-1, "the step took longer than its time limit"),
            Ok(Ended::Cancelled) => {
                say(tx, "cancelled").await;
                return failed(-1, "cancelled");
            }
            Err(why) => {
                say(tx, &why).await;
                return failed(-1, why);
            }
        }
    }
    let digest = tokio::fs::read_to_string(&digest_file).await.unwrap_or_default();
    let digest = digest.trim();
    if !digest.starts_with("sha256:") {
        return failed(-1, "the registry answered no digest for the pushed image");
    }
    say(tx, &format!("pushed {}@{digest}", push.reference)).await;
    pb::FinishStepRequest {
        succeeded: true,
        image: push.reference.clone(),
        image_digest: digest.to_string(),
        ..Default::default()
    }
}

/// Clones the run's commit into `workspace` with the git CLI.
async fn fetch(workspace: &Path, job: &pb::Job, cancel: &CancellationToken) -> Result<(), String> {
    let git = |args: Vec<&str>| {
        let mut c = Command::new("git");
        c.args(args)
            .current_dir(workspace)
            .env_clear()
            .env("PATH", STEP_PATH)
            .env("HOME", workspace)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    };
    let steps = [
        vec!["init", "--quiet", "."],
        vec!["fetch", "--quiet", "--no-tags", "--", &job.repository, &job.git_ref],
        vec![
            "-c",
            "advice.detachedHead=false",
            "checkout",
            "--quiet",
            "--detach",
            &job.commit,
        ],
    ];
    for args in steps {
        let what = args
            .iter()
            .find(|a| !a.starts_with('-'))
            .copied()
            .unwrap_or("git")
            .to_string();
        let out = tokio::select! {
            () = cancel.cancelled() => return Err("cancelled while fetching the source".into()),
            r = tokio::time::timeout(FETCH_TIMEOUT, git(args).output()) => r,
        };
        match out {
            Err(_) => return Err(format!("git {what} took longer than {FETCH_TIMEOUT:?}")),
            Ok(Err(e)) => return Err(format!("cannot run git: {e}")),
            Ok(Ok(o)) if !o.status.success() => {
                return Err(format!(
                    "git {what} failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ));
            }
            Ok(Ok(_)) => {}
        }
    }
    Ok(())
}

/// The command line of a step's command, sandboxed or not.
fn command_line(sandbox: Sandbox, workspace: &Path, command: &str) -> Command {
    match sandbox {
        Sandbox::None => {
            let mut c = Command::new("sh");
            c.args(["-ec", command]).current_dir(workspace);
            c
        }
        Sandbox::Bubblewrap => {
            let ws = workspace.to_string_lossy().into_owned();
            let mut c = Command::new("bwrap");
            c.args(["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]);
            for dir in ["/bin", "/lib", "/lib64", "/sbin"] {
                c.args(["--ro-bind-try", dir, dir]);
            }
            c.args(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"])
                .args([
                    "--bind",
                    &ws,
                    "/workspace",
                    "--chdir",
                    "/workspace",
                    "--setenv",
                    "HOME",
                    "/workspace",
                ])
                .args([
                    "--unshare-pid",
                    "--unshare-ipc",
                    "--unshare-uts",
                    "--die-with-parent",
                    "--new-session",
                ])
                .args(["sh", "-ec", command]);
            c
        }
    }
}

async fn pump(mut from: impl AsyncRead + Unpin, tx: mpsc::Sender<Vec<u8>>) {
    let mut buf = vec![0u8; 8192];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 || tx.send(buf[..n].to_vec()).await.is_err() {
            return;
        }
    }
}

/// Runs one command to its end, its time limit, or cancellation, with a
/// clean environment of `env` and `HOME` at `home`.
async fn run_command(
    mut cmd: Command,
    home: &Path,
    env: &[(String, String)],
    tx: &mpsc::Sender<Vec<u8>>,
    deadline: tokio::time::Instant,
    cancel: &CancellationToken,
) -> Result<Ended, String> {
    cmd.env_clear()
        .env("HOME", home)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| format!("cannot start the command: {e}"))?;
    let pid = child.id();
    let out = child.stdout.take().map(|o| tokio::spawn(pump(o, tx.clone())));
    let err = child.stderr.take().map(|e| tokio::spawn(pump(e, tx.clone())));
    let ended = tokio::select! {
        status = child.wait() => Ended::Exited(status.map_err(|e| e.to_string())?.code().unwrap_or(-1)),
        () = tokio::time::sleep_until(deadline) => Ended::TimedOut,
        () = cancel.cancelled() => Ended::Cancelled,
    };
    // Background processes the command left behind go with it too.
    kill_group(pid).await;
    if !matches!(ended, Ended::Exited(_)) {
        let _ = child.kill().await;
    }
    for pumper in [out, err].into_iter().flatten() {
        let _ = tokio::time::timeout(Duration::from_secs(2), pumper).await;
    }
    Ok(ended)
}

/// Kills the process group `pid` leads, without `unsafe`: `kill(1)` does it.
async fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
    }
}
