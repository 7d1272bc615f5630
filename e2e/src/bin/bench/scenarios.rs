//! The scenarios of issue 6, run in order against fresh `tagpin serve` processes, and the
//! budgets judged from their rows; then the cold-latency and first-admission scenarios of
//! issue 16, each group when `BENCH_SCENARIOS` names it.

mod budgets;
mod first_admission;
mod latency;
mod latency_cases;
mod latency_report;
mod plain;
mod results;
mod verified;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tagpin_e2e::tagpin::{Tagpin, TagpinConfig};

use crate::Settings;
use crate::access_log::AccessLog;
use crate::images::Images;
use crate::load::{self, Bodies, Expect, Protocol, Target};
use crate::process::Proc;
use crate::report::Row;
use crate::reviews;
use crate::stats::Latency;

/// Images per Pod: one init container and three containers.
const POD_IMAGES: usize = 4;
/// Containers of the large Pod.
const LARGE_IMAGES: usize = 50;
/// Warm-up before each measured run: opens connections, fills caches.
const WARMUP: Duration = Duration::from_millis(500);

/// How a run applies load.
#[derive(Debug, Clone, Copy)]
enum Load {
    /// `concurrency` requests back to back, for the run's length or `limit` requests.
    Closed {
        concurrency: usize,
        limit: Option<u64>,
    },
    /// A fixed rate of requests per second.
    Open { rate: f64 },
    /// `n` requests at the same instant over as many pre-opened connections.
    Burst { n: usize },
}

impl Load {
    fn describe(self, protocol: Protocol) -> String {
        match (self, protocol) {
            (Load::Closed { concurrency, .. }, Protocol::Http1) => format!("{concurrency} conns"),
            (Load::Closed { concurrency, .. }, Protocol::Http2) => {
                format!("1 conn, {concurrency} streams")
            }
            (Load::Open { rate }, Protocol::Http1) => format!("{rate:.0}/s"),
            (Load::Open { rate }, Protocol::Http2) => format!("{rate:.0}/s, 1 conn"),
            (Load::Burst { n }, Protocol::Http1) => format!("{n} at once, {n} conns"),
            (Load::Burst { n }, Protocol::Http2) => format!("{n} at once, 1 conn"),
        }
    }
}

/// A running tagpin and what the bench reads from it.
struct Server {
    tagpin: Tagpin,
    proc: Proc,
    ca: Vec<u8>,
}

impl Server {
    async fn start(extra: &str) -> anyhow::Result<Self> {
        Self::start_with(bench_config(extra)).await
    }

    async fn start_with(config: TagpinConfig) -> anyhow::Result<Self> {
        Self::of(Tagpin::start(config).await)
    }

    fn of(tagpin: Tagpin) -> anyhow::Result<Self> {
        let config = tagpin.dir().join("tagpin.yaml");
        let proc = Proc::find(&config.display().to_string())?;
        let ca = tagpin.ca_pem();
        Ok(Self { tagpin, proc, ca })
    }

    fn target(&self, protocol: Protocol, expect: Expect) -> anyhow::Result<Target> {
        Target::new(&self.tagpin.url(""), &self.ca, protocol, expect)
    }
}

/// The bench's tagpin config with `extra` YAML: enforce, the registry's credentials, and
/// a tag cache that outlives the bench.
fn bench_config(extra: &str) -> TagpinConfig {
    TagpinConfig {
        extra: format!("defaultMode: enforce\n{extra}"),
        registry_credentials: true,
        cache_ttl_seconds: Some(3600.0),
        ..TagpinConfig::default()
    }
}

/// Everything the runs share.
struct Bench {
    settings: Settings,
    images: Images,
    log: AccessLog,
    /// Repositories of this run start with it, so other users of the registry don't count.
    prefix: String,
    rows: Vec<Row>,
}

impl Bench {
    /// One measured run: warm-up, then load, with tagpin's peak RSS, CPU and the
    /// registry's manifest requests over exactly the measured part.
    #[allow(clippy::too_many_arguments)]
    async fn measure(
        &mut self,
        server: &Server,
        scenario: &str,
        protocol: Protocol,
        expect: Expect,
        load: Load,
        warmup: &Bodies,
        bodies: &Bodies,
    ) -> anyhow::Result<Row> {
        let target = server.target(protocol, expect)?;
        match load {
            Load::Burst { n } => target.warm_connections(n, warmup).await,
            _ => {
                load::closed_loop(&target, self.settings.connections, WARMUP, None, warmup).await;
            }
        }
        let offset = self.log.offset();
        server.proc.reset_peak()?;
        let (cpu0, client0) = (server.proc.cpu_seconds()?, Proc::me().cpu_seconds()?);
        let mut out = match load {
            Load::Closed { concurrency, limit } => {
                let duration = if limit.is_some() {
                    Duration::from_secs(3600)
                } else {
                    self.settings.duration
                };
                load::closed_loop(&target, concurrency, duration, limit, bodies).await
            }
            Load::Open { rate } => {
                let c = self.settings.connections;
                load::open_loop(&target, rate, c, self.settings.duration, bodies).await
            }
            Load::Burst { n } => load::burst(&target, n, bodies).await,
        };
        let cpu = server.proc.cpu_seconds()? - cpu0;
        let client_cpu = Proc::me().cpu_seconds()? - client0;
        let peak = server.proc.peak_rss_mib()?;
        self.images.settle_log(&self.log, offset).await?;
        let manifests = self.log.count_since(offset, &self.prefix);
        let row = Row {
            scenario: scenario.to_owned(),
            protocol: protocol.as_str(),
            load: load.describe(protocol),
            requests: out.requests(),
            errors: out.errors,
            first_error: out.first_error.take(),
            rps: out.rps(),
            latency: Latency::of(&mut out.latencies),
            peak_rss_mib: peak,
            cpu_seconds: cpu,
            client_cpu_seconds: client_cpu,
            manifests,
        };
        eprintln!(
            "bench: {scenario} {} {}: {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms, {} errors{}",
            row.protocol,
            row.load,
            row.rps,
            row.latency.p50,
            row.latency.p99,
            row.errors,
            row.first_error
                .as_deref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        );
        self.rows.push(row.clone());
        Ok(row)
    }
}

