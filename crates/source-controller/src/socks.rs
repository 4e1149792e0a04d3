//! ssh:// remotes through a SOCKS5 proxy (`spec.proxySecretRef` with a `socks5://` address,
//! which Flux supports for ssh). The system `ssh` has no SOCKS client, so a relay on a free
//! 127.0.0.1 port opens, for each connection ssh makes to it, a SOCKS5 CONNECT (RFC 1928,
//! with the username/password method of RFC 1929 when the Secret has credentials) to the git
//! host through the proxy and copies bytes both ways. ssh is pointed at the relay with
//! `HostName`/`Port` and keeps checking the real host's key through `HostKeyAlias`.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Where the relay connects and as whom.
#[derive(Clone)]
pub struct Route {
    /// `host:port` of the SOCKS5 proxy.
    pub proxy: String,
    /// Username and password for the proxy.
    pub credentials: Option<(String, String)>,
    /// The git host, as the URL names it (the proxy resolves it).
    pub host: String,
    /// The git host's port.
    pub port: u16,
    /// Connect and handshake budget.
    pub timeout: Duration,
}

/// A running relay; stops when dropped.
pub struct Relay {
    /// The 127.0.0.1 port ssh connects to.
    pub port: u16,
    stop: Arc<AtomicBool>,
    last_error: Arc<Mutex<Option<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl Relay {
    /// Listens on a free loopback port and relays every connection through the proxy.
    pub fn start(route: Route) -> std::io::Result<Relay> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        // Non-blocking accept, so dropping the relay ends the thread.
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let last_error = Arc::new(Mutex::new(None));
        let (stop2, errors) = (Arc::clone(&stop), Arc::clone(&last_error));
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let (route, errors) = (route.clone(), Arc::clone(&errors));
                        std::thread::spawn(move || serve(client, &route, &errors));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(_) => break,
                }
            }
        });
        Ok(Relay {
            port,
            stop,
            last_error,
            thread: Some(thread),
        })
    }

    /// Why the last connection through the proxy failed, if one did.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// ssh options sending the connection to the relay while the host key is still looked up
/// under the real host's known_hosts name (`host` or `[host]:port`).
pub fn ssh_options(relay_port: u16, host: &str, port: u16) -> String {
    let alias = if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    };
    format!("-o HostName=127.0.0.1 -o Port={relay_port} -o HostKeyAlias={alias} -o CheckHostIP=no")
}

