//! `bench`: measures `tagpin serve` (the binary in `$TAGPIN_BIN`) against the real TLS
//! registry that `hack/registry.sh` started, and writes `results.json` plus a Markdown
//! table. Run it through `hack/bench.sh`, which builds and starts everything first.
//!
//! Settings (environment): `BENCH_SCENARIOS` (which groups run, comma-separated:
//! `throughput` (the scenarios of issue 6), `latency` (cold admissions behind a delaying
//! proxy), `first` (the first admission after a start); all by default),
//! `BENCH_SECONDS` per run (3), `BENCH_CONNECTIONS` (16),
//! `BENCH_RATE` requests/s of the fixed-rate runs (2000), `BENCH_COLD_REQUESTS` (150),
//! `BENCH_VERIFIED_COLD_REQUESTS` (30),
//! `BENCH_BURST` (1000), `BENCH_IDLE_SECONDS` (60), `BENCH_CLIENT_THREADS` (2),
//! `BENCH_LATENCY_RTTS_MS` (round-trip times the proxy adds, `0,25,50,100,200`),
//! `BENCH_LATENCY_SAMPLES` (cold admissions per case and round-trip time, 20),
//! `BENCH_FIRST_STARTS` (fresh starts of the first-admission scenario, 5),
//! `BENCH_OUT` (results file; `latency.json` is written beside it),
//! `TAGPIN_COSIGN_V2` and `TAGPIN_COSIGN_V3` (cosign, for the verified runs).
//!
//! `bench load URL CA_PEM BODY h1|h2 [SECONDS] [CONCURRENCY]` only drives load at a running
//! tagpin (for profiling it) and prints the outcome: BODY is one review file sent over and
//! over, or a directory of review files each sent once.

mod access_log;
mod images;
mod load;
mod process;
mod report;
mod reviews;
mod scenarios;
mod stats;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

/// Knobs of one bench run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Length of each closed- or open-loop run.
    pub duration: Duration,
    /// Concurrent requests of the closed-loop runs (HTTP/1.1 connections, HTTP/2 streams).
    pub connections: usize,
    /// Requests per second of the fixed-rate runs.
    pub rate: f64,
    /// Requests of each cold run (each names four tags never asked for before).
    pub cold_requests: usize,
    /// Requests of the verified cold run (each image signed by cosign beforehand).
    pub verified_cold_requests: usize,
    /// Concurrent admissions of the burst.
    pub burst: usize,
    /// How long the idle tagpin idles before its RSS is read again.
    pub idle: Duration,
    /// Where results.json goes.
    pub out: PathBuf,
    /// cosign v2, for the verified runs.
    pub cosign: Option<PathBuf>,
    /// cosign v3, for the latency runs' bundles.
    pub cosign_v3: Option<PathBuf>,
    /// The scenario groups to run.
    pub scenarios: Vec<String>,
    /// Round-trip times the latency runs add to the registry.
    pub latency_rtts: Vec<Duration>,
    /// Cold admissions per latency case and round-trip time.
    pub latency_samples: usize,
    /// Fresh starts of the first-admission scenario.
    pub first_starts: usize,
}

impl Settings {
    /// Whether scenario group `name` runs.
    pub fn runs(&self, name: &str) -> bool {
        self.scenarios.iter().any(|s| s == name)
    }
}

/// The scenario groups, in the order they run.
const SCENARIO_GROUPS: [&str; 3] = ["throughput", "latency", "first"];

fn scenario_groups() -> anyhow::Result<Vec<String>> {
    let wanted = env_or("BENCH_SCENARIOS", SCENARIO_GROUPS.join(","))?;
    let groups: Vec<String> = wanted
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some(unknown) = groups
        .iter()
        .find(|g| !SCENARIO_GROUPS.contains(&g.as_str()))
    {
        anyhow::bail!(
            "BENCH_SCENARIOS names {unknown:?}; the groups are {}",
            SCENARIO_GROUPS.join(", ")
        );
    }
    Ok(groups)
}

