//! Signing keys made by the real tools for the `spec.verify` tests: a private GnuPG home
//! (OpenPGP keys, optionally with a faked clock for expired keys) and SSH keys made by
//! ssh-keygen for git's `gpg.format=ssh` signatures.

use std::path::{Path, PathBuf};

use super::Repo;
use ferroflux_testenv::git::{git, git_with_env};

/// A private GnuPG home with keys made by the real gpg; its agent is stopped on drop.
pub struct Gpg {
    pub home: tempfile::TempDir,
    /// gpg's clock (`--faked-system-time`), for keys and signatures made in the past.
    faked_time: Option<String>,
}

impl Gpg {
    pub fn new() -> Gpg {
        use std::os::unix::fs::PermissionsExt;
        // Short path: gpg-agent's socket lives in the home directory.
        let home = tempfile::Builder::new()
            .prefix("gpg")
            .tempdir_in("/tmp")
            .unwrap();
        std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        Gpg {
            home,
            faked_time: None,
        }
    }

    pub fn run(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("gpg")
            .arg("--homedir")
            .arg(self.home.path())
            .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
            .args(self.faked_time_args())
            .args(args)
            .output()
            .expect("gpg is required (apt-get install gnupg)");
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Sets gpg's clock (`YYYYMMDDTHHMMSS`, frozen) for the keys and signatures made from now
    /// on, by this helper and by git; `None` goes back to the real clock.
    pub fn at(&mut self, time: Option<&str>) {
        self.faked_time = time.map(|t| format!("{t}!"));
    }

    fn faked_time_args(&self) -> Vec<String> {
        match &self.faked_time {
            Some(t) => vec!["--faked-system-time".into(), t.clone()],
            None => Vec::new(),
        }
    }

    /// The gpg git runs: a wrapper adding the faked clock, or gpg itself.
    fn program(&self) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let Some(t) = &self.faked_time else {
            return "gpg".into();
        };
        let p = self.home.path().join("gpg-at");
        std::fs::write(
            &p,
            format!("#!/bin/sh\nexec gpg --faked-system-time '{t}' \"$@\"\n"),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    /// Generates an ed25519 signing key valid for `expire` (gpg's syntax: `never`, `1d`, ...);
    /// returns its fingerprint.
    pub fn gen_key_expiring(&self, uid: &str, expire: &str) -> String {
        self.run(&["--quick-gen-key", uid, "ed25519", "sign", expire]);
        self.fingerprints(uid)[0].clone()
    }

    /// Adds a signing subkey valid for `expire`; returns the subkey's fingerprint.
    pub fn add_signing_subkey(&self, fpr: &str, expire: &str) -> String {
        self.run(&["--quick-add-key", fpr, "ed25519", "sign", expire]);
        self.fingerprints(fpr).last().unwrap().clone()
    }

    /// The fingerprints of the primary key and subkeys matching `who`, in gpg's order.
    fn fingerprints(&self, who: &str) -> Vec<String> {
        self.run(&["--with-colons", "--list-keys", who])
            .lines()
            .filter_map(|l| l.strip_prefix("fpr:"))
            .map(|l| l.trim_matches(':').to_string())
            .collect()
    }

    /// Generates a signing key; returns its fingerprint.
    pub fn gen_key(&self, uid: &str) -> String {
        self.run(&["--quick-gen-key", uid, "ed25519", "sign", "never"]);
        let listing = self.run(&["--with-colons", "--list-keys", uid]);
        listing
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .map(|l| l.trim_matches(':').to_string())
            .expect("fingerprint in gpg listing")
    }

    pub fn export(&self, fpr: &str) -> String {
        self.run(&["--armor", "--export", fpr])
    }

    /// Revokes the key with the revocation certificate gpg made when it generated it.
    pub fn revoke(&self, fpr: &str) {
        let cert = self
            .home
            .path()
            .join("openpgp-revocs.d")
            .join(format!("{fpr}.rev"));
        // gpg guards the certificate with a leading ':' on its armor line.
        let text = std::fs::read_to_string(&cert)
            .unwrap()
            .replace(":-----BEGIN", "-----BEGIN");
        let armored = self.home.path().join("revoke.asc");
        std::fs::write(&armored, text).unwrap();
        self.run(&["--import", armored.to_str().unwrap()]);
    }

    /// git (testenv's) with this GnuPG home.
    pub fn git(&self, dir: &Path, args: &[&str]) -> String {
        let program = format!("gpg.program={}", self.program().display());
        let args = [&["-c", program.as_str()], args].concat();
        git_with_env(dir, &[("GNUPGHOME", self.home.path().as_os_str())], &args)
    }

    /// Commits `files` signed with `fpr` (unsigned when `None`), pushes; returns the commit.
    pub fn commit(
        &self,
        repo: &Repo,
        fpr: Option<&str>,
        files: &[(&str, &str)],
        msg: &str,
    ) -> String {
        for (p, c) in files {
            std::fs::write(repo.work.join(p), c).unwrap();
        }
        self.git(&repo.work, &["add", "-A"]);
        match fpr {
            Some(f) => self.git(
                &repo.work,
                &[
                    "-c",
                    &format!("user.signingkey={f}"),
                    "commit",
                    "-q",
                    "-S",
                    "-m",
                    msg,
                ],
            ),
            None => self.git(&repo.work, &["commit", "-q", "-m", msg]),
        };
        self.git(&repo.work, &["push", "-q", "origin", "main"]);
        self.git(&repo.work, &["rev-parse", "HEAD"])
    }

    /// Tags HEAD (signed with `fpr`, or annotated unsigned), pushes; returns the tag object.
    pub fn tag(&self, repo: &Repo, name: &str, fpr: Option<&str>) -> String {
        match fpr {
            Some(f) => self.git(&repo.work, &["tag", "-s", "-u", f, "-m", name, name]),
            None => self.git(&repo.work, &["tag", "-a", "-m", name, name]),
        };
        self.git(&repo.work, &["push", "-q", "origin", name]);
        self.git(&repo.work, &["rev-parse", name])
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = std::process::Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.home.path())
            .args(["--kill", "gpg-agent"])
            .output();
    }
}

/// The key ID Flux reports: the last 16 hex digits of the primary key's fingerprint.
pub fn key_id(fpr: &str) -> String {
    fpr[fpr.len() - 16..].to_uppercase()
}

/// SSH keys made by ssh-keygen, and git commits and tags signed with them
/// (`gpg.format=ssh`, which runs `ssh-keygen -Y sign` with namespace `git`).
pub struct SshSigner {
    dir: tempfile::TempDir,
}

impl SshSigner {
    pub fn new() -> SshSigner {
        SshSigner {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Generates key `name` of type `kind` (`ed25519`, `ecdsa`, `rsa`); returns the private
    /// key's path (the public key is beside it, `.pub`).
    pub fn gen_key(&self, name: &str, kind: &str) -> PathBuf {
        let key = self.dir.path().join(name);
        let out = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", kind, "-N", "", "-C", name, "-f"])
            .arg(&key)
            .output()
            .expect("ssh-keygen is required (apt-get install openssh-client)");
        assert!(
            out.status.success(),
            "ssh-keygen: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        key
    }

    /// The authorized_keys line of a key.
    pub fn public_key(&self, key: &Path) -> String {
        std::fs::read_to_string(key.with_extension("pub")).unwrap()
    }

    /// The SHA256 fingerprint ssh-keygen prints (`SHA256:...`), which Flux reports.
    pub fn fingerprint(&self, key: &Path) -> String {
        let out = std::process::Command::new("ssh-keygen")
            .args(["-E", "sha256", "-l", "-f"])
            .arg(key.with_extension("pub"))
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    }

    /// git (testenv's) signing in SSH format, with `key` when given.
    fn git(&self, dir: &Path, key: Option<&Path>, args: &[&str]) -> String {
        let signing_key = key.map(|k| format!("user.signingkey={}", k.display()));
        let mut full = vec!["-c", "gpg.format=ssh"];
        if let Some(k) = &signing_key {
            full.extend(["-c", k.as_str()]);
        }
        full.extend(args);
        git(dir, &full)
    }

    /// Commits `files` signed with `key` (unsigned when `None`), pushes; returns the commit.
    pub fn commit(
        &self,
        repo: &Repo,
        key: Option<&Path>,
        files: &[(&str, &str)],
        msg: &str,
    ) -> String {
        for (p, c) in files {
            std::fs::write(repo.work.join(p), c).unwrap();
        }
        self.git(&repo.work, None, &["add", "-A"]);
        match key {
            Some(k) => self.git(&repo.work, Some(k), &["commit", "-q", "-S", "-m", msg]),
            None => self.git(&repo.work, None, &["commit", "-q", "-m", msg]),
        };
        self.git(&repo.work, None, &["push", "-q", "origin", "main"]);
        self.git(&repo.work, None, &["rev-parse", "HEAD"])
    }

    /// Tags HEAD signed with `key`, pushes; returns the tag object.
    pub fn tag(&self, repo: &Repo, name: &str, key: &Path) -> String {
        self.git(&repo.work, Some(key), &["tag", "-s", "-m", name, name]);
        self.git(&repo.work, None, &["push", "-q", "origin", name]);
        self.git(&repo.work, None, &["rev-parse", name])
    }
}
