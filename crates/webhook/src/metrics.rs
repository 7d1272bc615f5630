//! Prometheus metrics of the webhook, encoded in the text exposition format.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::resolving::ImageResolver;

/// Labels of the admission request counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    kind: String,
    outcome: String,
}

/// Labels of the image verdict counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct VerdictLabels {
    verdict: String,
}

/// Labels of the rejected HTTP request counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RejectLabels {
    reason: String,
}

/// Labels of the config reload counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReloadLabels {
    result: String,
}

/// Every metric tagpin exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    rejected: Family<RejectLabels, Counter>,
    verdicts: Family<VerdictLabels, Counter>,
    latency: Histogram,
    in_flight: Gauge,
    reloads: Family<ReloadLabels, Counter>,
    reload_failing: Gauge,
}

/// Decrements the in-flight gauge when the request ends, however it ends.
pub struct InFlight<'a>(&'a Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    /// Registers every metric; resolver counters are read from `resolver` at each scrape.
    pub fn new(resolver: Arc<dyn ImageResolver>) -> Self {
        let mut registry = Registry::with_prefix("tagpin");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "admission_requests",
            "Admission requests answered, by object kind and outcome",
            requests.clone(),
        );
        let rejected = Family::<RejectLabels, Counter>::default();
        registry.register(
            "http_rejected_requests",
            "HTTP requests rejected before admission (too large, malformed)",
            rejected.clone(),
        );
        let verdicts = Family::<VerdictLabels, Counter>::default();
        registry.register(
            "image_verdicts",
            "Image fields looked at in admission, by verification verdict",
            verdicts.clone(),
        );
        let latency = Histogram::new(exponential_buckets(0.005, 2.0, 12));
        registry.register(
            "admission_duration_seconds",
            "Time to answer one admission request",
            latency.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "admission_in_flight",
            "Admission requests being answered",
            in_flight.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Reloads of the config after it or a file it names changed, by result (ok, error)",
            reloads.clone(),
        );
        let reload_failing = Gauge::default();
        registry.register(
            "config_reload_failing",
            "1 while the newest config or a file it names is unusable and the previous config serves",
            reload_failing.clone(),
        );
        registry.register_collector(Box::new(ResolverCollector(resolver)));
        Self {
            registry,
            requests,
            rejected,
            verdicts,
            latency,
            in_flight,
            reloads,
            reload_failing,
        }
    }

    /// Records one config reload: applied (`ok`) or refused, keeping the running config.
    pub fn config_reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.reloads
            .get_or_create(&ReloadLabels {
                result: result.to_owned(),
            })
            .inc();
        self.reload_failing.set(i64::from(!ok));
    }

    /// Counts one request as in flight until the guard drops.
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight(&self.in_flight)
    }

    /// Records an answered admission request.
    pub fn observe(&self, kind: &str, outcome: &str, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                kind: kind.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        self.latency.observe(elapsed.as_secs_f64());
    }

    /// Counts the verdict of one image field.
    pub fn verdict(&self, verdict: &str) {
        self.verdicts
            .get_or_create(&VerdictLabels {
                verdict: verdict.to_owned(),
            })
            .inc();
    }

    /// Records a request rejected before admission.
    pub fn reject(&self, reason: &str) {
        self.rejected
            .get_or_create(&RejectLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// The metrics in Prometheus text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Reads the resolver's monotonic counters at scrape time.
pub(crate) struct ResolverCollector(pub(crate) Arc<dyn ImageResolver>);

impl std::fmt::Debug for ResolverCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResolverCollector")
    }
}

impl Collector for ResolverCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(stats) = self.0.stats() else {
            return Ok(());
        };
        let hits = ConstCounter::new(stats.cache_hits);
        hits.encode(encoder.encode_descriptor(
            "resolver_cache_hits",
            "Tag lookups answered from the resolver's cache",
            None,
            hits.metric_type(),
        )?)?;
        let misses = ConstCounter::new(stats.cache_misses);
        misses.encode(encoder.encode_descriptor(
            "resolver_cache_misses",
            "Tag lookups that asked a registry",
            None,
            misses.metric_type(),
        )?)?;
        let mut family = encoder.encode_descriptor(
            "registry_requests",
            "Requests sent to registries, by result",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (result, count) in &stats.registry_requests {
            let labels = [("result", *result)];
            ConstCounter::new(*count).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
