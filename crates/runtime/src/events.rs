//! Events: every event is written as a Kubernetes Event (through kube-runtime's recorder, so
//! `reportingController` is the controller's name and `kubectl events`/`flux events` show it)
//! and, when `--events-addr` is set, POSTed as Flux's event JSON to notification-controller
//! (FLUX-API.md §4.1). Severity `trace` is never POSTed. The POST runs on its own task with a
//! 5 s timeout per attempt and a few retries; HTTP 429 (a duplicate) is not retried.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Resource, ResourceExt};

use crate::error::Error;

/// Flux event severities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Normal progress.
    Info,
    /// A failure; the Kubernetes Event has type `Warning`.
    Error,
    /// Only recorded as a Kubernetes Event, never forwarded.
    Trace,
}

impl Severity {
    /// Flux's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Error => "error",
            Severity::Trace => "trace",
        }
    }
}

/// Maximum message length of a forwarded event (notification-controller's limit).
pub const MAX_MESSAGE_LEN: usize = 39_000;
/// Maximum `note` of a Kubernetes Event.
pub const MAX_NOTE_LEN: usize = 1024;

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Event metadata as Flux sends it: every key of `metadata` prefixed with the involved
/// object's API group (`source.toolkit.fluxcd.io/revision`), plus the object's annotations
/// that start with `event.toolkit.fluxcd.io/` copied verbatim.
pub fn event_metadata(
    group: &str,
    metadata: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in annotations {
        if k.starts_with(ferroflux_api::constants::EVENT_ANNOTATION_PREFIX) {
            out.insert(k.clone(), v.clone());
        }
    }
    for (k, v) in metadata {
        let key = if group.is_empty() {
            k.clone()
        } else {
            format!("{group}/{k}")
        };
        out.insert(key, v.clone());
    }
    out
}

/// The JSON body Flux POSTs to notification-controller (`eventv1.Event`).
#[allow(clippy::too_many_arguments)]
pub fn flux_event_json(
    involved: &ObjectReference,
    severity: Severity,
    timestamp: Timestamp,
    message: &str,
    reason: &str,
    metadata: &BTreeMap<String, String>,
    controller: &str,
    instance: &str,
) -> serde_json::Value {
    let ts = Timestamp::from_second(timestamp.as_second()).unwrap_or(timestamp);
    let mut v = serde_json::json!({
        "involvedObject": involved,
        "severity": severity.as_str(),
        "timestamp": ts.to_string(),
        "message": truncate(message, MAX_MESSAGE_LEN),
        "reason": reason,
        "reportingController": controller,
        "reportingInstance": instance,
    });
    if !metadata.is_empty() {
        v["metadata"] = serde_json::to_value(metadata).unwrap_or_default();
    }
    v
}

/// The object reference Flux puts in events (`reference.GetReference`).
pub fn object_reference<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: obj.meta().name.clone(),
        namespace: obj.meta().namespace.clone(),
        uid: obj.meta().uid.clone(),
        resource_version: obj.meta().resource_version.clone(),
        field_path: None,
    }
}

/// The host name, Flux's `reportingInstance` (`os.Hostname()`).
pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "localhost".to_string())
}

struct Inner {
    controller: String,
    instance: String,
    recorder: Recorder,
    events_addr: Option<hyper::Uri>,
    http: HttpClient<HttpConnector, Full<Bytes>>,
}

/// Records events for one controller. Cheap to clone.
#[derive(Clone)]
pub struct EventRecorder {
    inner: Arc<Inner>,
}

impl EventRecorder {
    /// A recorder for `controller` (e.g. `source-controller`). `events_addr` is the
    /// `--events-addr` value (`http://host[:port][/path]`).
    pub fn new(
        client: kube::Client,
        controller: &str,
        events_addr: Option<&str>,
    ) -> Result<EventRecorder, Error> {
        let events_addr = match events_addr.filter(|a| !a.is_empty()) {
            None => None,
            Some(a) => {
                let uri: hyper::Uri = a
                    .parse()
                    .map_err(|e| Error::Config(format!("--events-addr {a:?}: {e}")))?;
                if uri.scheme_str() != Some("http") {
                    return Err(Error::Config(format!(
                        "--events-addr {a:?}: only http:// addresses are supported"
                    )));
                }
                Some(uri)
            }
        };
        let instance = hostname();
        let recorder = Recorder::new(
            client,
            Reporter {
                controller: controller.to_string(),
                instance: Some(instance.clone()),
            },
        );
        let http = HttpClient::builder(TokioExecutor::new()).build_http();
        Ok(EventRecorder {
            inner: Arc::new(Inner {
                controller: controller.to_string(),
                instance,
                recorder,
                events_addr,
                http,
            }),
        })
    }

