//! The `paas` command: parses the command line, reads settings (a bad one
//! stops the process with one line naming it), and starts what was asked.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kernel::service::Addresses;
use kernel::settings::{self, Env, Platform, SettingError};
use kernel::shutdown::Shutdown;
use kernel::telemetry::Telemetry;

#[derive(Parser)]
#[command(name = "paas", version, about = "A multi-tenant PaaS control plane")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every service, the gateway and two simulated member clusters in one
    /// process, against local PostgreSQL, NATS and Redis.
    Up,
    /// One service (tenancy, federation, apps, configs, images, devops) or the gateway.
    Serve {
        /// Which one.
        service: String,
    },
    /// Runs every service's database migrations and exits.
    Migrate,
    /// Executes pipeline steps for devops (settings: PAAS_RUNNER_URL,
    /// PAAS_RUNNER_TOKEN, PAAS_RUNNER_CONCURRENCY, PAAS_RUNNER_WORK_DIR,
    /// PAAS_RUNNER_SANDBOX).
    Runner,
    /// Simulated Kubernetes clusters (kubesim) for tests and demos; prints
    /// each cluster's URL and kubeconfig.
    Kubesim {
        /// How many clusters.
        #[arg(long, default_value_t = 2)]
        clusters: usize,
    },
    /// Keeps a directory of config files current from the config center
    /// (one file per item) and runs a reload command after a change: a
    /// sidecar for programs in any language.
    ConfigAgent(Box<ConfigAgentArgs>),
}

/// `paas config-agent`'s settings: flags, or the environment variables named.
#[derive(clap::Args)]
struct ConfigAgentArgs {
    /// The gateway's URL.
    #[arg(long, env = "PAAS_GATEWAY_URL")]
    gateway: String,
    /// An application access key (or API token); prefer the environment variable.
    #[arg(long, env = "PAAS_CONFIG_TOKEN", hide_env_values = true)]
    token: String,
    /// The tenant's id.
    #[arg(long, env = "PAAS_CONFIG_TENANT")]
    tenant: String,
    /// The application.
    #[arg(long, env = "PAAS_CONFIG_APPLICATION")]
    application: String,
    /// The environment (absent: the base level).
    #[arg(long, env = "PAAS_CONFIG_ENVIRONMENT", default_value = "")]
    environment: String,
    /// The cluster (with an environment).
    #[arg(long, env = "PAAS_CONFIG_CLUSTER", default_value = "")]
    cluster: String,
    /// The directory the files are written to.
    #[arg(long, env = "PAAS_CONFIG_DIR")]
    dir: std::path::PathBuf,
    /// Where the last configuration is cached (default: `.paas-cache` in the directory).
    #[arg(long, env = "PAAS_CONFIG_CACHE_DIR")]
    cache_dir: Option<std::path::PathBuf>,
    /// This instance's id, as the config center records it (default: host name and process id).
    #[arg(long, env = "PAAS_CONFIG_INSTANCE")]
    instance: Option<String>,
    /// This instance's labels, `key=value,key=value`.
    #[arg(long, env = "PAAS_CONFIG_LABELS", default_value = "")]
    labels: String,
    /// A shell command run after the files change.
    #[arg(long, env = "PAAS_CONFIG_RELOAD_COMMAND")]
    reload_command: Option<String>,
    /// Milliseconds changes must settle before the reload command runs.
    #[arg(long, env = "PAAS_CONFIG_DEBOUNCE_MS", default_value_t = 500)]
    debounce_ms: u64,
}

/// Exit code for a settings error.
const BAD_SETTINGS: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Up => up().await,
            Command::Serve { service } => serve(&service).await,
            Command::Migrate => migrate().await,
            Command::ConfigAgent(args) => config_agent(*args).await,
            Command::Runner => runner().await,
            Command::Kubesim { clusters } => {
                // A stand-in for Kubernetes: it needs no platform settings.
                kubesim::run_standalone(clusters, kubesim::ClusterConfig::named("kubesim"))
                    .await
                    .map_err(|e| Failure::Run(anyhow::anyhow!("{e}")))
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Settings(e)) => {
            eprintln!("paas: {e}");
            ExitCode::from(BAD_SETTINGS)
        }
        Err(Failure::Run(e)) => {
            eprintln!("paas: {e:#}");
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    Settings(SettingError),
    Run(anyhow::Error),
}

impl From<SettingError> for Failure {
    fn from(e: SettingError) -> Self {
        Self::Settings(e)
    }
}

impl From<kernel::Error> for Failure {
    fn from(e: kernel::Error) -> Self {
        Self::Run(e.into())
    }
}

fn random_secret() -> String {
    format!("{:032x}{:032x}", rand::random::<u128>(), rand::random::<u128>())
}

/// Platform settings, telemetry and the stop signal every platform command needs.
fn platform(env: &Env) -> Result<(Platform, Telemetry, Shutdown), Failure> {
    let platform = Platform::from_env(env)?;
    let telemetry = kernel::telemetry::init("paas", &platform).map_err(|e| Failure::Run(e.into()))?;
    let shutdown = Shutdown::new();
    shutdown.on_signals();
    Ok((platform, telemetry, shutdown))
}

async fn wait(shutdown: &Shutdown) {
    if !shutdown.wait().await {
        tracing::warn!("some tasks did not stop within the grace period");
    }
}

