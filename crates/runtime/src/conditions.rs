//! Pure helpers for `status.conditions` with the semantics Flux's `runtime/conditions` package
//! gives them (kstatus vocabulary):
//!
//! * setting a condition always records the object's generation as its `observedGeneration`;
//! * `lastTransitionTime` moves to `now` only when the condition's state (status, reason or
//!   message) changes, otherwise the previous time is kept;
//! * conditions are kept sorted: `Stalled`, `Reconciling`, `Ready`, then the others by type;
//! * negative-polarity conditions (`Reconciling`, `Stalled`, `FetchFailed`, ...) are present only
//!   while `True`: clear them with [`remove`].
//!
//! The clock is a parameter (`now`): nothing here reads it.

use ferroflux_api::meta::{Condition, condition_types, reasons};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// `metav1.ConditionStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `True`
    True,
    /// `False`
    False,
    /// `Unknown`
    Unknown,
}

impl Status {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }
}

/// Truncates to whole seconds, as `metav1.Time` serializes.
pub fn truncate_to_seconds(now: Timestamp) -> Timestamp {
    Timestamp::from_second(now.as_second()).unwrap_or(now)
}

fn weight(type_: &str) -> Option<u8> {
    match type_ {
        condition_types::STALLED => Some(0),
        condition_types::RECONCILING => Some(1),
        condition_types::READY => Some(2),
        _ => None,
    }
}

fn sort(conditions: &mut [Condition]) {
    conditions.sort_by(|a, b| match (weight(&a.type_), weight(&b.type_)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.type_.cmp(&b.type_),
    });
}

/// Sets (adds or updates) a condition. See the module documentation for the rules.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: Status,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    let mut cond = Condition {
        type_: type_.to_string(),
        status: status.as_str().to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation: generation,
        last_transition_time: Time(truncate_to_seconds(now)),
    };
    if let Some(existing) = conditions.iter_mut().find(|c| c.type_ == type_) {
        let same_state = existing.status == cond.status
            && existing.reason == cond.reason
            && existing.message == cond.message;
        if same_state {
            cond.last_transition_time = existing.last_transition_time.clone();
        }
        *existing = cond;
    } else {
        conditions.push(cond);
    }
    sort(conditions);
}

/// Sets `type_=True`.
pub fn mark_true(
    conditions: &mut Vec<Condition>,
    type_: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    set(
        conditions,
        type_,
        Status::True,
        reason,
        message,
        generation,
        now,
    );
}

/// Sets `type_=False`.
pub fn mark_false(
    conditions: &mut Vec<Condition>,
    type_: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    set(
        conditions,
        type_,
        Status::False,
        reason,
        message,
        generation,
        now,
    );
}

/// Sets `type_=Unknown`.
pub fn mark_unknown(
    conditions: &mut Vec<Condition>,
    type_: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    set(
        conditions,
        type_,
        Status::Unknown,
        reason,
        message,
        generation,
        now,
    );
}

