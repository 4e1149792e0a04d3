//! `ferroflux-kustomize build DIR`: prints the built YAML stream.

use std::path::PathBuf;
use std::process::ExitCode;

use ferroflux_kustomize::{BuildOptions, DiskFs, build, to_yaml_stream};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = match args.as_slice() {
        [cmd, dir] if cmd == "build" => dir.clone(),
        [cmd] if cmd == "build" => ".".to_string(),
        _ => {
            eprintln!("usage: ferroflux-kustomize build DIR");
            return ExitCode::from(2);
        }
    };
    let mut path = PathBuf::from(&dir);
    if path.is_relative() {
        match std::env::current_dir() {
            Ok(cwd) => path = cwd.join(path),
            Err(e) => {
                eprintln!("Error: {e}");
                return ExitCode::from(1);
            }
        }
    }
    match build(&DiskFs, &path, &BuildOptions::default()) {
        Ok(objs) => {
            print!("{}", to_yaml_stream(&objs));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::from(1)
        }
    }
}
