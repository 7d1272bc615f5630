//! `tagpin watch`: a controller that reports, never acts. Each round it re-resolves the
//! distinct tags of running pinned images and re-verifies the distinct digests they run,
//! reusing the inventory's rows and checks, and reports a moved tag (`TagMoved`) or a
//! digest today's policy denies (`PolicyViolation`) as one Warning Event on the workload.

pub mod events;
pub mod http;
pub mod lease;
pub mod metrics;
pub mod owners;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::Store;
use tagpin_resolver::Resolver;

use crate::cluster::Cluster;
use crate::config::Config;
use crate::inventory::output::Progress;
use crate::inventory::{Flag, Row, drift, policy, rows};
use crate::verification::RegistryVerifier;
use events::{EventSink, Finding, Workload};
use metrics::{ContainerLabels, WatchMetrics};

/// Everything one round reads and reports to.
pub struct Watch {
    /// Pods, kept by a watch.
    pub pods: Store<Pod>,
    /// The metadata of their owners, kept by watches.
    pub owners: owners::OwnerStores,
    /// Pull secrets and ServiceAccounts, kept by watches.
    pub cluster: Arc<Cluster>,
    /// Shared by every round: its cache and single-flight bound registry load.
    pub resolver: Arc<Resolver>,
    /// Re-read every round, so a tightened policy applies at the next round.
    pub config_path: Option<PathBuf>,
    /// The last config that loaded.
    pub config: Config,
    /// Where results are exported.
    pub metrics: Arc<WatchMetrics>,
    /// Where findings are reported.
    pub events: EventSink,
}

impl Watch {
    /// One round: re-check, export, report.
    pub async fn round(&mut self) {
        self.reload();
        let mut rows = self.rows();
        let quiet = Progress::new(false);
        drift::check(
            &mut rows,
            self.resolver.as_ref(),
            self.cluster.as_ref(),
            &quiet,
        )
        .await;
        let verifier = self.verifier();
        if let Some(verifier) = &verifier {
            policy::check(&mut rows, verifier, self.cluster.as_ref(), &quiet).await;
        }
        self.export(&rows);
        let findings = findings(&rows);
        for finding in &findings {
            match self.events.report(finding).await {
                Ok(true) => tracing::warn!(
                    reason = finding.reason,
                    namespace = %finding.workload.namespace,
                    workload = %format!("{}/{}", finding.workload.kind, finding.workload.name),
                    "{}", finding.message
                ),
                Ok(false) => {}
                Err(e) => {
                    self.metrics.error("event");
                    tracing::warn!(error = %e, reason = finding.reason, "cannot create the Event");
                }
            }
        }
        self.events.keep_only(&findings);
        self.metrics.round();
    }

    fn reload(&mut self) {
        match Config::load(self.config_path.as_deref()) {
            Ok(config) => self.config = config,
            Err(e) => {
                self.metrics.error("config");
                tracing::warn!(error = %e, "cannot reload the config; keeping the last one");
            }
        }
    }

    fn verifier(&self) -> Option<RegistryVerifier> {
        match self.config.verification_policy() {
            Ok(policy) => policy.map(|p| RegistryVerifier::new(self.resolver.clone(), p)),
            Err(e) => {
                self.metrics.error("config");
                tracing::warn!(error = %e, "the config's policy does not compile; not re-verifying");
                None
            }
        }
    }

    /// Pinned containers of the Pods that run or are about to.
    fn rows(&self) -> Vec<Row> {
        let owners = self.owners.index(self.config.kinds.clone());
        self.pods
            .state()
            .iter()
            .filter(|p| live(p))
            .flat_map(|p| rows::pod_rows(p, &owners))
            .filter(|r| r.pinned_digest.is_some())
            .collect()
    }

