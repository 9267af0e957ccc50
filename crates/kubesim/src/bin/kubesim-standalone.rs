//! `kubesim-standalone [--clusters N]`: kubesim without the platform, as
//! `paas kubesim` runs it (one line per cluster on stdout, serves until
//! SIGINT or SIGTERM, then removes its temporary kubeconfig folders).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut clusters = 1;
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next().map(|n| n.parse::<usize>())) {
            ("--clusters", Some(Ok(n))) if n > 0 => clusters = n,
            _ => {
                eprintln!("usage: kubesim-standalone [--clusters N]  (N >= 1)");
                return ExitCode::from(2);
            }
        }
    }
    match kubesim::run_standalone(clusters, kubesim::ClusterConfig::named("kubesim")).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kubesim: {e}");
            ExitCode::FAILURE
        }
    }
}
