//! source-controller, built inside this package so that its end-to-end tests can run it as
//! a process (`CARGO_BIN_EXE_*` only names a package's own binaries).

use clap::Parser;
use ferroflux_source_controller::{Args, CONTROLLER, run};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    args.runtime.init_logging();
    let manager = ferroflux_runtime::Manager::from_env(CONTROLLER, args.runtime.clone()).await?;
    run(args, manager, true).await
}
