//! What the end-to-end tests and benchmarks share: controllers run as real processes against
//! a kubeconfig, and their memory read from `/proc`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A port free on 127.0.0.1 at the time of the call.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local address")
        .port()
}

/// A controller process, killed on drop; its output goes to a log file kept for failure
/// messages.
pub struct ControllerProcess {
    child: Child,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

impl ControllerProcess {
    /// Starts `bin` watching only `namespace`, with metrics and probes on free ports, and
    /// `args` after the common flags (so they can override them).
    pub fn start(bin: &str, kubeconfig: &Path, namespace: &str, args: &[String]) -> Self {
        let log = std::env::temp_dir().join(format!(
            "{}-{namespace}.log",
            bin.rsplit('/').next().unwrap_or("controller")
        ));
        let out = std::fs::File::create(&log).expect("create the controller log");
        let child = Command::new(bin)
            .env("KUBECONFIG", kubeconfig)
            .env("RUNTIME_NAMESPACE", namespace)
            .args([
                "--watch-all-namespaces=false".to_string(),
                format!("--metrics-addr=127.0.0.1:{}", free_port()),
                format!("--health-addr=127.0.0.1:{}", free_port()),
                "--log-encoding=console".to_string(),
            ])
            .args(args)
            .stdout(Stdio::from(out.try_clone().expect("clone the log handle")))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap_or_else(|e| panic!("start {bin}: {e}"));
        ControllerProcess { child, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last 30 lines of its log.
    pub fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Peak resident memory so far (VmHWM), in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        proc_status_mib(self.pid(), "VmHWM:")
    }

    /// Resident memory now (VmRSS), in MiB.
    pub fn rss_mib(&self) -> f64 {
        proc_status_mib(self.pid(), "VmRSS:")
    }

    /// Resets the peak (VmHWM) to the current RSS, so the next peak belongs to what follows.
    pub fn reset_peak_rss(&self) {
        // Writing 5 to clear_refs resets the peak RSS (Linux ≥ 4.0).
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5");
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn proc_status_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}