fn serve(mut client: TcpStream, route: &Route, errors: &Mutex<Option<String>>) {
    let clones = connect(route).and_then(|up| {
        let up_r = up.try_clone().map_err(|e| e.to_string())?;
        let cl_w = client.try_clone().map_err(|e| e.to_string())?;
        Ok((up, up_r, cl_w))
    });
    let (mut upstream, mut up_r, mut cl_w) = match clones {
        Ok(c) => c,
        Err(e) => {
            // Recorded before ssh sees the connection close, so its failure can tell why.
            *errors.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
    };
    upstream.set_read_timeout(None).ok();
    upstream.set_write_timeout(None).ok();
    let down = std::thread::spawn(move || {
        let _ = std::io::copy(&mut up_r, &mut cl_w);
        let _ = cl_w.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut client, &mut upstream);
    let _ = upstream.shutdown(Shutdown::Write);
    let _ = down.join();
}

/// Connects to the proxy and asks it for a connection to the git host.
fn connect(route: &Route) -> Result<TcpStream, String> {
    let proxy = &route.proxy;
    let io = |what: &str, e: std::io::Error| format!("socks5 proxy '{proxy}': {what}: {e}");
    let addr = proxy
        .to_socket_addrs()
        .map_err(|e| io("cannot resolve", e))?
        .next()
        .ok_or_else(|| format!("socks5 proxy '{proxy}': no address"))?;
    let mut s =
        TcpStream::connect_timeout(&addr, route.timeout).map_err(|e| io("cannot connect", e))?;
    s.set_read_timeout(Some(route.timeout)).ok();
    s.set_write_timeout(Some(route.timeout)).ok();
    s.write_all(&greeting(route.credentials.is_some()))
        .map_err(|e| io("write", e))?;
    let mut choice = [0u8; 2];
    s.read_exact(&mut choice).map_err(|e| io("read", e))?;
    match choice {
        [5, 0] => {}
        [5, 2] => {
            let (u, p) = route.credentials.as_ref().ok_or_else(|| {
                format!("socks5 proxy '{proxy}' wants a username and password (set them in spec.proxySecretRef)")
            })?;
            s.write_all(&password_request(u, p)?)
                .map_err(|e| io("write", e))?;
            let mut status = [0u8; 2];
            s.read_exact(&mut status).map_err(|e| io("read", e))?;
            if status[1] != 0 {
                return Err(format!(
                    "socks5 proxy '{proxy}' rejected the username and password of spec.proxySecretRef"
                ));
            }
        }
        [5, 0xff] => {
            return Err(format!(
                "socks5 proxy '{proxy}' accepts none of the offered authentication methods"
            ));
        }
        other => {
            return Err(format!(
                "socks5 proxy '{proxy}': unexpected answer {other:?} (is it a SOCKS5 proxy?)"
            ));
        }
    }
    s.write_all(&connect_request(&route.host, route.port)?)
        .map_err(|e| io("write", e))?;
    let mut head = [0u8; 4];
    s.read_exact(&mut head).map_err(|e| io("read", e))?;
    if head[1] != 0 {
        return Err(format!(
            "socks5 proxy '{proxy}' could not connect to {}:{}: {}",
            route.host,
            route.port,
            reply_text(head[1])
        ));
    }
    // Skip the bound address the proxy reports.
    let rest = match head[3] {
        1 => 4 + 2,
        4 => 16 + 2,
        3 => {
            let mut len = [0u8; 1];
            s.read_exact(&mut len).map_err(|e| io("read", e))?;
            usize::from(len[0]) + 2
        }
        t => return Err(format!("socks5 proxy '{proxy}': unknown address type {t}")),
    };
    let mut skip = vec![0u8; rest];
    s.read_exact(&mut skip).map_err(|e| io("read", e))?;
    Ok(s)
}

/// The method negotiation: no authentication, plus username/password when we have them.
fn greeting(with_password: bool) -> Vec<u8> {
    if with_password {
        vec![5, 2, 0, 2]
    } else {
        vec![5, 1, 0]
    }
}

fn password_request(user: &str, pass: &str) -> Result<Vec<u8>, String> {
    let (u, p) = (user.as_bytes(), pass.as_bytes());
    let (ul, pl) = (u8::try_from(u.len()), u8::try_from(p.len()));
    let (Ok(ul), Ok(pl)) = (ul, pl) else {
        return Err("socks5 username and password must be at most 255 bytes each".into());
    };
    let mut out = vec![1, ul];
    out.extend_from_slice(u);
    out.push(pl);
    out.extend_from_slice(p);
    Ok(out)
}

/// CONNECT to `host:port`, the host sent as a name (the proxy resolves it, like socks5h).
fn connect_request(host: &str, port: u16) -> Result<Vec<u8>, String> {
    let len = u8::try_from(host.len()).map_err(|_| format!("host name too long: {host}"))?;
    let mut out = vec![5, 1, 0, 3, len];
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(&port.to_be_bytes());
    Ok(out)
}

fn reply_text(code: u8) -> &'static str {
    match code {
        1 => "general failure",
        2 => "connection not allowed by ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unknown error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format() {
        assert_eq!(greeting(false), [5, 1, 0]);
        assert_eq!(greeting(true), [5, 2, 0, 2]);
        assert_eq!(
            password_request("u", "pw").unwrap(),
            [1, 1, b'u', 2, b'p', b'w']
        );
        assert_eq!(
            connect_request("git.example", 22).unwrap(),
            [
                5, 1, 0, 3, 11, b'g', b'i', b't', b'.', b'e', b'x', b'a', b'm', b'p', b'l', b'e',
                0, 22
            ]
        );
        assert!(password_request(&"x".repeat(256), "").is_err());
        assert_eq!(
            ssh_options(4000, "127.0.0.1", 2222),
            "-o HostName=127.0.0.1 -o Port=4000 -o HostKeyAlias=[127.0.0.1]:2222 -o CheckHostIP=no"
        );
        assert!(ssh_options(4000, "github.com", 22).contains("HostKeyAlias=github.com "));
    }
}
