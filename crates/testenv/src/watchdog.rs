//! Keeps a server's life tied to its owner process without `unsafe` (no prctl): a tiny
//! shell supervisor polls the owner pid and stops the server, then removes its data
//! directory, once the owner is gone or the server exits.

use std::path::Path;
use std::process::{Command, Stdio};

const SUPERVISOR: &str = r#"
owner="$1"; data="$2"; log="$3"; shift 3
"$@" >>"$log" 2>&1 &
child=$!
stop() { kill -TERM "$child" 2>/dev/null; i=0; while kill -0 "$child" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; kill -KILL "$child" 2>/dev/null; wait "$child" 2>/dev/null; [ -n "$data" ] && rm -rf "$data"; exit 0; }
trap stop TERM INT HUP
while kill -0 "$owner" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 0.5; done
stop
"#;

/// Starts `program args` under a supervisor owned by process `owner`. Output goes to
/// `log`; `data_dir`, if given, is deleted after the server stops.
pub fn spawn_supervised(
    owner: u32,
    data_dir: Option<&Path>,
    log: &Path,
    program: &Path,
    args: &[String],
) -> std::io::Result<std::process::Child> {
    Command::new("sh")
        .arg("-c")
        .arg(SUPERVISOR)
        .arg("ferroflux-supervisor")
        .arg(owner.to_string())
        .arg(
            data_dir
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
        )
        .arg(log)
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}