fn rtts() -> anyhow::Result<Vec<Duration>> {
    env_or("BENCH_LATENCY_RTTS_MS", "0,25,50,100,200".to_owned())?
        .split(',')
        .map(|ms| {
            let ms: f64 = ms.trim().parse().map_err(|_| {
                anyhow::anyhow!("BENCH_LATENCY_RTTS_MS: {ms:?} is not milliseconds")
            })?;
            Duration::try_from_secs_f64(ms / 1000.0)
                .map_err(|_| anyhow::anyhow!("BENCH_LATENCY_RTTS_MS: {ms} is not a duration"))
        })
        .collect()
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}={v:?} is not a valid value")),
        Err(_) => Ok(default),
    }
}

fn settings() -> anyhow::Result<Settings> {
    Ok(Settings {
        duration: Duration::from_secs_f64(env_or("BENCH_SECONDS", 3.0)?),
        connections: env_or("BENCH_CONNECTIONS", 16)?,
        rate: env_or("BENCH_RATE", 2000.0)?,
        cold_requests: env_or("BENCH_COLD_REQUESTS", 150)?,
        verified_cold_requests: env_or("BENCH_VERIFIED_COLD_REQUESTS", 30)?,
        burst: env_or("BENCH_BURST", 1000)?,
        idle: Duration::from_secs_f64(env_or("BENCH_IDLE_SECONDS", 60.0)?),
        out: PathBuf::from(env_or(
            "BENCH_OUT",
            tagpin_e2e::env::repo_root()
                .join(".tagpin/bench/results.json")
                .display()
                .to_string(),
        )?),
        cosign: std::env::var_os("TAGPIN_COSIGN_V2").map(PathBuf::from),
        cosign_v3: std::env::var_os("TAGPIN_COSIGN_V3").map(PathBuf::from),
        scenarios: scenario_groups()?,
        latency_rtts: rtts()?,
        latency_samples: env_or("BENCH_LATENCY_SAMPLES", 20)?,
        first_starts: env_or("BENCH_FIRST_STARTS", 5)?,
    })
}

fn main() -> anyhow::Result<()> {
    let settings = settings()?;
    let threads = env_or("BENCH_CLIENT_THREADS", 2)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("starting the load generator's runtime")?;
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("load") {
        return runtime.block_on(load_only(&args[1..], settings.connections));
    }
    runtime.block_on(scenarios::run(settings))
}

/// `bench load`: one closed-loop run of one body, for profiling a running tagpin.
async fn load_only(args: &[String], connections: usize) -> anyhow::Result<()> {
    let usage = "usage: bench load URL CA_PEM BODY_FILE_OR_DIR h1|h2 [SECONDS] [CONCURRENCY]";
    let [url, ca, body, proto, rest @ ..] = args else {
        anyhow::bail!(usage);
    };
    let protocol = match proto.as_str() {
        "h1" => load::Protocol::Http1,
        "h2" => load::Protocol::Http2,
        _ => anyhow::bail!(usage),
    };
    let seconds: f64 = rest.first().map_or(Ok(5.0), |s| s.parse())?;
    let concurrency: usize = rest.get(1).map_or(Ok(connections), |s| s.parse())?;
    let ca = std::fs::read(ca).with_context(|| format!("reading {ca}"))?;
    // A directory holds one body per request (e.g. cold ones), sent once each in name order.
    let files: Vec<PathBuf> = if std::path::Path::new(body).is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(body)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        files.sort();
        files
    } else {
        vec![PathBuf::from(body)]
    };
    let mut all = Vec::new();
    for f in &files {
        all.push(bytes::Bytes::from(
            std::fs::read(f).with_context(|| format!("reading {}", f.display()))?,
        ));
    }
    let limit = (all.len() > 1).then_some(all.len() as u64);
    let target = load::Target::new(url, &ca, protocol, load::Expect::Allowed)?;
    let bodies: load::Bodies = std::sync::Arc::new(move |n| all[n as usize % all.len()].clone());
    let mut out = load::closed_loop(
        &target,
        concurrency,
        Duration::from_secs_f64(seconds),
        limit,
        &bodies,
    )
    .await;
    let l = stats::Latency::of(&mut out.latencies);
    println!(
        "{} requests, {} errors, {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms{}",
        out.requests(),
        out.errors,
        out.rps(),
        l.p50,
        l.p99,
        out.first_error
            .map(|e| format!(" (first error: {e})"))
            .unwrap_or_default()
    );
    Ok(())
}
