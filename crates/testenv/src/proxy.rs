//! A real HTTP proxy for tests: Debian's `tinyproxy` on a free 127.0.0.1 port with a
//! generated configuration (optionally with basic auth), logging every request at Info level
//! so a test can prove its traffic went through the proxy. It runs under the watchdog and
//! stops when dropped.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where Debian installs tinyproxy (`/usr/bin` today, `/usr/sbin` in older releases).
pub fn tinyproxy_binary() -> Option<PathBuf> {
    ["/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// A running tinyproxy.
pub struct TinyProxy {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    dir: tempfile::TempDir,
    supervisor: Option<std::process::Child>,
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl TinyProxy {
    /// Starts tinyproxy; with `basic_auth` it answers 407 to requests without these
    /// credentials. Panics with an install hint when tinyproxy is missing.
    pub async fn start(basic_auth: Option<(&str, &str)>) -> std::io::Result<TinyProxy> {
        let bin = tinyproxy_binary()
            .expect("tinyproxy is required for the proxy tests (apt-get install tinyproxy)");
        let dir = tempfile::Builder::new().prefix("tinyproxy-").tempdir()?;
        let port = free_port()?;
        let mut cfg = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 32\nLogLevel Info\nLogFile \"{}\"\n",
            dir.path().join("access.log").display()
        );
        if let Some((user, pass)) = basic_auth {
            cfg.push_str(&format!("BasicAuth {user} {pass}\n"));
        }
        let conf = dir.path().join("tinyproxy.conf");
        std::fs::write(&conf, cfg)?;
        // -d: stay in the foreground, so the watchdog can stop it.
        let supervisor = crate::spawn_supervised(
            std::process::id(),
            None,
            &dir.path().join("stderr.log"),
            &bin,
            &[
                "-d".to_string(),
                "-c".to_string(),
                conf.display().to_string(),
            ],
        )?;
        let mut proxy = TinyProxy {
            port,
            dir,
            supervisor: Some(supervisor),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if tokio::time::Instant::now() > deadline {
                let err = std::io::Error::other(format!(
                    "tinyproxy did not listen on 127.0.0.1:{port}: {}{}",
                    read(&proxy.dir.path().join("stderr.log")),
                    proxy.log()
                ));
                proxy.stop();
                return Err(err);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(proxy)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its log so far (requests are logged as `Request (file descriptor N): GET <url> ...`).
    pub fn log(&self) -> String {
        read(&self.dir.path().join("access.log"))
    }

    /// Stops it (and waits until it no longer listens).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.supervisor.take() {
            // TERM lets the supervisor stop tinyproxy; KILL would orphan it.
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

impl Drop for TinyProxy {
    fn drop(&mut self) {
        self.stop();
    }
}
