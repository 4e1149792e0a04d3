//! kstatus, as Flux reads it: a pure `compute` over an object's JSON deciding whether it
//! is Current, InProgress, Failed or Terminating, with the kind rules of cli-utils
//! (Deployment, StatefulSet, DaemonSet, ReplicaSet, Pod, PVC, Service, Job, PDB, CRD) and
//! the generic generation / Reconciling / Stalled / Ready path for everything else.
//! Messages are byte-identical to cli-utils': users and the `flux` CLI read them.
//!
//! The only input besides the object is `now` (seconds since the epoch), used by the Pod
//! rule's 15-second unschedulable window.

mod rules;

use serde_json::Value;

/// The status of one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// The desired state is not reached yet.
    InProgress,
    /// An error or insufficient progress; will not become Current without a change.
    Failed,
    /// The actual state matches the desired state.
    Current,
    /// The object is being deleted.
    Terminating,
    /// The object does not exist (poller only).
    NotFound,
    /// The status could not be determined (poller only).
    Unknown,
}

impl Status {
    /// The name cli-utils prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::InProgress => "InProgress",
            Status::Failed => "Failed",
            Status::Current => "Current",
            Status::Terminating => "Terminating",
            Status::NotFound => "NotFound",
            Status::Unknown => "Unknown",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of [`compute`]: a status, a message, and the reason of the kstatus
/// condition (`Reconciling` for InProgress, `Stalled` for Failed) it implies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The status.
    pub status: Status,
    /// A human-readable explanation.
    pub message: String,
    /// The reason of the implied `Reconciling`/`Stalled` condition, if any.
    pub reason: Option<String>,
}

impl Outcome {
    pub(crate) fn current(message: impl Into<String>) -> Self {
        Self {
            status: Status::Current,
            message: message.into(),
            reason: None,
        }
    }
    pub(crate) fn in_progress(reason: &str, message: impl Into<String>) -> Self {
        Self {
            status: Status::InProgress,
            message: message.into(),
            reason: Some(reason.to_string()),
        }
    }
    pub(crate) fn failed(reason: &str, message: impl Into<String>) -> Self {
        Self {
            status: Status::Failed,
            message: message.into(),
            reason: Some(reason.to_string()),
        }
    }
}

/// Why `compute` could not decide (the poller reports these as `Unknown`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComputeError(pub String);

impl std::fmt::Display for ComputeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ComputeError {}

/// A condition as kstatus reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cond {
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
}

/// Computes the status of an object (cli-utils `Compute`).
pub fn compute(object: &Value, now_unix: i64) -> Result<Outcome, ComputeError> {
    // 1. Deletion.
    if object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null() && t.as_str() != Some(""))
    {
        return Ok(Outcome {
            status: Status::Terminating,
            message: "Resource scheduled for deletion".into(),
            reason: None,
        });
    }
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // 2. Generation.
    if let (Some(generation), Some(observed)) = (
        int_field_strict(object, "/metadata/generation")?,
        int_field_strict(object, "/status/observedGeneration")?,
    ) && generation != observed
    {
        return Ok(Outcome::in_progress(
            "LatestGenerationNotObserved",
            format!(
                "{kind} generation is {generation}, but latest observed generation is {observed}"
            ),
        ));
    }
    // 3. Standard conditions, in array order.
    let conditions = conditions(object)?;
    for c in &conditions {
        if c.status == "True" && c.type_ == "Reconciling" {
            return Ok(Outcome::in_progress(&c.reason, c.message.clone()));
        }
        if c.status == "True" && c.type_ == "Stalled" {
            return Ok(Outcome::failed(&c.reason, c.message.clone()));
        }
    }
    // 4. Kind rule, by group and kind (the version is ignored).
    let group = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .and_then(|v| v.split_once('/').map(|(g, _)| g))
        .unwrap_or("");
    if let Some(outcome) = rules::by_kind(group, kind, object, &conditions, now_unix)? {
        return Ok(outcome);
    }
    // 5. Ready condition.
    for c in &conditions {
        if c.type_ == "Ready" {
            match c.status.as_str() {
                "True" => return Ok(Outcome::current("Resource is Ready")),
                "False" | "Unknown" => {
                    return Ok(Outcome::in_progress(&c.reason, c.message.clone()));
                }
                _ => {}
            }
        }
    }
    // 6. Default.
    Ok(Outcome::current("Resource is current"))
}

/// Aggregates a set of statuses (cli-utils `AggregateStatus`) towards `desired`.
pub fn aggregate(statuses: &[Status], desired: Status) -> Status {
    if statuses.is_empty() {
        return desired;
    }
    if statuses.contains(&Status::Failed) {
        return Status::Failed;
    }
    if statuses.contains(&Status::Unknown) {
        return Status::Unknown;
    }
    if statuses.iter().all(|s| *s == desired) {
        return desired;
    }
    Status::InProgress
}

/// An integer field; a missing field is `None`, a non-integer is an error (like Go's
/// `NestedInt64` used for generations).
fn int_field_strict(object: &Value, pointer: &str) -> Result<Option<i64>, ComputeError> {
    match object.pointer(pointer) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| {
            ComputeError(format!(
                "{} accessor error: {v} is of the type {}, expected int64",
                pointer.trim_start_matches('/').replace('/', "."),
                json_type(v)
            ))
        }),
    }
}

pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// `status.conditions` as kstatus reads them; malformed conditions are an error.
pub(crate) fn conditions(object: &Value) -> Result<Vec<Cond>, ComputeError> {
    let Some(list) = object.pointer("/status/conditions") else {
        return Ok(Vec::new());
    };
    let Some(list) = list.as_array() else {
        if list.is_null() {
            return Ok(Vec::new());
        }
        return Err(ComputeError("status.conditions is not a list".into()));
    };
    list.iter()
        .map(|c| {
            let obj = c.as_object().ok_or_else(|| {
                ComputeError("status.conditions contains a non-object entry".into())
            })?;
            let text = |k: &str| -> Result<String, ComputeError> {
                match obj.get(k) {
                    None | Some(Value::Null) => Ok(String::new()),
                    Some(Value::String(s)) => Ok(s.clone()),
                    Some(other) => Err(ComputeError(format!(
                        "condition field {k} is {}, expected string",
                        json_type(other)
                    ))),
                }
            };
            Ok(Cond {
                type_: text("type")?,
                status: text("status")?,
                reason: text("reason")?,
                message: text("message")?,
            })
        })
        .collect()
}
