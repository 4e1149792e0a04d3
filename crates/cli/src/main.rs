//! `ferroflux`: the command line. Thin: each subcommand lives in its own module.

mod dev;

use clap::{Parser, Subcommand};

/// ferroflux: the Flux v2 GitOps toolkit, rebuilt in Rust.
#[derive(Parser)]
#[command(name = "ferroflux", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run ferroflux locally: a real control plane on this machine, for trying it out.
    Dev {
        #[command(subcommand)]
        command: dev::DevCommand,
    },
    /// Print the version of ferroflux and of the Flux API it serves.
    Version,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Dev { command } => dev::run(command).await,
        Command::Version => {
            println!("ferroflux: v{}", env!("CARGO_PKG_VERSION"));
            println!("flux API: {}", ferroflux_api::constants::FLUX_DISTRIBUTION_VERSION);
            Ok(())
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("✗ {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
