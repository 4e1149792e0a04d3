//! `ferroflux-crdgen [--check] [DIR]`: writes the CRDs into DIR (default `crds/`), or with
//! `--check` exits 1 and names the stale files when DIR differs from the types.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut check = false;
    let mut dir = PathBuf::from("crds");
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--check" => check = true,
            "-h" | "--help" => {
                println!(
                    "usage: ferroflux-crdgen [--check] [DIR]\n\nWrites crds/*.yaml from the API types (default DIR: crds).\n--check  compare instead of writing; exit 1 when DIR is stale"
                );
                return ExitCode::SUCCESS;
            }
            other => dir = PathBuf::from(other),
        }
    }
    let result = if check {
        ferroflux_crdgen::stale_files(&dir).map(|stale| {
            if stale.is_empty() {
                true
            } else {
                eprintln!(
                    "{} is stale: {}\nrun `cargo run -p ferroflux-crdgen` to regenerate it",
                    dir.display(),
                    stale.join(", ")
                );
                false
            }
        })
    } else {
        ferroflux_crdgen::write(&dir).map(|()| true)
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
