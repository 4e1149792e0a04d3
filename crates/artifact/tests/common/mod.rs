//! Test helpers: raw tar crafting (for entries the `tar` crate refuses to write) and a tiny
//! scripted HTTP server on 127.0.0.1.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One raw 512-byte USTAR header with a valid checksum; no validation of the name at all.
pub fn raw_header(name: &[u8], typeflag: u8, size: u64, link: &[u8]) -> [u8; 512] {
    let mut b = [0u8; 512];
    b[..name.len()].copy_from_slice(name);
    let oct = |b: &mut [u8], v: u64| {
        let digits = b.len() - 1;
        let s = format!("{v:0digits$o}");
        if s.len() <= digits {
            b[..digits].copy_from_slice(s.as_bytes());
        } else {
            // GNU base-256: high bit set, big-endian value.
            let n = b.len();
            b[n - 8..].copy_from_slice(&v.to_be_bytes());
            b[0] |= 0x80;
        }
    };
    oct(&mut b[100..108], 0o644);
    oct(&mut b[108..116], 0);
    oct(&mut b[116..124], 0);
    oct(&mut b[124..136], size);
    oct(&mut b[136..148], 0);
    b[156] = typeflag;
    b[157..157 + link.len()].copy_from_slice(link);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    b[148..156].copy_from_slice(b"        ");
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    let s = format!("{sum:06o}\0 ");
    b[148..156].copy_from_slice(s.as_bytes());
    b
}

/// Builds a tar stream from (name, typeflag, content, linkname) entries.
pub struct RawTar(Vec<u8>);

impl RawTar {
    pub fn new() -> Self {
        RawTar(Vec::new())
    }
    pub fn entry(mut self, name: &str, typeflag: u8, content: &[u8], link: &str) -> Self {
        self.0.extend_from_slice(&raw_header(
            name.as_bytes(),
            typeflag,
            content.len() as u64,
            link.as_bytes(),
        ));
        self.0.extend_from_slice(content);
        let pad = (512 - content.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0u8, pad));
        self
    }
    pub fn file(self, name: &str, content: &[u8]) -> Self {
        self.entry(name, b'0', content, "")
    }
    /// A header that declares `size` bytes but carries none.
    pub fn lying_header(mut self, name: &str, size: u64) -> Self {
        self.0
            .extend_from_slice(&raw_header(name.as_bytes(), b'0', size, b""));
        self
    }
    pub fn tar(mut self) -> Vec<u8> {
        self.0.extend(std::iter::repeat_n(0u8, 1024));
        self.0
    }
    pub fn tgz(self) -> Vec<u8> {
        gz(&self.tar())
    }
}

pub fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Every path under `dir`, relative, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    fn rec(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            out.push(p.strip_prefix(base).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                rec(base, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    rec(dir, dir, &mut out);
    out.sort();
    out
}

/// A scripted HTTP/1.1 server: `respond(request_index, path)` returns the raw response bytes
/// (or `None` to drop the connection). One request per connection.
pub struct ScriptServer {
    pub addr: std::net::SocketAddr,
    pub hits: Arc<AtomicUsize>,
}

pub async fn script_server<F>(respond: F) -> ScriptServer
where
    F: Fn(usize, &str) -> Option<Vec<u8>> + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let respond = Arc::new(respond);
    let h = Arc::clone(&hits);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let n = h.fetch_add(1, Ordering::SeqCst);
            let respond = Arc::clone(&respond);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                if let Some(resp) = respond(n, &path) {
                    let _ = s.write_all(&resp).await;
                }
                let _ = s.shutdown().await;
            });
        }
    });
    ScriptServer { addr, hits }
}

pub fn http_response(status: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

pub fn sandbox() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let work = t.path().join("work");
    std::fs::create_dir(&work).unwrap();
    (t, work)
}
