//! The `ferroflux` CLI, built inside this package so that its end-to-end tests can run it as a
//! process next to the controllers this package builds (`CARGO_BIN_EXE_*` only names a
//! package's own binaries).

fn main() -> std::process::ExitCode {
    ferroflux_cli::main()
}
