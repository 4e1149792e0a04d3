//! A small Prometheus registry written in the text exposition format by hand:
//!
//! * `gotk_reconcile_duration_seconds` histogram labelled `kind`, `name`, `namespace`;
//! * `gotk_reconcile_condition` gauge labelled `kind`, `name`, `namespace`, `type`, `status`
//!   (1 for the condition's current status, 0 for the others, as Flux's recorder does);
//! * free-form counters (e.g. `gotk_git_fetch_skipped_total`) via [`Metrics::inc_counter`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use ferroflux_api::meta::Condition;

/// Histogram bucket upper bounds in seconds (controller-runtime's defaults plus a few more).
pub const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0,
];

type ObjKey = (String, String, String); // kind, namespace, name

#[derive(Default, Clone)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct State {
    durations: BTreeMap<ObjKey, Histogram>,
    conditions: BTreeMap<(ObjKey, String), String>,
    counters: BTreeMap<String, (String, BTreeMap<String, u64>)>,
}

/// The registry. Share it behind an `Arc`.
#[derive(Default)]
pub struct Metrics {
    state: Mutex<State>,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    inner.join(",")
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one reconcile's duration.
    pub fn observe_reconcile(&self, kind: &str, namespace: &str, name: &str, d: Duration) {
        let secs = d.as_secs_f64();
        let mut st = self.lock();
        let h = st
            .durations
            .entry((kind.into(), namespace.into(), name.into()))
            .or_insert_with(|| Histogram {
                counts: vec![0; BUCKETS.len()],
                ..Default::default()
            });
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    /// Records the current status of the `Ready`, `Reconciling` and `Stalled` conditions.
    pub fn record_conditions(&self, kind: &str, namespace: &str, name: &str, conds: &[Condition]) {
        let mut st = self.lock();
        let key: ObjKey = (kind.into(), namespace.into(), name.into());
        for t in ["Ready", "Reconciling", "Stalled"] {
            let status = conds
                .iter()
                .find(|c| c.type_ == t)
                .map(|c| c.status.clone());
            match status {
                Some(s) => {
                    st.conditions.insert((key.clone(), t.to_string()), s);
                }
                None => {
                    st.conditions.remove(&(key.clone(), t.to_string()));
                }
            }
        }
    }

    /// Forgets a deleted object.
    pub fn remove_object(&self, kind: &str, namespace: &str, name: &str) {
        let mut st = self.lock();
        let key: ObjKey = (kind.into(), namespace.into(), name.into());
        st.durations.remove(&key);
        st.conditions.retain(|(k, _), _| *k != key);
    }

    /// Adds one to a counter.
    pub fn inc_counter(&self, name: &str, help: &str, label_pairs: &[(&str, &str)]) {
        let mut st = self.lock();
        let entry = st
            .counters
            .entry(name.to_string())
            .or_insert_with(|| (help.to_string(), BTreeMap::new()));
        *entry.1.entry(labels(label_pairs)).or_insert(0) += 1;
    }

    /// The current value of a counter (tests and logs).
    pub fn counter_value(&self, name: &str, label_pairs: &[(&str, &str)]) -> u64 {
        let st = self.lock();
        st.counters
            .get(name)
            .and_then(|(_, m)| m.get(&labels(label_pairs)).copied())
            .unwrap_or(0)
    }

    /// The whole registry in Prometheus text format 0.0.4.
    pub fn render(&self) -> String {
        let st = self.lock();
        let mut out = String::new();
        out.push_str("# HELP gotk_reconcile_duration_seconds The duration in seconds of a GitOps Toolkit resource reconciliation.\n");
        out.push_str("# TYPE gotk_reconcile_duration_seconds histogram\n");
        for ((kind, ns, name), h) in &st.durations {
            let base = labels(&[("kind", kind), ("name", name), ("namespace", ns)]);
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "gotk_reconcile_duration_seconds_bucket{{{base},le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "gotk_reconcile_duration_seconds_bucket{{{base},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "gotk_reconcile_duration_seconds_sum{{{base}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "gotk_reconcile_duration_seconds_count{{{base}}} {}",
                h.count
            );
        }
        out.push_str("# HELP gotk_reconcile_condition The current condition status of a GitOps Toolkit resource reconciliation.\n");
        out.push_str("# TYPE gotk_reconcile_condition gauge\n");
        for (((kind, ns, name), type_), current) in &st.conditions {
            for status in ["True", "False", "Unknown", "Deleted"] {
                let l = labels(&[
                    ("kind", kind),
                    ("name", name),
                    ("namespace", ns),
                    ("status", status),
                    ("type", type_),
                ]);
                let v = u8::from(current == status);
                let _ = writeln!(out, "gotk_reconcile_condition{{{l}}} {v}");
            }
        }
        for (name, (help, series)) in &st.counters {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for (l, v) in series {
                let _ = writeln!(out, "{name}{{{l}}} {v}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_and_counter_text() {
        let m = Metrics::default();
        m.observe_reconcile("GitRepository", "ns", "a", Duration::from_millis(30));
        m.observe_reconcile("GitRepository", "ns", "a", Duration::from_secs(3));
        m.inc_counter("gotk_x_total", "help text", &[("name", "a")]);
        m.inc_counter("gotk_x_total", "help text", &[("name", "a")]);
        assert_eq!(m.counter_value("gotk_x_total", &[("name", "a")]), 2);
        let text = m.render();
        assert!(text.contains(
            "gotk_reconcile_duration_seconds_bucket{kind=\"GitRepository\",name=\"a\",namespace=\"ns\",le=\"0.05\"} 1"
        ));
        assert!(text.contains(
            "gotk_reconcile_duration_seconds_bucket{kind=\"GitRepository\",name=\"a\",namespace=\"ns\",le=\"+Inf\"} 2"
        ));
        assert!(text.contains("gotk_reconcile_duration_seconds_count{kind=\"GitRepository\",name=\"a\",namespace=\"ns\"} 2"));
        assert!(text.contains("gotk_x_total{name=\"a\"} 2"));
    }
}
