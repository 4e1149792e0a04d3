//! kustomize-controller, built inside this package so that its end-to-end tests can run it
//! as a process (`CARGO_BIN_EXE_*` only names a package's own binaries).

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ferroflux_kustomize_controller::cmd::run(ferroflux_kustomize_controller::cmd::Args::parse())
        .await
}
