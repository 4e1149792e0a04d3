//! Leader election on a `coordination.k8s.io/v1` Lease: a candidate takes the Lease when it is
//! free, its own, or expired (`renewTime + leaseDurationSeconds` in the past), then renews it
//! every retry period. A leader that cannot renew within the renew deadline gives up
//! (the caller should exit, as controller-runtime does). The Lease is released on shutdown.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ObjectMeta, PostParams};

use crate::shutdown::Shutdown;

/// Leader-election settings.
#[derive(Clone, Debug)]
pub struct LeaderElection {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease (Flux: `<controller>-leader-election`).
    pub name: String,
    /// This candidate's identity.
    pub identity: String,
    /// Lease validity.
    pub lease_duration: Duration,
    /// How long the leader tries to renew before giving up.
    pub renew_deadline: Duration,
    /// Retry and renew period.
    pub retry_period: Duration,
}

/// Whether `identity` may take the Lease at `now`.
pub fn can_acquire(spec: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> bool {
    let Some(spec) = spec else { return true };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder.is_empty() || holder == identity {
        return true;
    }
    let Some(renew) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return true;
    };
    let dur = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    renew.0 + SignedDuration::from_secs(dur) < now
}

impl LeaderElection {
    /// Settings for `controller` with a fresh identity (`<hostname>_<pid>`).
    pub fn new(controller: &str, namespace: &str, args: &crate::flags::RuntimeArgs) -> Self {
        LeaderElection {
            namespace: namespace.to_string(),
            name: format!("{controller}-leader-election"),
            identity: format!("{}_{}", crate::events::hostname(), std::process::id()),
            lease_duration: args.leader_election_lease_duration,
            renew_deadline: args.leader_election_renew_deadline,
            retry_period: args.leader_election_retry_period,
        }
    }

    fn spec(&self, prev: Option<&LeaseSpec>, now: Timestamp) -> LeaseSpec {
        let ours = prev.and_then(|p| p.holder_identity.as_deref()) == Some(&self.identity);
        let transitions = prev.and_then(|p| p.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.lease_duration.as_secs().max(1) as i32),
            acquire_time: if ours {
                prev.and_then(|p| p.acquire_time.clone())
            } else {
                Some(MicroTime(now))
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(if ours || prev.is_none() {
                transitions
            } else {
                transitions + 1
            }),
            ..Default::default()
        }
    }

    /// One acquire-or-renew attempt; true when we hold the Lease afterwards.
    pub async fn try_acquire_or_renew(&self, api: &Api<Lease>) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        match api.get_opt(&self.name).await? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        namespace: Some(self.namespace.clone()),
                        ..Default::default()
                    },
                    spec: Some(self.spec(None, now)),
                };
                match api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Some(mut lease) => {
                if !can_acquire(lease.spec.as_ref(), &self.identity, now) {
                    return Ok(false);
                }
                lease.spec = Some(self.spec(lease.spec.as_ref(), now));
                match api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Waits until this candidate leads. Returns false if `shutdown` came first.
    pub async fn acquire(&self, client: &kube::Client, shutdown: Shutdown) -> bool {
        let api: Api<Lease> = Api::namespaced(client.clone(), &self.namespace);
        loop {
            if shutdown.is_triggered() {
                return false;
            }
            match self.try_acquire_or_renew(&api).await {
                Ok(true) => {
                    tracing::info!(lease = %self.name, identity = %self.identity, "successfully acquired lease");
                    return true;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "error acquiring leader lease"),
            }
            tokio::select! {
                () = shutdown.clone().wait() => return false,
                () = tokio::time::sleep(self.retry_period) => {}
            }
        }
    }

    /// Renews until shutdown (then releases the Lease and returns `Ok`) or until renewing
    /// fails for longer than the renew deadline (returns `Err`: leadership is lost).
    pub async fn keep_renewing(
        &self,
        client: &kube::Client,
        shutdown: Shutdown,
    ) -> Result<(), String> {
        let api: Api<Lease> = Api::namespaced(client.clone(), &self.namespace);
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = shutdown.clone().wait() => {
                    self.release(&api).await;
                    return Ok(());
                }
                () = tokio::time::sleep(self.retry_period) => {}
            }
            match self.try_acquire_or_renew(&api).await {
                Ok(true) => last_ok = tokio::time::Instant::now(),
                Ok(false) => {
                    return Err(format!(
                        "lease {} was taken by another candidate",
                        self.name
                    ));
                }
                Err(e) => tracing::warn!(error = %e, "error renewing leader lease"),
            }
            if last_ok.elapsed() > self.renew_deadline {
                return Err(format!(
                    "failed to renew lease {} within the renew deadline",
                    self.name
                ));
            }
        }
    }

    async fn release(&self, api: &Api<Lease>) {
        if let Ok(Some(mut lease)) = api.get_opt(&self.name).await
            && let Some(spec) = lease.spec.as_mut()
            && spec.holder_identity.as_deref() == Some(&self.identity)
        {
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(MicroTime(Timestamp::now()));
            if let Err(e) = api
                .replace(&self.name, &PostParams::default(), &lease)
                .await
            {
                tracing::warn!(error = %e, "failed to release leader lease");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    #[test]
    fn acquire_rules() {
        assert!(can_acquire(None, "me", t(0)));
        let held = LeaseSpec {
            holder_identity: Some("other".into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(t(0))),
            ..Default::default()
        };
        assert!(!can_acquire(Some(&held), "me", t(10)));
        assert!(can_acquire(Some(&held), "me", t(16)));
        assert!(can_acquire(Some(&held), "other", t(1)));
        let released = LeaseSpec {
            holder_identity: None,
            ..held.clone()
        };
        assert!(can_acquire(Some(&released), "me", t(1)));
    }
}
