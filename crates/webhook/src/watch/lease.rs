//! Leader election through a `coordination.k8s.io/v1` Lease: only the holder checks and
//! reports, so N replicas emit one Event, not N.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::PostParams;
use kube::{Api, Client};

/// One replica's claim on the Lease.
pub struct LeaderLease {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: u32,
    /// Set on release: the renewing task must not take the Lease back.
    released: AtomicBool,
}

impl LeaderLease {
    /// A claim on Lease `name` in `namespace` under `identity`.
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str, duration: u32) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            duration: duration.max(2),
            released: AtomicBool::new(false),
        }
    }

    /// Acquires or renews the Lease; true when this replica holds it for one more term.
    /// Writes carry the resourceVersion read, so two replicas racing for an expired Lease
    /// cannot both win.
    pub async fn try_hold(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(now, now, 0)),
            };
            return lost_race(self.api.create(&PostParams::default(), &lease).await);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let mine = spec.holder_identity.as_deref() == Some(self.identity.as_str());
        if !mine && !expired(&spec, now) {
            return Ok(false);
        }
        let (acquired, transitions) = match (mine, spec.acquire_time) {
            (true, Some(MicroTime(at))) => (at, spec.lease_transitions.unwrap_or(0)),
            _ => (now, spec.lease_transitions.unwrap_or(0) + 1),
        };
        lease.spec = Some(self.spec(acquired, now, transitions));
        lost_race(
            self.api
                .replace(&self.name, &PostParams::default(), &lease)
                .await,
        )
    }

    fn spec(&self, acquired: Timestamp, renewed: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(i32::try_from(self.duration).unwrap_or(i32::MAX)),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(renewed)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Gives the Lease up if this replica holds it, so another takes over at once rather
    /// than after the Lease's duration (on shutdown).
    pub async fn release(&self) -> Result<(), kube::Error> {
        self.released.store(true, Ordering::SeqCst);
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        lost_race(
            self.api
                .replace(&self.name, &PostParams::default(), &lease)
                .await,
        )
        .map(|_| ())
    }

    /// Keeps trying to hold the Lease every third of its duration; `leading` says whether
    /// this replica holds it. An API error drops leadership: better no report than two.
    pub fn spawn(self: Arc<Self>, leading: Arc<AtomicBool>) {
        let period = Duration::from_secs(u64::from(self.duration)) / 3;
        tokio::spawn(async move {
            while !self.released.load(Ordering::SeqCst) {
                let held = match self.try_hold().await {
                    Ok(held) => held,
                    Err(e) => {
                        tracing::warn!(lease = %self.name, error = %e, "cannot renew the lease; not leading");
                        false
                    }
                };
                if held != leading.swap(held, Ordering::SeqCst) {
                    tracing::info!(lease = %self.name, identity = %self.identity, leading = held, "leadership changed");
                }
                tokio::time::sleep(period).await;
            }
        });
    }
}

/// True when the holder has not renewed within the Lease's duration (or nobody holds it).
fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let (Some(_), Some(MicroTime(renewed))) = (&spec.holder_identity, &spec.renew_time) else {
        return true;
    };
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(0)));
    renewed
        .saturating_add(duration)
        .is_ok_and(|until| until < now)
}

/// A conflict (another replica wrote first) is a lost election, not an error.
fn lost_race(result: Result<Lease, kube::Error>) -> Result<bool, kube::Error> {
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_not_renewed_within_its_duration_is_expired() {
        let now = Timestamp::now();
        let spec = |ago: i64| LeaseSpec {
            holder_identity: Some("a".to_owned()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(now - SignedDuration::from_secs(ago))),
            ..LeaseSpec::default()
        };
        assert!(!expired(&spec(5), now));
        assert!(expired(&spec(20), now));
        assert!(expired(&LeaseSpec::default(), now));
    }
}
