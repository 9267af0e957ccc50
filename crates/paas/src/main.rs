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
    wait(&shutdown).await;
    // The clusters live exactly as long as the platform.
    drop(clusters);
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
