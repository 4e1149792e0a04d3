//! `ferroflux`: the command line. Thin: each verb group lives in its own module. A library so
//! that the end-to-end tests can build the same CLI into their own package (`CARGO_BIN_EXE_*`
//! only names a package's own binaries) and run `dev up` with the controllers they built.

mod bootstrap;
mod build;
mod cluster;
mod components;
mod create;
mod dev;
mod events;
mod get;
mod install;
mod logs;
mod objects;
mod output;
mod tree;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::cluster::Global;

/// ferroflux: the Flux v2 GitOps toolkit, rebuilt in Rust. The verbs and flags are the
/// `flux` CLI's, so a Flux user's habits carry over.
#[derive(Parser)]
#[command(name = "ferroflux", version)]
struct Cli {
    #[command(flatten)]
    global: Global,
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
    /// Print the version of the client and of the ferroflux installed in the cluster.
    Version(install::VersionArgs),
    /// Deploy Flux on a cluster the GitOps way: push the manifests to Git, then sync from it.
    Bootstrap {
        #[command(subcommand)]
        target: bootstrap::BootstrapTarget,
    },
    /// Check requirements and installation.
    Check(install::CheckArgs),
    /// Install or upgrade ferroflux (CRDs and controllers) in the flux-system namespace, and
    /// wait (until --timeout) for the controllers to be ready.
    Install(install::InstallArgs),
    /// Uninstall ferroflux and its custom resource definitions.
    Uninstall(install::UninstallArgs),
    /// Create or update sources and resources.
    Create(create::CreateArgs),
    /// Get the resources and their status.
    Get(get::GetArgs),
    /// Reconcile sources and resources now.
    Reconcile {
        #[command(subcommand)]
        target: objects::ReconcileTarget,
    },
    /// Suspend the reconciliation of sources and resources.
    Suspend {
        #[command(subcommand)]
        target: objects::Target,
    },
    /// Resume suspended sources and resources, and wait for their reconciliation.
    Resume(objects::ResumeArgs),
    /// Delete sources and resources.
    Delete(objects::DeleteArgs),
    /// Export resources in YAML format.
    Export(objects::ExportArgs),
    /// Display Kubernetes events for Flux resources.
    Events(events::EventsArgs),
    /// Display formatted logs of the ferroflux controllers (their pods, or the local demo's processes).
    Logs(logs::LogsArgs),
    /// Print the resource inventory of a Kustomization as a tree.
    Tree {
        #[command(subcommand)]
        target: tree::TreeTarget,
    },
    /// Build a Kustomization locally with the overlays the controller applies.
    Build {
        #[command(subcommand)]
        target: build::BuildTarget,
    },
    /// Diff a locally built Kustomization against the cluster (server-side dry-run).
    Diff {
        #[command(subcommand)]
        target: build::DiffTarget,
    },
    /// Build a kustomization directory with ferroflux's native kustomize.
    Kustomize {
        #[command(subcommand)]
        command: build::KustomizeCommand,
    },
    /// Render Helm charts with ferroflux's native Helm engine.
    Helm {
        #[command(subcommand)]
        command: build::HelmCommand,
    },
}

/// The whole of the `ferroflux` binary: parses the command line and runs the verb. The local
/// renderers (`helm template`, `kustomize build`) never wait on anything, so they are polled
/// to completion on this thread: starting the async runtime and its worker threads would be
/// a visible share of a millisecond-scale render. Every other verb runs on a multi-threaded
/// runtime, as `#[tokio::main]` would start it.
pub fn main() -> std::process::ExitCode {
    let (cli, namespace_given) = match parse() {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let local = matches!(
        cli.command,
        Command::Kustomize { .. } | Command::Helm { .. }
    );
    let verb = dispatch(cli.global, cli.command, namespace_given);
    let result = if local {
        futures::executor::block_on(verb)
    } else {
        match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime.block_on(verb),
            Err(e) => Err(anyhow::anyhow!("starting the async runtime: {e}")),
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            output::failure(format!("{err:#}"));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The parsed command line, and whether `-n/--namespace` was given on it; or the exit code
/// after clap printed help, the version or a usage error.
fn parse() -> Result<(Cli, bool), std::process::ExitCode> {
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m).map(|cli| (cli, m)));
    match parsed {
        Ok((cli, matches)) => {
            let namespace_given =
                matches.value_source("namespace") == Some(clap::parser::ValueSource::CommandLine);
            Ok((cli, namespace_given))
        }
        Err(e) => {
            let _ = e.print();
            // --help and --version succeed; a usage error exits 1, as the flux CLI (cobra)
            // does, so scripts written for flux read our failures the same way.
            Err(if e.exit_code() == 0 {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            })
        }
    }
}

async fn dispatch(g: cluster::Global, command: Command, namespace_given: bool) -> Outcome {
    match command {
        Command::Dev { command } => dev::run(command)
            .await
            .map(|()| std::process::ExitCode::SUCCESS),
        Command::Version(args) => install::version(&g, args).await,
        Command::Bootstrap { target } => bootstrap::run(&g, target).await,
        Command::Check(args) => install::check(&g, args).await,
        Command::Install(args) => install::install(&g, args).await,
        Command::Uninstall(args) => install::uninstall(&g, args).await,
        Command::Create(args) => create::run(&g, args).await,
        Command::Get(args) => get::run(&g, args).await,
        Command::Reconcile { target } => objects::reconcile(&g, target).await,
        Command::Suspend { target } => objects::suspend(&g, target).await,
        Command::Resume(args) => objects::resume(&g, args).await,
        Command::Delete(args) => objects::delete(&g, args).await,
        Command::Export(args) => objects::export(&g, args).await,
        Command::Events(args) => events::events(&g, args).await,
        Command::Logs(args) => logs::logs(&g, args).await,
        Command::Tree { target } => tree::run(&g, target).await,
        Command::Build { target } => build::build(&g, target).await,
        Command::Diff { target } => build::diff(&g, target).await,
        Command::Kustomize { command } => build::kustomize(command),
        // `helm template -n NS` names the release namespace, as in helm, where the default
        // is "default" (not flux-system, nor $FLUX_SYSTEM_NAMESPACE).
        Command::Helm { command } => {
            build::helm(command, namespace_given.then(|| g.namespace.clone()))
        }
    }
}

/// What a verb returns: an exit code (0 unless the verb reports a finding such as a
/// diff), or an error that is printed with `✗` and exits 1.
pub type Outcome = anyhow::Result<std::process::ExitCode>;

/// Exit code 0.
pub fn ok() -> Outcome {
    Ok(std::process::ExitCode::SUCCESS)
}
