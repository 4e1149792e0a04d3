//! `status.history`: the last reconciles grouped by build output (Flux's
//! `History.Upsert`): newest first, at most 5 entries, one per (digest, status).

use std::collections::BTreeMap;

use ferroflux_api::kustomization::Snapshot;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Entries kept.
pub const MAX_HISTORY: usize = 5;

/// Records one reconcile of the build output `digest` that ended with `status`.
pub fn upsert(
    history: &mut Vec<Snapshot>,
    digest: &str,
    now: Time,
    duration: std::time::Duration,
    status: &str,
    metadata: BTreeMap<String, String>,
) {
    let duration = ferroflux_api::duration::format(std::time::Duration::from_millis(
        duration.as_millis() as u64,
    ));
    if let Some(pos) = history
        .iter()
        .position(|s| s.digest == digest && s.last_reconciled_status == status)
    {
        let mut entry = history.remove(pos);
        entry.last_reconciled = now;
        entry.last_reconciled_duration = duration;
        entry.total_reconciliations += 1;
        entry.metadata = Some(metadata);
        history.insert(0, entry);
    } else {
        history.insert(
            0,
            Snapshot {
                digest: digest.to_string(),
                first_reconciled: now.clone(),
                last_reconciled: now,
                last_reconciled_duration: duration,
                last_reconciled_status: status.to_string(),
                total_reconciliations: 1,
                metadata: Some(metadata),
            },
        );
    }
    history.truncate(MAX_HISTORY);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn repeats_are_counted_and_moved_first() {
        let mut h = Vec::new();
        let d = std::time::Duration::from_millis(1500);
        upsert(
            &mut h,
            "sha256:a",
            t(1),
            d,
            "ReconciliationSucceeded",
            BTreeMap::new(),
        );
        upsert(
            &mut h,
            "sha256:b",
            t(2),
            d,
            "ReconciliationSucceeded",
            BTreeMap::new(),
        );
        upsert(
            &mut h,
            "sha256:a",
            t(3),
            d,
            "ReconciliationSucceeded",
            BTreeMap::new(),
        );
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].digest, "sha256:a");
        assert_eq!(h[0].total_reconciliations, 2);
        assert_eq!(h[0].first_reconciled, t(1));
        assert_eq!(h[0].last_reconciled_duration, "1.5s");
        for i in 0..10 {
            upsert(
                &mut h,
                &format!("sha256:{i}"),
                t(10 + i),
                d,
                "ReconciliationSucceeded",
                BTreeMap::new(),
            );
        }
        assert_eq!(h.len(), MAX_HISTORY);
    }
}