/// The same body for every request.
fn fixed(body: Bytes) -> Bodies {
    Arc::new(move |_| body.clone())
}

/// Request `n` gets `bodies[n]`; past the end, the last one.
fn each(bodies: Vec<Bytes>) -> Bodies {
    Arc::new(move |n| bodies[(n as usize).min(bodies.len() - 1)].clone())
}

fn tags(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

fn refs(host: &str, repository: &str, tags: &[String]) -> Vec<String> {
    tags.iter()
        .map(|t| format!("{host}/{repository}:{t}"))
        .collect()
}

/// One create review per Pod of `POD_IMAGES` consecutive images.
fn pods(images: &[String]) -> Vec<Bytes> {
    images
        .chunks(POD_IMAGES)
        .enumerate()
        .map(|(i, c)| reviews::create(i as u64, &reviews::pod(&format!("web-{i}"), c)))
        .collect()
}

/// A closed loop of `n` requests, one at a time.
fn serial(n: usize) -> Load {
    Load::Closed {
        concurrency: 1,
        limit: Some(n as u64),
    }
}

/// A tagpin started first and left alone, so it has idled long enough by the end.
struct IdleServer {
    server: Server,
    started: Instant,
    rss_start: f64,
}

impl IdleServer {
    async fn start() -> anyhow::Result<Self> {
        eprintln!("bench: starting the idle tagpin");
        let server = Server::start("").await?;
        let started = Instant::now();
        let rss_start = server.proc.rss_mib()?;
        Ok(Self {
            server,
            started,
            rss_start,
        })
    }

    /// Waits out the rest of the idle time, reads the memory and stops the server.
    async fn finish(self, idle: Duration) -> anyhow::Result<results::Idle> {
        let wait = idle.saturating_sub(self.started.elapsed());
        eprintln!(
            "bench: letting the idle tagpin idle {:.0}s more",
            wait.as_secs_f64()
        );
        tokio::time::sleep(wait).await;
        let rss_end = self.server.proc.rss_mib()?;
        let peak = self.server.proc.peak_rss_mib()?;
        drop(self.server);
        Ok(results::Idle {
            started: self.started,
            rss_start: self.rss_start,
            rss_end,
            peak,
        })
    }
}

/// Runs the scenario groups `BENCH_SCENARIOS` names, prints their tables and writes
/// results.json (throughput) and latency.json (latency, first admission).
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let prefix = format!("bench-{}/", tagpin_e2e::registry::unique_suffix());
    let images = Images::new()?;
    if settings.runs("throughput") {
        throughput(&settings, &images, &prefix).await?;
    }
    let log = AccessLog::new(&images.registry.log);
    let latency = if settings.runs("latency") {
        Some(latency::run(&settings, &images, &log, &prefix).await?)
    } else {
        None
    };
    let first = if settings.runs("first") {
        Some(first_admission::run(&settings, &images).await?)
    } else {
        None
    };
    if latency.is_some() || first.is_some() {
        latency_report::publish(&settings, latency.as_deref(), first.as_ref())?;
    }
    Ok(())
}

/// The scenarios of issue 6: results.json and its tables.
async fn throughput(settings: &Settings, images: &Images, prefix: &str) -> anyhow::Result<()> {
    let settings = settings.clone();
    let (images, prefix) = (images.clone(), prefix.to_owned());
    let machine = results::machine();
    let mut bench = Bench {
        settings: settings.clone(),
        images: images.clone(),
        log: AccessLog::new(&images.registry.log),
        prefix: prefix.clone(),
        rows: Vec::new(),
    };
    let idle = IdleServer::start().await?;
    let tags = plain::push(&images, &prefix, settings.cold_requests).await?;
    let closed = Load::Closed {
        concurrency: settings.connections,
        limit: None,
    };
    let rate = Load::Open {
        rate: settings.rate,
    };
    let plain_loads = plain::Loads {
        closed,
        rate,
        cold: serial(settings.cold_requests),
        burst: Load::Burst { n: settings.burst },
    };
    plain::run(&mut bench, &tags, &plain_loads).await?;
    let head = plain::head_latency(&images, &tags).await?;
    let verified_loads = verified::Loads {
        closed,
        rate,
        serial: serial(settings.verified_cold_requests),
    };
    let verified = verified::run(&mut bench, &settings, &images, &prefix, verified_loads).await;
    if let Err(e) = &verified {
        eprintln!("bench: verified scenarios not run: {e:#}");
    }
    let idle = idle.finish(settings.idle).await?;
    let budgets = budgets::judge(
        &bench.rows,
        &budgets::Inputs {
            head4: head[1],
            idle_start: idle.rss_start,
            idle_end: idle.rss_end,
            settings: &settings,
            verified: verified.is_ok(),
        },
    );
    results::Results {
        machine,
        settings: &settings,
        rows: &bench.rows,
        head,
        idle,
        verified: &verified,
        budgets,
    }
    .publish()
}