async fn up() -> Result<(), Failure> {
    let mut env = Env::load()?;
    // One process shares one key; generate what a laptop user did not set.
    if env.raw(settings::CALLER_KEY).is_none() {
        env.set(settings::CALLER_KEY, random_secret());
    }
    let generated_token = env.raw(gateway::settings::ADMIN_TOKEN).is_none();
    if generated_token {
        env.set(gateway::settings::ADMIN_TOKEN, random_secret());
    }
    let (platform, _telemetry, shutdown) = platform(&env)?;
    let gw = gateway::Settings::from_env(&env)?;
    let token = gw
        .admin_token
        .as_ref()
        .map(|t| t.expose().to_string())
        .unwrap_or_default();
    let stack = paas::stack::start_in(&platform, &env, gw, &shutdown).await?;
    let federation = stack.service("federation").expect("started by the stack");
    let key = kernel::caller::CallerKey::new(platform.caller_key.clone());
    let clusters = paas::member_clusters::start(&key, federation)
        .await
        .map_err(Failure::Run)?;
    let registry = paas::master_registry::start(&platform, &stack)
        .await
        .map_err(Failure::Run)?;
    let url = stack.url();
    println!("paas is up: gateway {url}");
    if generated_token {
        println!("  admin token (generated; set PAAS_ADMIN_TOKEN to choose one): {token}");
    } else {
        println!("  admin token: from PAAS_ADMIN_TOKEN");
    }
    println!("  try: curl -H 'Authorization: Bearer {token}' {url}/api/v1/clusters");
    println!("  API reference: {url}/api/docs");
    for s in &stack.services {
        println!("  {:<10} grpc {}  health http://{}/healthz", s.name, s.grpc, s.http);
    }
    if let Some(runners) = stack.runners {
        println!(
            "  runners: PAAS_RUNNER_URL=http://{runners} PAAS_RUNNER_TOKEN=<from POST /api/v1/runners> paas runner"
        );
    }
    for c in &clusters {
        println!(
            "  cluster {:<9} {}  kubectl --kubeconfig {} get nodes",
            c.name(),
            c.url(),
            c.kubeconfig_path().display()
        );
    }
    // A DR drill needs these: a fault takes a cluster (its data centre) off
    // the network and `recover` brings it back.
    let faults = paas::member_clusters::fault_urls(&clusters);
    for (c, fault) in clusters.iter().zip(&faults) {
        println!("  cluster {:<9} fault injection {fault}", c.name());
    }
    if let Some(first) = faults.first() {
        println!("  DR drill: curl -X POST -H 'Content-Type: application/json' -d '{{\"fault\":\"down\"}}' {first}");
        println!("            then -d '{{\"fault\":\"recover\"}}' to bring it back (README: \"A DR drill\")");
    }
    match &registry {
        Some(r) => {
            let host = url.trim_start_matches("http://");
            println!(
                "  registry  {} (master; push through the gateway: {host}/<tenant>/<project>/<name>)",
                r.url
            );
            println!(
                "            skopeo copy --dest-tls-verify=false --dest-creds <robot>:<secret> ... docker://{host}/..."
            );
        }
        None => println!(
            "  registry  not started: docker-registry is not installed (scripts/deps installs it; or set {})",
            paas::master_registry::BINARY
        ),
    }
    wait(&shutdown).await;
    // The clusters and the registry live exactly as long as the platform.
    drop(clusters);
    drop(registry);
    Ok(())
}

async fn serve(service: &str) -> Result<(), Failure> {
    let env = Env::load()?;
    let (platform, _telemetry, shutdown) = platform(&env)?;
    if service == "gateway" {
        let addr = gateway::start(&platform, gateway::Settings::from_env(&env)?, &shutdown).await?;
        println!("gateway listening on http://{addr}");
    } else {
        let (grpc, http) = paas::stack::default_ports(service).ok_or_else(|| {
            Failure::Run(anyhow::anyhow!(
                "unknown service {service:?}; one of {} or gateway",
                paas::stack::SERVICES.join(", ")
            ))
        })?;
        let addresses = Addresses::from_env(&env, service, grpc, http)?;
        let running = paas::stack::start_service(service, &platform, addresses, &shutdown).await?;
        println!("{service} listening: grpc {} http {}", running.grpc, running.http);
    }
    wait(&shutdown).await;
    Ok(())
}

async fn migrate() -> Result<(), Failure> {
    let env = Env::load()?;
    let (platform, _telemetry, _shutdown) = platform(&env)?;
    paas::stack::migrate(&platform).await?;
    Ok(())
}

async fn config_agent(args: ConfigAgentArgs) -> Result<(), Failure> {
    // The agent runs beside an application, without the platform's settings.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let instance = args.instance.unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
            .trim_start_matches('-')
            .to_string()
    });
    let client = config_client::Settings::new(args.gateway, args.token, args.tenant, args.application)
        .environment(args.environment)
        .cluster(args.cluster)
        .instance(instance)
        .labels(&args.labels)
        .map_err(|e| Failure::Run(e.into()))?
        .cache_dir(args.cache_dir.unwrap_or_else(|| args.dir.join(".paas-cache")));
    let settings = paas::config_agent::AgentSettings {
        client,
        dir: args.dir,
        reload: args.reload_command.filter(|c| !c.trim().is_empty()),
        debounce: std::time::Duration::from_millis(args.debounce_ms),
    };
    let shutdown = Shutdown::new();
    shutdown.on_signals();
    paas::config_agent::run(settings, shutdown.token())
        .await
        .map_err(Failure::Run)
}

async fn runner() -> Result<(), Failure> {
    let env = Env::load()?;
    let settings = devops::agent::Settings::from_env(&env).await?;
    let (_platform, _telemetry, shutdown) = platform(&env)?;
    println!(
        "paas runner: {} with {} slot(s), sandbox {}, workspaces in {}",
        settings.url,
        settings.concurrency,
        settings.sandbox.as_str(),
        settings.work_dir.display()
    );
    devops::agent::run(settings, shutdown.token()).await?;
    Ok(())
}
