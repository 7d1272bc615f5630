//! Metrics of `tagpin watch`, with the names and encoding of the webhook's (`tagpin_` prefix).

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::metrics::ResolverCollector;
use crate::resolving::ImageResolver;

/// A container of a workload.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ContainerLabels {
    /// The workload's namespace.
    pub namespace: String,
    /// The top-level owner's kind.
    pub kind: String,
    /// The top-level owner's name.
    pub workload: String,
    /// The container.
    pub container: String,
}

/// Which re-check.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CheckLabels {
    check: String,
}

/// Every metric `tagpin watch` exports.
#[derive(Debug)]
pub struct WatchMetrics {
    registry: Registry,
    drift: Family<ContainerLabels, Gauge>,
    violations: Family<ContainerLabels, Gauge>,
    checks: Family<CheckLabels, Counter>,
    errors: Family<CheckLabels, Counter>,
    rounds: Counter,
    leader: Gauge,
}

impl WatchMetrics {
    /// Registers every metric; registry request counters are read from `resolver`.
    pub fn new(resolver: Arc<dyn ImageResolver>) -> Self {
        let mut registry = Registry::with_prefix("tagpin");
        let drift = Family::<ContainerLabels, Gauge>::default();
        registry.register(
            "tag_drift",
            "1 when the container's original tag now points to another digest than the one it runs",
            drift.clone(),
        );
        let violations = Family::<ContainerLabels, Gauge>::default();
        registry.register(
            "policy_violation",
            "1 when the current policy denies the digest the container runs",
            violations.clone(),
        );
        let checks = Family::<CheckLabels, Counter>::default();
        registry.register(
            "watch_checks",
            "Distinct tags re-resolved (check=drift) and digests re-verified (check=policy)",
            checks.clone(),
        );
        let errors = Family::<CheckLabels, Counter>::default();
        registry.register(
            "watch_errors",
            "Re-checks that reached no answer (registry outage, bad config), by check",
            errors.clone(),
        );
        let rounds = Counter::default();
        registry.register("watch_rounds", "Rounds of checks run", rounds.clone());
        let leader = Gauge::default();
        registry.register(
            "watch_leader",
            "1 when this replica holds the Lease and reports",
            leader.clone(),
        );
        registry.register_collector(Box::new(ResolverCollector(resolver)));
        Self {
            registry,
            drift,
            violations,
            checks,
            errors,
            rounds,
            leader,
        }
    }

    /// Replaces the per-container gauges with this round's answers (gone containers vanish).
    pub fn set_containers(
        &self,
        drift: &[(ContainerLabels, bool)],
        violations: &[(ContainerLabels, bool)],
    ) {
        self.drift.clear();
        for (labels, drifted) in drift {
            self.drift.get_or_create(labels).set(i64::from(*drifted));
        }
        self.violations.clear();
        for (labels, denied) in violations {
            self.violations
                .get_or_create(labels)
                .set(i64::from(*denied));
        }
    }

    /// Counts `checks` re-checks of kind `check`, `errors` of them without an answer.
    pub fn checked(&self, check: &str, checks: usize, errors: usize) {
        let labels = CheckLabels {
            check: check.to_owned(),
        };
        self.checks.get_or_create(&labels).inc_by(checks as u64);
        self.errors.get_or_create(&labels).inc_by(errors as u64);
    }

    /// Counts one error of kind `check`.
    pub fn error(&self, check: &str) {
        self.checked(check, 0, 1);
    }

    /// Counts a finished round.
    pub fn round(&self) {
        self.rounds.inc();
    }

    /// Whether this replica leads.
    pub fn leading(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// The metrics in Prometheus text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
