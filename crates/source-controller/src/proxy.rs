//! `spec.proxySecretRef` of a GitRepository: the proxy the git transport connects through.
//!
//! The Secret is read the way Flux reads it (fluxcd/pkg `runtime/secrets`): `address` is
//! required and must be an `http`, `https` or `socks5` URL of at most 2048 characters;
//! `username` and optional `password` replace any credentials written into the address.
//!
//! HTTP(S) remotes go through the proxy with reqwest (see `git::http_options`). Flux's ssh
//! transport (go-git's, with `golang.org/x/net/proxy`) can only dial through SOCKS5 and
//! fails with `proxy: unknown scheme: http` for HTTP proxies; we do the same, reaching SOCKS5
//! proxies from the system `ssh` through a local relay (see `socks`).

use std::collections::BTreeMap;

use crate::git::GitError;

/// Flux's limit on the proxy URL length.
pub const MAX_PROXY_URL_LENGTH: usize = 2048;

/// The proxy schemes Flux accepts.
pub const SUPPORTED_SCHEMES: [&str; 3] = ["http", "https", "socks5"];

/// A validated proxy.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// The `address` as given (credentials inside it are kept unless `username` is set).
    pub address: String,
    /// Its scheme (`http`, `https` or `socks5`).
    pub scheme: String,
    /// `username` and `password` of the Secret (an absent password is empty, as in Go's
    /// `url.User`).
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print credentials.
        f.debug_struct("ProxyConfig")
            .field("scheme", &self.scheme)
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .finish()
    }
}

/// Reads the proxy from the data of Secret `secret_ref` (`<namespace>/<name>`), with Flux's
/// error texts (the caller prefixes them with "failed to configure proxy options: ").
pub fn from_secret_data(
    secret_ref: &str,
    data: &BTreeMap<String, Vec<u8>>,
) -> Result<ProxyConfig, String> {
    let Some(address) = data.get("address") else {
        return Err(format!("secret '{secret_ref}': key 'address' not found"));
    };
    let address = String::from_utf8_lossy(address).into_owned();
    if address.is_empty() {
        return Err(format!("secret '{secret_ref}': proxy address is empty"));
    }
    if address.len() > MAX_PROXY_URL_LENGTH {
        return Err(format!(
            "secret '{secret_ref}': proxy URL exceeds maximum length of {MAX_PROXY_URL_LENGTH} characters"
        ));
    }
    let url = reqwest::Url::parse(&address).map_err(|e| {
        format!("secret '{secret_ref}': failed to parse proxy address '{address}': {e}")
    })?;
    let scheme = url.scheme().to_string();
    if !SUPPORTED_SCHEMES.contains(&scheme.as_str()) {
        return Err(format!(
            "secret '{secret_ref}': proxy URL must use one of the supported schemes ({}), got '{scheme}'",
            SUPPORTED_SCHEMES.join(", ")
        ));
    }
    let text = |k: &str| data.get(k).map(|v| String::from_utf8_lossy(v).into_owned());
    let credentials = text("username").map(|u| (u, text("password").unwrap_or_default()));
    Ok(ProxyConfig {
        address,
        scheme,
        credentials,
    })
}

impl ProxyConfig {
    /// The reqwest proxy for every request of the git HTTP transport. Setting it also turns
    /// off reqwest's `HTTP(S)_PROXY` environment lookup: the Secret takes precedence, as in Flux.
    pub fn reqwest_proxy(&self) -> Result<reqwest::Proxy, String> {
        let proxy = reqwest::Proxy::all(self.address.as_str())
            .map_err(|e| format!("invalid proxy address: {e}"))?;
        Ok(match &self.credentials {
            Some((u, p)) => proxy.basic_auth(u, p),
            None => proxy,
        })
    }

    /// The address without any credentials in it, for messages.
    pub fn display_address(&self) -> String {
        match reqwest::Url::parse(&self.address) {
            Ok(mut u) => {
                let _ = u.set_username("");
                let _ = u.set_password(None);
                u.to_string().trim_end_matches('/').to_string()
            }
            Err(_) => self.scheme.clone(),
        }
    }

    /// Adds what the proxy has to do with a failed HTTP(S) fetch: every connection goes to
    /// the proxy, so a refused connection is the proxy's, a 407 or a refused CONNECT tunnel
    /// (https:// remotes) is its answer to our credentials, and a 401 may be the proxy's
    /// (tinyproxy answers 401 to wrong credentials) as well as the git server's.
    pub fn explain(&self, err: GitError) -> GitError {
        let proxy = self.display_address();
        match err {
            // reqwest's words when the proxy answers CONNECT with anything but 200.
            GitError::Other(m) | GitError::Auth(m) if m.contains("tunnel error: unsuccessful") => {
                GitError::Auth(format!(
                    "{m}: the proxy '{proxy}' of spec.proxySecretRef refused to open a tunnel to the git server: check its username and password, and that it allows this host and port"
                ))
            }
            GitError::Auth(m) if m.contains("401") => GitError::Auth(format!(
                "{m} (the request went through the proxy '{proxy}' of spec.proxySecretRef, which may be the one refusing it: check its username and password too)"
            )),
            GitError::Other(m) | GitError::Auth(m) if m.contains("407") => GitError::Auth(format!(
                "{m}: the proxy '{proxy}' of spec.proxySecretRef refused the credentials (407 Proxy Authentication Required): check its username and password"
            )),
            GitError::Other(m) | GitError::Timeout(m)
                if {
                    let low = m.to_lowercase();
                    low.contains("connect") || low.contains("tunnel") || low.contains("proxy")
                } =>
            {
                GitError::Other(format!(
                    "{m} (through the proxy '{proxy}' of spec.proxySecretRef: is it running and reachable?)"
                ))
            }
            other => other,
        }
    }

