//! The artifact client used by kustomize-controller and helm-controller (Flux
//! `http/fetch.ArchiveFetcher`): GET the artifact URL with retries and exponential backoff,
//! stream the body to a temporary file while hashing it and enforcing a size cap, verify the
//! digest, then extract into a fresh temporary directory with [`crate::extract`].
//!
//! Artifact URLs are in-cluster `http://` URLs, so the client is hyper's plain-HTTP client (no
//! TLS stack). A 404 is [`Error::NotFound`] and is not retried; connection errors, timeouts,
//! 429 and 5xx are retried (so are bodies cut short); a digest mismatch is
//! [`Error::DigestMismatch`].
//!
//! The `SOURCE_CONTROLLER_LOCALHOST` override (used when a controller runs outside the cluster)
//! is passed in as [`FetchOptions::host_override`]; [`localhost_override_from_env`] reads it at
//! the edge.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tempfile::{NamedTempFile, TempDir};
use tokio::io::AsyncWriteExt;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::extract::{ExtractLimits, ExtractSummary, extract_to_temp};

/// Environment variable that replaces the host of artifact URLs.
pub const SOURCE_CONTROLLER_LOCALHOST: &str = "SOURCE_CONTROLLER_LOCALHOST";
/// Same, for URLs served by source-watcher (`//source-watcher` in the URL).
pub const SOURCE_WATCHER_LOCALHOST: &str = "SOURCE_WATCHER_LOCALHOST";

/// Reads the host override for `url` from the environment (edge helper; engines take the value
/// as a parameter).
pub fn localhost_override_from_env(url: &str) -> Option<String> {
    let var = if url.contains("//source-watcher") {
        SOURCE_WATCHER_LOCALHOST
    } else {
        SOURCE_CONTROLLER_LOCALHOST
    };
    std::env::var(var).ok().filter(|v| !v.is_empty())
}

/// Replaces the host (and port) of `url` with `host` (e.g. `localhost:9090`), as Flux does
/// with `u.Host = hostname`.
pub fn apply_host_override(url: &str, host: Option<&str>) -> Result<String> {
    let Some(host) = host.filter(|h| !h.is_empty()) else {
        return Ok(url.to_string());
    };
    let bad = |reason: String| Error::Http {
        url: url.to_string(),
        reason,
    };
    let uri = Uri::from_str(url).map_err(|e| bad(format!("invalid URL: {e}")))?;
    let mut parts = uri.into_parts();
    parts.authority = Some(
        host.parse()
            .map_err(|e| bad(format!("invalid host override {host:?}: {e}")))?,
    );
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    Uri::from_parts(parts)
        .map(|u| u.to_string())
        .map_err(|e| bad(format!("cannot apply host override: {e}")))
}

/// Retry, size and extraction settings.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Retries after the first attempt (kustomize-controller `--http-retry`, default 9).
    pub retries: u32,
    /// First backoff wait; doubles per retry (Flux uses retryablehttp's 1s..30s ... see
    /// FLUX-API.md §2.3: 5s min, 30s max).
    pub retry_wait_min: Duration,
    /// Longest backoff wait.
    pub retry_wait_max: Duration,
    /// Limit for connecting and receiving the response headers, and for each gap between body
    /// chunks.
    pub timeout: Duration,
    /// Largest accepted download in bytes (`None`: unlimited).
    pub max_download_size: Option<u64>,
    /// Extraction limits.
    pub limits: ExtractLimits,
    /// Replaces the host of every URL (the `SOURCE_CONTROLLER_LOCALHOST` value).
    pub host_override: Option<String>,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            retries: 9,
            retry_wait_min: Duration::from_secs(5),
            retry_wait_max: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
            max_download_size: Some(crate::extract::DEFAULT_MAX_SIZE),
            limits: ExtractLimits::default(),
            host_override: None,
        }
    }
}

/// A verified and extracted artifact. The directory is removed when this is dropped.
#[derive(Debug)]
pub struct FetchedArtifact {
    /// The extraction directory.
    pub dir: TempDir,
    /// The verified digest.
    pub digest: Digest,
    /// Downloaded (compressed) size.
    pub size: u64,
    /// What the extraction wrote.
    pub summary: ExtractSummary,
}

impl FetchedArtifact {
    /// The extraction directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// The artifact client. Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct Fetcher {
    client: Client<HttpConnector, Empty<Bytes>>,
    opts: FetchOptions,
}

enum Attempt {
    Done(Digest, u64),
    Retry(Error),
}

