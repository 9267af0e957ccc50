//! The `paas` command: parses the command line, reads settings (a bad one
//! stops the process with one line naming it), and starts what was asked.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kernel::service::Addresses;
use kernel::settings::{self, Env, Platform, SettingError};
use kernel::shutdown::Shutdown;

#[derive(Parser)]
#[command(name = "paas", version, about = "A multi-tenant PaaS control plane")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every service and the gateway in one process, against local
    /// PostgreSQL, NATS and Redis.
    Up,
    /// One service (tenancy, federation, apps, configs, images, devops) or the gateway.
    Serve {
        /// Which one.
        service: String,
    },
    /// Runs every service's database migrations and exits.
    Migrate,
}

/// Exit code for a settings error, as sysexits' EX_USAGE-like "bad config".
const BAD_SETTINGS: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match runtime.block_on(run(cli)) {
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

async fn run(cli: Cli) -> Result<(), Failure> {
    let mut env = Env::load()?;
    let mut generated_token = None;
    if let Command::Up = cli.command {
        // One process shares one key; generate what a laptop user did not set.
        if env.raw(settings::CALLER_KEY).is_none() {
            env.set(settings::CALLER_KEY, random_secret());
        }
        if env.raw(gateway::settings::ADMIN_TOKEN).is_none() {
            let token = random_secret();
            env.set(gateway::settings::ADMIN_TOKEN, token.clone());
            generated_token = Some(token);
        }
    }
    let platform = Platform::from_env(&env)?;
    let _telemetry = kernel::telemetry::init("paas", &platform).map_err(|e| Failure::Run(e.into()))?;
    let shutdown = Shutdown::new();
    shutdown.on_signals();

    match cli.command {
        Command::Migrate => {
            paas::stack::migrate(&platform).await?;
            return Ok(());
        }
        Command::Up => {
            let gw = gateway::Settings::from_env(&env)?;
            let token = gw.admin_token.as_ref().map(|t| t.expose().to_string()).unwrap_or_default();
            let stack = paas::stack::start(&platform, gw, &shutdown).await?;
            let url = stack.url();
            println!("paas is up: gateway {url}");
            match generated_token {
                Some(_) => println!("  admin token (generated; set PAAS_ADMIN_TOKEN to choose one): {token}"),
                None => println!("  admin token: from PAAS_ADMIN_TOKEN"),
            }
            println!("  try: curl -H 'Authorization: Bearer {token}' {url}/api/v1/tenants");
            for s in &stack.services {
                println!("  {:<10} grpc {}  health http://{}/healthz", s.name, s.grpc, s.http);
            }
        }
        Command::Serve { service } if service == "gateway" => {
            let gw = gateway::Settings::from_env(&env)?;
            let addr = gateway::start(&platform, gw, &shutdown).await?;
            println!("gateway listening on http://{addr}");
        }
        Command::Serve { service } => {
            let (grpc, http) = paas::stack::default_ports(&service).ok_or_else(|| {
                Failure::Run(anyhow::anyhow!("unknown service {service:?}; one of {} or gateway", paas::stack::SERVICES.join(", ")))
            })?;
            let addresses = Addresses::from_env(&env, &service, grpc, http)?;
            let running = paas::stack::start_service(&service, &platform, addresses, &shutdown).await?;
            println!("{service} listening: grpc {} http {}", running.grpc, running.http);
        }
    }
    if !shutdown.wait().await {
        tracing::warn!("some tasks did not stop within the grace period");
    }
    Ok(())
}