    /// Why an ssh:// remote cannot be fetched through this (HTTP) proxy: Flux's own failure,
    /// with the reason spelled out.
    pub fn ssh_unsupported(&self) -> String {
        format!(
            "proxy: unknown scheme: {} (ssh:// URLs can only be proxied through socks5)",
            self.scheme
        )
    }

    /// For a socks5 proxy, a relay to the host of ssh URL `url` and the ssh options that use
    /// it; `Ok(None)` for other schemes (see [`ProxyConfig::ssh_unsupported`]).
    pub fn ssh_relay(
        &self,
        url: &str,
        timeout: std::time::Duration,
    ) -> Result<Option<(crate::socks::Relay, String)>, String> {
        if self.scheme != "socks5" {
            return Ok(None);
        }
        let proxy = reqwest::Url::parse(&self.address).map_err(|e| e.to_string())?;
        let proxy_host = proxy
            .host_str()
            .ok_or_else(|| format!("proxy address '{}' has no host", self.display_address()))?;
        let credentials = self.credentials.clone().or_else(|| {
            (!proxy.username().is_empty()).then(|| {
                (
                    proxy.username().to_string(),
                    proxy.password().unwrap_or_default().to_string(),
                )
            })
        });
        let target = gix::url::parse(gix::bstr::BStr::new(url)).map_err(|e| e.to_string())?;
        let host = target
            .host()
            .ok_or_else(|| format!("ssh URL '{url}' has no host"))?
            .to_string();
        let port = target.port_or_default().unwrap_or(22);
        let relay = crate::socks::Relay::start(crate::socks::Route {
            proxy: format!("{proxy_host}:{}", proxy.port().unwrap_or(1080)),
            credentials,
            host: host.clone(),
            port,
            timeout,
        })
        .map_err(|e| format!("failed to start the socks5 relay: {e}"))?;
        let options = crate::socks::ssh_options(relay.port, &host, port);
        Ok(Some((relay, options)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn flux_errors_for_unusable_secrets() {
        let r = "ns/proxy";
        assert_eq!(
            from_secret_data(r, &data(&[("username", "u")])).unwrap_err(),
            "secret 'ns/proxy': key 'address' not found"
        );
        assert_eq!(
            from_secret_data(r, &data(&[("address", "")])).unwrap_err(),
            "secret 'ns/proxy': proxy address is empty"
        );
        assert_eq!(
            from_secret_data(r, &data(&[("address", "ftp://p:21")])).unwrap_err(),
            "secret 'ns/proxy': proxy URL must use one of the supported schemes (http, https, socks5), got 'ftp'"
        );
        let long = format!("http://{}", "a".repeat(MAX_PROXY_URL_LENGTH));
        assert!(
            from_secret_data(r, &data(&[("address", &long)]))
                .unwrap_err()
                .contains("exceeds maximum length of 2048")
        );
        assert!(
            from_secret_data(r, &data(&[("address", "127.0.0.1:3128")]))
                .unwrap_err()
                .starts_with("secret 'ns/proxy': failed to parse proxy address '127.0.0.1:3128'")
        );
    }

    #[test]
    fn credentials_and_ssh() {
        let p = from_secret_data(
            "ns/p",
            &data(&[("address", "http://127.0.0.1:3128"), ("username", "u")]),
        )
        .unwrap();
        assert_eq!(p.credentials, Some(("u".into(), String::new())));
        assert!(p.reqwest_proxy().is_ok());
        assert!(
            p.ssh_unsupported()
                .starts_with("proxy: unknown scheme: http")
        );
        let p = from_secret_data("ns/p", &data(&[("address", "socks5://h:1080")])).unwrap();
        assert_eq!(p.credentials, None);
        assert!(p.ssh_unsupported().contains("socks5"));
        let p = from_secret_data(
            "ns/p",
            &data(&[
                ("address", "http://h:1"),
                ("username", "u"),
                ("password", "secret"),
            ]),
        )
        .unwrap();
        assert!(!format!("{p:?}").contains("secret"));
        assert_eq!(p.display_address(), "http://h:1");
    }

    #[test]
    fn failures_name_the_proxy() {
        let p =
            from_secret_data("ns/p", &data(&[("address", "http://u:pw@127.0.0.1:3128")])).unwrap();
        let text = |e: GitError| e.to_string();
        // Also when the URL's port made it look like a 401.
        let tunnel = p.explain(GitError::Auth(
            "x: answered 401: tunnel error: unsuccessful".into(),
        ));
        assert!(matches!(tunnel, GitError::Auth(_)));
        let tunnel = text(tunnel);
        assert!(
            tunnel.contains("'http://127.0.0.1:3128'") && !tunnel.contains("pw"),
            "{tunnel}"
        );
        assert!(tunnel.contains("refused to open a tunnel"), "{tunnel}");
        let refused = text(p.explain(GitError::Other(
            "x: tcp connect error: Connection refused".into(),
        )));
        assert!(
            refused.contains("is it running and reachable?"),
            "{refused}"
        );
        assert!(
            text(p.explain(GitError::Other("Received HTTP status 407".into())))
                .contains("407 Proxy Authentication Required")
        );
        assert!(
            text(p.explain(GitError::Auth("answered 401".into())))
                .contains("may be the one refusing")
        );
        assert_eq!(
            text(p.explain(GitError::RefNotFound("nope".into()))),
            "nope"
        );
    }
}