/// Removes the condition of that type, if present.
pub fn remove(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

/// `Reconciling=True` and no `Stalled` (start of a reconcile; Flux `MarkReconciling`).
pub fn mark_reconciling(
    conditions: &mut Vec<Condition>,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    remove(conditions, condition_types::STALLED);
    mark_true(
        conditions,
        condition_types::RECONCILING,
        reason,
        message,
        generation,
        now,
    );
}

/// `Stalled=True` and no `Reconciling` (a terminal error; Flux `MarkStalled`).
pub fn mark_stalled(
    conditions: &mut Vec<Condition>,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    remove(conditions, condition_types::RECONCILING);
    mark_true(
        conditions,
        condition_types::STALLED,
        reason,
        message,
        generation,
        now,
    );
}

/// The condition of that type, and whether it is present with status `True`: the api
/// crate's pure lookups, under the names the rest of this module uses.
pub use ferroflux_api::meta::{find_condition as get, is_condition_true as is_true};

/// Whether the condition is present with status `False`.
pub fn is_false(conditions: &[Condition], type_: &str) -> bool {
    get(conditions, type_).is_some_and(|c| c.status == "False")
}

/// Whether `Ready=True`.
pub fn is_ready(conditions: &[Condition]) -> bool {
    is_true(conditions, condition_types::READY)
}

/// The end-of-reconcile bookkeeping of Flux's `finalizeStatus`:
///
/// * `Ready=True` → `Reconciling` and `Stalled` are removed and `observedGeneration` becomes
///   the object's generation;
/// * `Ready=False` while `Reconciling` is present → `Reconciling` keeps its message but its
///   reason becomes `ProgressingWithRetry` (the controller will retry);
/// * `Stalled=True` → `observedGeneration` is set too (the controller is done with this
///   generation; only a spec change helps).
pub fn finalize_status(
    conditions: &mut Vec<Condition>,
    generation: Option<i64>,
    observed_generation: &mut Option<i64>,
    now: Timestamp,
) {
    if is_ready(conditions) {
        remove(conditions, condition_types::RECONCILING);
        remove(conditions, condition_types::STALLED);
        *observed_generation = generation;
        return;
    }
    if is_true(conditions, condition_types::STALLED) {
        remove(conditions, condition_types::RECONCILING);
        *observed_generation = generation;
        return;
    }
    if is_false(conditions, condition_types::READY)
        && let Some(rec) = get(conditions, condition_types::RECONCILING).cloned()
    {
        mark_true(
            conditions,
            condition_types::RECONCILING,
            reasons::PROGRESSING_WITH_RETRY,
            &rec.message,
            generation,
            now,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    #[test]
    fn transition_time_moves_only_on_state_change() {
        let mut c = Vec::new();
        mark_true(&mut c, "Ready", "Succeeded", "ok", Some(1), t(0));
        mark_true(&mut c, "Ready", "Succeeded", "ok", Some(2), t(10));
        assert_eq!(c[0].last_transition_time.0, t(0));
        assert_eq!(c[0].observed_generation, Some(2));
        mark_false(&mut c, "Ready", "Failed", "bad", Some(2), t(20));
        assert_eq!(c[0].last_transition_time.0, t(20));
        assert_eq!(c[0].status, "False");
        // A message change is a state change too (Flux hasSameState).
        mark_false(&mut c, "Ready", "Failed", "worse", Some(2), t(30));
        assert_eq!(c[0].last_transition_time.0, t(30));
    }

    #[test]
    fn sub_second_times_are_truncated() {
        let mut c = Vec::new();
        let now = Timestamp::from_millisecond(1_700_000_000_750).unwrap();
        mark_true(&mut c, "Ready", "Succeeded", "ok", None, now);
        assert_eq!(c[0].last_transition_time.0.as_second(), 1_700_000_000);
        assert_eq!(c[0].last_transition_time.0.subsec_nanosecond(), 0);
    }

    #[test]
    fn sorted_stalled_reconciling_ready_then_alphabetical() {
        let mut c = Vec::new();
        mark_true(&mut c, "FetchFailed", "X", "", None, t(0));
        mark_true(&mut c, "ArtifactInStorage", "X", "", None, t(0));
        mark_true(&mut c, "Ready", "X", "", None, t(0));
        mark_true(&mut c, "Reconciling", "X", "", None, t(0));
        let types: Vec<_> = c.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(
            types,
            ["Reconciling", "Ready", "ArtifactInStorage", "FetchFailed"]
        );
        mark_stalled(&mut c, "InvalidURL", "bad url", None, t(0));
        let types: Vec<_> = c.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(
            types,
            ["Stalled", "Ready", "ArtifactInStorage", "FetchFailed"]
        );
        mark_reconciling(&mut c, "Progressing", "again", None, t(0));
        assert!(get(&c, "Stalled").is_none());
        assert!(is_true(&c, "Reconciling"));
    }

    #[test]
    fn finalize_ready_true() {
        let mut c = Vec::new();
        mark_reconciling(&mut c, "Progressing", "working", Some(3), t(0));
        mark_true(&mut c, "Ready", "Succeeded", "done", Some(3), t(1));
        let mut og = Some(2);
        finalize_status(&mut c, Some(3), &mut og, t(2));
        assert_eq!(og, Some(3));
        assert!(get(&c, "Reconciling").is_none());
        assert!(is_ready(&c));
    }

    #[test]
    fn finalize_ready_false_with_reconciling_retries() {
        let mut c = Vec::new();
        mark_reconciling(&mut c, "Progressing", "building", Some(3), t(0));
        mark_false(&mut c, "Ready", "GitOperationFailed", "boom", Some(3), t(1));
        let mut og = Some(2);
        finalize_status(&mut c, Some(3), &mut og, t(2));
        assert_eq!(og, Some(2));
        let rec = get(&c, "Reconciling").unwrap();
        assert_eq!(rec.reason, "ProgressingWithRetry");
        assert_eq!(rec.message, "building");
    }

    #[test]
    fn finalize_stalled_sets_observed_generation() {
        let mut c = Vec::new();
        mark_false(&mut c, "Ready", "InvalidURL", "bad", Some(4), t(1));
        mark_stalled(&mut c, "InvalidURL", "bad", Some(4), t(1));
        let mut og = None;
        finalize_status(&mut c, Some(4), &mut og, t(2));
        assert_eq!(og, Some(4));
        assert!(get(&c, "Reconciling").is_none());
    }
}
