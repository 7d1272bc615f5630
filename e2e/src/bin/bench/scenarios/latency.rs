//! Cold admissions against the real registry made distant: a loopback proxy
//! (`tagpin_e2e::delay_proxy`) delays every byte by half a round-trip time each way. For
//! each round-trip time a fresh tagpin, warmed up by one admission (connection, challenge,
//! what the registry serves), admits each case's cold Pods one at a time.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use tagpin_e2e::delay_proxy::DelayProxy;

use super::latency_cases::{self, Case};
use super::{Server, bench_config};
use crate::Settings;
use crate::access_log::AccessLog;
use crate::images::Images;
use crate::load::{Expect, Protocol};
use crate::stats::Latency;

/// One case at one round-trip time.
#[derive(Debug, Clone)]
pub struct LatencyRow {
    /// The round-trip time the proxy added.
    pub rtt: Duration,
    /// The case.
    pub case: String,
    /// Images per admission.
    pub images: usize,
    /// Admissions measured.
    pub admissions: usize,
    /// Failed admissions.
    pub errors: u64,
    /// Admission latency.
    pub latency: Latency,
    /// Registry requests per admission (from its access log).
    pub requests: f64,
    /// Sequential round trips it may take.
    pub budget: usize,
    /// The median of the same case with no delay added: the registry's and tagpin's own
    /// time, when that was measured.
    pub baseline_p50: Option<f64>,
}

impl LatencyRow {
    /// Sequential round trips the median implies: latency ÷ RTT.
    pub fn rounds_p50(&self) -> Option<f64> {
        self.rounds(self.latency.p50)
    }

    /// Sequential round trips the 99th percentile implies.
    pub fn rounds_p99(&self) -> Option<f64> {
        self.rounds(self.latency.p99)
    }

    fn rounds(&self, ms: f64) -> Option<f64> {
        let rtt = self.rtt.as_secs_f64() * 1000.0;
        (rtt > 0.0).then(|| ms / rtt)
    }

    /// Round trips the median implies once the time the same case takes with no delay is
    /// taken off: (latency − latency at 0 ms) ÷ RTT.
    pub fn net_rounds_p50(&self) -> Option<f64> {
        self.rounds(self.latency.p50 - self.baseline_p50?)
    }

    /// Within budget when the median's round trips, net of the no-delay time when it was
    /// measured, round to at most the budget.
    pub fn pass(&self) -> Option<bool> {
        self.net_rounds_p50()
            .or(self.rounds_p50())
            .map(|r| r <= self.budget as f64 + 0.5 && self.errors == 0)
    }
}

/// Prepares the cases, then measures every case at every round-trip time.
pub(super) async fn run(
    settings: &Settings,
    images: &Images,
    log: &AccessLog,
    prefix: &str,
) -> anyhow::Result<Vec<LatencyRow>> {
    let upstream: SocketAddr = images
        .registry
        .host
        .parse()
        .context("the registry's host is not an address")?;
    let proxy = DelayProxy::start(upstream, Duration::ZERO).await?;
    let host = proxy.addr.to_string();
    let cases = latency_cases::prepare(settings, images, prefix, &host).await?;
    let mut rows = Vec::new();
    for &rtt in &settings.latency_rtts {
        proxy.set_delay(rtt / 2);
        eprintln!(
            "bench: latency at {:.0} ms round trip",
            rtt.as_secs_f64() * 1000.0
        );
        let mut config = bench_config(&cases.policy);
        config.registry_aliases = vec![host.clone()];
        let server = Server::start_with(config).await?;
        let target = server.target(Protocol::Http2, Expect::Patch)?;
        target
            .send(cases.warm.clone())
            .await
            .map_err(|e| anyhow::anyhow!("warm-up admission failed: {e}"))?;
        for case in &cases.cases {
            rows.push(measure(images, log, &target, case, rtt).await?);
        }
    }
    proxy.set_delay(Duration::ZERO);
    let baselines: Vec<(String, f64)> = rows
        .iter()
        .filter(|r| r.rtt.is_zero())
        .map(|r| (r.case.clone(), r.latency.p50))
        .collect();
    for row in &mut rows {
        row.baseline_p50 = baselines
            .iter()
            .find(|(case, _)| *case == row.case)
            .map(|(_, p50)| *p50);
    }
    Ok(rows)
}

/// Admits the case's reviews one after another and counts its registry requests.
async fn measure(
    images: &Images,
    log: &AccessLog,
    target: &crate::load::Target,
    case: &Case,
    rtt: Duration,
) -> anyhow::Result<LatencyRow> {
    let offset = log.offset();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for review in &case.reviews {
        match target.send(review.clone()).await {
            Ok(took) => latencies.push(took),
            Err(e) => {
                if errors == 0 {
                    eprintln!("bench: {}: {e}", case.name);
                }
                errors += 1;
            }
        }
    }
    images.settle_log(log, offset).await?;
    let requests = log.requests_since(offset, &format!("{}/", case.repository));
    let row = LatencyRow {
        rtt,
        case: case.name.clone(),
        images: case.images,
        admissions: case.reviews.len(),
        errors,
        latency: Latency::of(&mut latencies),
        requests: requests as f64 / case.reviews.len().max(1) as f64,
        budget: case.budget,
        baseline_p50: None,
    };
    eprintln!(
        "bench: {} at {:.0} ms: p50 {:.1} ms, p99 {:.1} ms, {:.1} registry requests each",
        row.case,
        rtt.as_secs_f64() * 1000.0,
        row.latency.p50,
        row.latency.p99,
        row.requests
    );
    Ok(row)
}
