//! kustomize-controller binary.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ferroflux_kustomize_controller::cmd::run(ferroflux_kustomize_controller::cmd::Args::parse())
        .await
}