    /// The controller name events are reported under.
    pub fn controller(&self) -> &str {
        &self.inner.controller
    }

    /// Records an event about `obj`. `metadata` keys are short (`revision`, `digest`, ...) and
    /// get the object's group prefix. `reason` should be the Ready condition's reason.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        severity: Severity,
        reason: &str,
        message: &str,
        metadata: BTreeMap<String, String>,
    ) {
        let reference = object_reference(obj);
        let ev = Event {
            type_: if severity == Severity::Error {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_string(),
            note: Some(truncate(message, MAX_NOTE_LEN)),
            action: reason.to_string(),
            secondary: None,
        };
        if let Err(e) = self.inner.recorder.publish(&ev, &reference).await {
            tracing::warn!(error = %e, name = %obj.name_any(), "failed to record Kubernetes event");
        }
        if severity == Severity::Trace {
            return;
        }
        let Some(uri) = self.inner.events_addr.clone() else {
            return;
        };
        let md = event_metadata(&K::group(&()), &metadata, obj.annotations());
        let body = flux_event_json(
            &reference,
            severity,
            Timestamp::now(),
            message,
            reason,
            &md,
            &self.inner.controller,
            &self.inner.instance,
        );
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move { post_event(&inner.http, uri, body).await });
    }
}

async fn post_event(
    http: &HttpClient<HttpConnector, Full<Bytes>>,
    uri: hyper::Uri,
    body: serde_json::Value,
) {
    let bytes = Bytes::from(body.to_string());
    for attempt in 0..4u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
        }
        let req = match hyper::Request::post(uri.clone())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(bytes.clone()))
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot build event request");
                return;
            }
        };
        match tokio::time::timeout(Duration::from_secs(5), http.request(req)).await {
            Ok(Ok(resp)) => {
                let status = resp.status();
                if status.is_success() || status.as_u16() == 429 || status.is_client_error() {
                    if !status.is_success() && status.as_u16() != 429 {
                        tracing::warn!(%status, "notification-controller refused the event");
                    }
                    return;
                }
                tracing::debug!(%status, attempt, "event POST failed, retrying");
            }
            Ok(Err(e)) => tracing::debug!(error = %e, attempt, "event POST failed, retrying"),
            Err(_) => tracing::debug!(attempt, "event POST timed out, retrying"),
        }
    }
    tracing::warn!(%uri, "giving up posting event to notification-controller");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_group_prefixed_and_annotations_copied() {
        let mut md = BTreeMap::new();
        md.insert("revision".to_string(), "main@sha1:abc".to_string());
        let mut ann = BTreeMap::new();
        ann.insert(
            "event.toolkit.fluxcd.io/env".to_string(),
            "prod".to_string(),
        );
        ann.insert("other/x".to_string(), "y".to_string());
        let out = event_metadata("source.toolkit.fluxcd.io", &md, &ann);
        assert_eq!(out.len(), 2);
        assert_eq!(out["source.toolkit.fluxcd.io/revision"], "main@sha1:abc");
        assert_eq!(out["event.toolkit.fluxcd.io/env"], "prod");
    }

    #[test]
    fn flux_json_shape() {
        let r = ObjectReference {
            api_version: Some("source.toolkit.fluxcd.io/v1".into()),
            kind: Some("GitRepository".into()),
            name: Some("podinfo".into()),
            namespace: Some("apps".into()),
            uid: Some("u1".into()),
            resource_version: Some("12".into()),
            field_path: None,
        };
        let ts = Timestamp::from_millisecond(1_666_941_979_500).unwrap();
        let v = flux_event_json(
            &r,
            Severity::Info,
            ts,
            "stored artifact",
            "Succeeded",
            &BTreeMap::new(),
            "source-controller",
            "pod-1",
        );
        assert_eq!(v["timestamp"], "2022-10-28T07:26:19Z");
        assert_eq!(v["severity"], "info");
        assert_eq!(v["involvedObject"]["kind"], "GitRepository");
        assert_eq!(v["involvedObject"]["resourceVersion"], "12");
        assert_eq!(v["reportingController"], "source-controller");
        assert!(v.get("metadata").is_none());
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let s = "é".repeat(600); // 1200 bytes
        let t = truncate(&s, MAX_NOTE_LEN);
        assert!(t.len() <= MAX_NOTE_LEN);
        assert!(t.chars().all(|c| c == 'é'));
    }
}