impl Fetcher {
    pub fn new(opts: FetchOptions) -> Fetcher {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(opts.timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Fetcher { client, opts }
    }

    pub fn options(&self) -> &FetchOptions {
        &self.opts
    }

    /// Downloads `url`, verifies it against `digest` (`sha256:<hex>`, `sha384:…`, `sha512:…`
    /// or bare sha256 hex) and extracts it into a new temporary directory inside `tmp_parent`.
    pub async fn fetch(
        &self,
        url: &str,
        digest: &str,
        tmp_parent: &Path,
    ) -> Result<FetchedArtifact> {
        let expected = Digest::parse(digest)?;
        let download = tempfile::Builder::new()
            .prefix("artifact-download-")
            .tempfile_in(tmp_parent)
            .map_err(|e| Error::io("create temporary file in", tmp_parent, e))?;
        let size = self.download(url, &expected, &download).await?;
        let file = download
            .reopen()
            .map_err(|e| Error::io("open", download.path(), e))?;
        let limits = self.opts.limits.clone();
        let parent = tmp_parent.to_path_buf();
        let (dir, summary) = tokio::task::spawn_blocking(move || {
            extract_to_temp(
                std::io::BufReader::with_capacity(64 * 1024, file),
                &parent,
                &limits,
            )
        })
        .await
        .map_err(|e| Error::invalid_archive(format!("extraction task failed: {e}")))??;
        drop(download);
        Ok(FetchedArtifact {
            dir,
            digest: expected,
            size,
            summary,
        })
    }

    /// Downloads `url` into `dest` (truncating it per attempt) and verifies the digest.
    /// Returns the size.
    pub async fn download(
        &self,
        url: &str,
        expected: &Digest,
        dest: &NamedTempFile,
    ) -> Result<u64> {
        let url = apply_host_override(url, self.opts.host_override.as_deref())?;
        let mut attempt = 0u32;
        loop {
            match self.attempt(&url, expected, dest).await? {
                Attempt::Done(actual, size) => {
                    if &actual != expected {
                        return Err(Error::DigestMismatch {
                            expected: expected.to_string(),
                            actual: actual.to_string(),
                        });
                    }
                    return Ok(size);
                }
                Attempt::Retry(err) => {
                    if attempt >= self.opts.retries {
                        return Err(err);
                    }
                    let wait = self
                        .opts
                        .retry_wait_min
                        .saturating_mul(1u32 << attempt.min(20))
                        .min(self.opts.retry_wait_max);
                    tracing::debug!(%url, attempt, ?wait, error = %err, "retrying artifact download");
                    attempt += 1;
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// One GET. Permanent failures are `Err`; transient ones `Ok(Attempt::Retry)`.
    async fn attempt(&self, url: &str, expected: &Digest, dest: &NamedTempFile) -> Result<Attempt> {
        let http_err = |reason: String| Error::Http {
            url: url.to_string(),
            reason,
        };
        let uri = Uri::from_str(url).map_err(|e| http_err(format!("invalid URL: {e}")))?;
        match uri.scheme_str() {
            Some("http") => {}
            other => {
                return Err(http_err(format!(
                    "unsupported URL scheme {other:?}: artifact URLs are served over plain http"
                )));
            }
        }
        let req = Request::get(uri)
            .header(http::header::USER_AGENT, "ferroflux-artifact-fetcher")
            .body(Empty::<Bytes>::new())
            .map_err(|e| http_err(format!("cannot build request: {e}")))?;
        let resp = match tokio::time::timeout(self.opts.timeout, self.client.request(req)).await {
            Err(_) => {
                return Ok(Attempt::Retry(http_err(
                    "timed out waiting for a response".into(),
                )));
            }
            Ok(Err(e)) => return Ok(Attempt::Retry(http_err(format!("request failed: {e}")))),
            Ok(Ok(resp)) => resp,
        };
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Err(Error::NotFound {
                url: url.to_string(),
            });
        }
        if status == StatusCode::TOO_MANY_REQUESTS
            || (status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED)
        {
            return Ok(Attempt::Retry(http_err(format!(
                "server answered {status}"
            ))));
        }
        if !status.is_success() {
            return Err(http_err(format!("server answered {status}")));
        }
        let limit = self.opts.max_download_size;
        let declared = resp
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let (Some(limit), Some(len)) = (limit, declared)
            && len > limit
        {
            return Err(Error::TooLarge {
                url: url.to_string(),
                limit,
            });
        }

        let std_file = dest
            .reopen()
            .map_err(|e| Error::io("open", dest.path(), e))?;
        std_file
            .set_len(0)
            .map_err(|e| Error::io("truncate", dest.path(), e))?;
        let mut file = tokio::fs::File::from_std(std_file);
        let mut hasher = expected.algorithm.hasher();
        let mut size = 0u64;
        let mut body = resp.into_body();
        loop {
            let frame = match tokio::time::timeout(self.opts.timeout, body.frame()).await {
                Err(_) => {
                    return Ok(Attempt::Retry(http_err(
                        "timed out reading the body".into(),
                    )));
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Ok(Attempt::Retry(http_err(format!(
                        "reading the body failed: {e}"
                    ))));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            size += data.len() as u64;
            if let Some(limit) = limit
                && size > limit
            {
                return Err(Error::TooLarge {
                    url: url.to_string(),
                    limit,
                });
            }
            hasher.update(&data);
            file.write_all(&data)
                .await
                .map_err(|e| Error::io("write", dest.path(), e))?;
        }
        if let Some(len) = declared
            && len != size
        {
            return Ok(Attempt::Retry(http_err(format!(
                "body ended after {size} of {len} bytes"
            ))));
        }
        file.flush()
            .await
            .map_err(|e| Error::io("write", dest.path(), e))?;
        Ok(Attempt::Done(hasher.finish(), size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_override_replaces_host_and_port() {
        let url =
            "http://source-controller.flux-system.svc.cluster.local./gitrepository/ns/n/abc.tar.gz";
        assert_eq!(apply_host_override(url, None).unwrap(), url);
        assert_eq!(
            apply_host_override(url, Some("localhost:9090")).unwrap(),
            "http://localhost:9090/gitrepository/ns/n/abc.tar.gz"
        );
        assert_eq!(
            apply_host_override("http://a:80/x?y=1", Some("b")).unwrap(),
            "http://b/x?y=1"
        );
    }
}
