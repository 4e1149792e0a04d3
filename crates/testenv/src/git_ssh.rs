//! A git server over SSH for tests: Debian's openssh-server on a free 127.0.0.1 port with
//! generated host and client keys, serving repositories by absolute path. The keys and
//! `authorized_keys` live in [`GitSshServer::dir`]; sshd reads `authorized_keys` at every
//! login, so a test may append keys to it while the server runs.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// sshd serving git over SSH on 127.0.0.1; stopped when dropped.
pub struct GitSshServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// `[127.0.0.1]:<port> <host key>` lines.
    pub known_hosts: String,
    pub client_key: String,
    pub encrypted_key: String,
    pub other_key: String,
    child: std::process::Child,
}

impl Drop for GitSshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn keygen(path: &Path, pass: &str) {
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", pass, "-C", "test", "-f"])
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success());
}

/// The login user of the SSH URLs (the user running the tests).
pub fn user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "root".into())
}

impl GitSshServer {
    /// Whether Debian's openssh-server is installed.
    pub fn available() -> bool {
        Path::new("/usr/sbin/sshd").exists()
    }

    /// Starts sshd with fresh host and client keys (`client`, `enc` with passphrase
    /// `s3cret`, and `other`, which is not authorized).
    pub async fn start() -> GitSshServer {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (name, pass) in [
            ("host", ""),
            ("client", ""),
            ("enc", "s3cret"),
            ("other", ""),
        ] {
            keygen(&d.join(name), pass);
        }
        let mut auth = std::fs::read_to_string(d.join("client.pub")).unwrap();
        auth.push_str(&std::fs::read_to_string(d.join("enc.pub")).unwrap());
        std::fs::write(d.join("authorized_keys"), auth).unwrap();
        let port = free_port();
        let cfg = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {h}\nAuthorizedKeysFile {a}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nStrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\nPidFile {p}\nLogLevel ERROR\n",
            h = d.join("host").display(),
            a = d.join("authorized_keys").display(),
            p = d.join("sshd.pid").display(),
        );
        std::fs::write(d.join("sshd_config"), cfg).unwrap();
        let _ = std::fs::create_dir_all("/run/sshd");
        let child = std::process::Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sshd");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "sshd did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let host_pub = std::fs::read_to_string(d.join("host.pub")).unwrap();
        let mut parts = host_pub.split_whitespace();
        let known_hosts = format!(
            "[127.0.0.1]:{port} {} {}\n",
            parts.next().unwrap(),
            parts.next().unwrap()
        );
        let read = |n: &str| std::fs::read_to_string(d.join(n)).unwrap();
        GitSshServer {
            port,
            known_hosts,
            client_key: read("client"),
            encrypted_key: read("enc"),
            other_key: read("other"),
            dir,
            child,
        }
    }

    /// `ssh://` URL of a bare repository by absolute path.
    pub fn url(&self, repo: &Path) -> String {
        format!("ssh://{}@127.0.0.1:{}{}", user(), self.port, repo.display())
    }

    /// known_hosts naming another key for this host (an unknown host key).
    pub fn wrong_known_hosts(&self) -> String {
        let other = std::fs::read_to_string(self.dir.path().join("other.pub")).unwrap();
        let mut parts = other.split_whitespace();
        format!(
            "[127.0.0.1]:{} {} {}\n",
            self.port,
            parts.next().unwrap(),
            parts.next().unwrap()
        )
    }
}
