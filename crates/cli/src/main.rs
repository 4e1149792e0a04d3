//! The `ferroflux` binary; everything is in the library.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    ferroflux_cli::run().await
}