    fn export(&self, rows: &[Row]) {
        let labels = |r: &Row| ContainerLabels {
            namespace: r.namespace.clone(),
            kind: r.owner_kind.clone(),
            workload: r.owner_name.clone(),
            container: r.container.clone(),
        };
        let drift: Vec<_> = rows
            .iter()
            .filter(|r| r.drift.as_ref().is_some_and(|d| d.error.is_none()))
            .map(|r| (labels(r), r.has(Flag::Drifted)))
            .collect();
        let denied: Vec<_> = rows
            .iter()
            .filter(|r| r.today.as_ref().is_some_and(|t| t.error.is_none()))
            .map(|r| (labels(r), r.has(Flag::DeniedToday)))
            .collect();
        self.metrics.set_containers(&drift, &denied);
        let tags = distinct(rows, |r| {
            r.drift.as_ref().map(|d| (d.tag.clone(), d.error.is_some()))
        });
        let digests = distinct(rows, |r| {
            let today = r.today.as_ref()?;
            Some((
                format!("{}@{}", r.image, r.effective_digest()?),
                today.error.is_some(),
            ))
        });
        self.metrics
            .checked("drift", tags.len(), tags.iter().filter(|(_, e)| *e).count());
        self.metrics.checked(
            "policy",
            digests.len(),
            digests.iter().filter(|(_, e)| *e).count(),
        );
    }
}

/// Succeeded and Failed Pods run nothing.
fn live(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded" | "Failed"))
}

fn distinct(rows: &[Row], key: impl Fn(&Row) -> Option<(String, bool)>) -> HashSet<(String, bool)> {
    rows.iter().filter_map(key).collect()
}

/// One finding per workload, container and fact: Pods of one ReplicaSet share it, and a
/// tag that moves again (or a new verdict) is a new finding.
pub fn findings(rows: &[Row]) -> Vec<Finding> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for row in rows {
        for finding in [tag_moved(row), policy_violation(row)]
            .into_iter()
            .flatten()
        {
            if seen.insert((
                finding.workload.clone(),
                finding.reason,
                finding.key.clone(),
            )) {
                out.push(finding);
            }
        }
    }
    out
}

fn tag_moved(row: &Row) -> Option<Finding> {
    if !row.has(Flag::Drifted) {
        return None;
    }
    let drift = row.drift.as_ref()?;
    let now = drift.now.as_deref()?;
    let runs = row.effective_digest()?;
    let pinned = row
        .resolved_at
        .as_deref()
        .map(|at| format!(", pinned {at}"))
        .unwrap_or_default();
    Some(Finding {
        workload: Workload::of(row),
        reason: "TagMoved",
        message: format!(
            "{} now points to {now}; this {} runs {runs}{pinned} (container {})",
            drift.tag, row.owner_kind, row.container
        ),
        key: format!("{}|{}|{now}|{runs}", row.container, drift.tag),
    })
}

fn policy_violation(row: &Row) -> Option<Finding> {
    if !row.has(Flag::DeniedToday) {
        return None;
    }
    let today = row.today.as_ref()?;
    let digest = row.effective_digest()?;
    let verdict = today.verdict.as_deref().unwrap_or("denied");
    let rule = today
        .rule
        .as_deref()
        .map(|r| format!(", rule {r}"))
        .unwrap_or_default();
    let reason = today
        .reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    Some(Finding {
        workload: Workload::of(row),
        reason: "PolicyViolation",
        message: format!(
            "{digest} run by container {} of this {} no longer passes the policy (verdict {verdict}{rule}){reason}",
            row.container, row.owner_kind
        ),
        key: format!("{}|{digest}|{verdict}{rule}", row.container),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::rows::{DriftCheck, test_row};

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const C: &str = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

    fn checked(pod: &str, now: Option<&str>, error: Option<&str>) -> Row {
        let mut row = test_row("ns", pod, &format!("reg.example/app:1.4@{A}"), Some(A));
        row.drift = Some(DriftCheck {
            tag: "reg.example/app:1.4".to_owned(),
            now: now.map(str::to_owned),
            error: error.map(str::to_owned),
        });
        row.refresh_flags();
        row
    }

    #[test]
    fn a_moved_tag_is_one_finding_per_workload_and_container_whatever_the_pods() {
        let found = findings(&[checked("a", Some(B), None), checked("a", Some(B), None)]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].reason, "TagMoved");
        assert!(
            found[0].message.starts_with(&format!(
                "reg.example/app:1.4 now points to {B}; this Pod runs {A}"
            )),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn a_tag_that_moves_again_is_a_new_finding() {
        let first = findings(&[checked("a", Some(B), None)]);
        let again = findings(&[checked("a", Some(C), None)]);
        assert_ne!(first[0].key, again[0].key);
    }

    #[test]
    fn an_unmoved_tag_or_a_registry_outage_is_no_finding() {
        assert!(findings(&[checked("a", Some(A), None)]).is_empty());
        assert!(findings(&[checked("a", None, Some("127.0.0.1:9 is unreachable"))]).is_empty());
    }
}
