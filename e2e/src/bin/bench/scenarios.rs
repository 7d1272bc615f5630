//! The scenarios of issue 6, run in order against fresh `tagpin serve` processes, and the
//! budgets judged from their rows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use serde_json::{Value, json};
use tagpin_e2e::tagpin::{Tagpin, TagpinConfig};

use crate::Settings;
use crate::access_log::AccessLog;
use crate::images::{Images, Signer};
use crate::load::{self, Bodies, Expect, Protocol, Target};
use crate::process::Proc;
use crate::report::{self, Budget, Row};
use crate::reviews;
use crate::stats::{Latency, round3};

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
        let tagpin = Tagpin::start(TagpinConfig {
            extra: format!("defaultMode: enforce\n{extra}"),
            registry_credentials: true,
            // Long enough that nothing expires during the bench.
            cache_ttl_seconds: Some(3600.0),
            ..TagpinConfig::default()
        })
        .await;
        let config = tagpin.dir().join("tagpin.yaml");
        let proc = Proc::find(&config.display().to_string())?;
        let ca = tagpin.ca_pem();
        Ok(Self { tagpin, proc, ca })
    }

    fn target(&self, protocol: Protocol, expect: Expect) -> anyhow::Result<Target> {
        Target::new(&self.tagpin.url(""), &self.ca, protocol, expect)
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

fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("MemTotal:")?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map(|kib| round3(kib / 1024.0 / 1024.0));
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": model,
        "memory_gib": mem_gib,
        "loadavg_at_start": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
    })
}

/// Runs every scenario, prints the tables and writes results.json.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let machine = machine();
    let run_id = tagpin_e2e::registry::unique_suffix();
    let prefix = format!("bench-{run_id}/");
    let images = Images::new()?;
    let host = images.registry.host.clone();
    let log = AccessLog::new(&images.registry.log);
    let mut bench = Bench {
        settings: settings.clone(),
        images: images.clone(),
        log,
        prefix: prefix.clone(),
        rows: Vec::new(),
    };

    // Started first so it has idled long enough by the end.
    eprintln!("bench: starting the idle tagpin");
    let idle = Server::start("").await?;
    let idle_started = Instant::now();
    let idle_rss_start = idle.proc.rss_mib()?;

    eprintln!("bench: pushing images under {host}/{prefix}");
    let app = format!("{prefix}app");
    let n = settings.cold_requests;
    let warm_tags = tags("warm", POD_IMAGES);
    let large_tags = tags("large", LARGE_IMAGES);
    let cold_h1 = tags("cold-h1", n * POD_IMAGES);
    let cold_h2 = tags("cold-h2", n * POD_IMAGES);
    let head_tags = tags("head", 1 + n * POD_IMAGES + n);
    let burst_tag = vec!["burst-h1".to_owned(), "burst-h2".to_owned()];
    let all: Vec<String> = [
        &warm_tags,
        &large_tags,
        &cold_h1,
        &cold_h2,
        &head_tags,
        &burst_tag,
    ]
    .into_iter()
    .flatten()
    .cloned()
    .collect();
    let pushed = Instant::now();
    images.push_tags(&app, &all).await?;
    eprintln!(
        "bench: pushed {} tags in {:.1}s",
        all.len(),
        pushed.elapsed().as_secs_f64()
    );

    let warm_pod = reviews::pod("web-0", &refs(&host, &app, &warm_tags));
    let warm = fixed(reviews::create(0, &warm_pod));
    let baseline = fixed(reviews::delete(0, &warm_pod));
    let large = fixed(reviews::create(
        0,
        &reviews::pod("web-0", &refs(&host, &app, &large_tags)),
    ));
    // Every image of the burst's Pod names the same tag, new to tagpin.
    let bursts: Vec<Bodies> = refs(&host, &app, &burst_tag)
        .into_iter()
        .map(|r| {
            fixed(reviews::create(
                0,
                &reviews::pod("web-0", &vec![r; POD_IMAGES]),
            ))
        })
        .collect();

    let c = settings.connections;
    let closed = Load::Closed {
        concurrency: c,
        limit: None,
    };
    let rate = Load::Open {
        rate: settings.rate,
    };
    let serial = |n: usize| Load::Closed {
        concurrency: 1,
        limit: Some(n as u64),
    };

    eprintln!("bench: plain tagpin (no verification policy)");
    let server = Server::start("").await?;
    // Closed loop for throughput, then a fixed rate for latency; same order in the table.
    for load in [closed, rate] {
        for p in [Protocol::Http1, Protocol::Http2] {
            bench
                .measure(
                    &server,
                    "baseline",
                    p,
                    Expect::Allowed,
                    load,
                    &baseline,
                    &baseline,
                )
                .await?;
            bench
                .measure(&server, "warm", p, Expect::Patch, load, &warm, &warm)
                .await?;
        }
    }
    for p in [Protocol::Http1, Protocol::Http2] {
        bench
            .measure(
                &server,
                "large (50 images)",
                p,
                Expect::Patch,
                closed,
                &large,
                &large,
            )
            .await?;
    }
    for (p, cold_tags) in [(Protocol::Http1, &cold_h1), (Protocol::Http2, &cold_h2)] {
        let bodies = crate::scenarios::each(pods(&refs(&host, &app, cold_tags)));
        bench
            .measure(
                &server,
                "cold",
                p,
                Expect::Patch,
                serial(n),
                &baseline,
                &bodies,
            )
            .await?;
    }
    for (p, burst) in [Protocol::Http1, Protocol::Http2].into_iter().zip(&bursts) {
        let load = Load::Burst { n: settings.burst };
        bench
            .measure(
                &server,
                "burst (one new tag)",
                p,
                Expect::Patch,
                load,
                &baseline,
                burst,
            )
            .await?;
    }
    drop(server);

    eprintln!("bench: the registry's own HEAD latency");
    let single = &head_tags[..1 + n];
    let grouped = &head_tags[n..];
    let mut head1 = images.head_latency(&app, single, 1).await?;
    let mut head4 = images.head_latency(&app, grouped, POD_IMAGES).await?;
    let head1 = Latency::of(&mut head1);
    let head4 = Latency::of(&mut head4);

    let verified = verified_runs(
        &mut bench,
        &settings,
        &images,
        &prefix,
        closed,
        rate,
        serial(settings.verified_cold_requests),
    )
    .await;
    if let Err(e) = &verified {
        eprintln!("bench: verified scenarios not run: {e:#}");
    }

    let wait = settings.idle.saturating_sub(idle_started.elapsed());
    eprintln!(
        "bench: letting the idle tagpin idle {:.0}s more",
        wait.as_secs_f64()
    );
    tokio::time::sleep(wait).await;
    let idle_rss_end = idle.proc.rss_mib()?;
    let idle_peak = idle.proc.peak_rss_mib()?;
    drop(idle);

    let budgets = budgets(
        &bench.rows,
        head4,
        idle_rss_start,
        idle_rss_end,
        &settings,
        verified.is_ok(),
    );
    let table = report::table(&bench.rows);
    let budget_table = report::budget_table(&budgets);
    println!("{table}");
    println!(
        "registry HEAD (direct, keep-alive): one at a time p50 {:.3} ms p99 {:.3} ms; four at once p50 {:.3} ms p99 {:.3} ms",
        head1.p50, head1.p99, head4.p50, head4.p99
    );
    println!(
        "idle tagpin RSS: {idle_rss_start:.1} MiB after start, {idle_rss_end:.1} MiB after {:.0}s idle\n",
        idle_started.elapsed().as_secs_f64()
    );
    println!("{budget_table}");

    let results = json!({
        "machine": machine,
        "settings": {
            "seconds_per_run": settings.duration.as_secs_f64(),
            "connections": settings.connections,
            "rate": settings.rate,
            "cold_requests": settings.cold_requests,
            "verified_cold_requests": settings.verified_cold_requests,
            "burst": settings.burst,
            "idle_seconds": settings.idle.as_secs_f64(),
            "images_per_pod": POD_IMAGES,
        },
        "rows": bench.rows.iter().map(Row::to_json).collect::<Vec<_>>(),
        "registry_head": {"single": head1.to_json(), "four_at_once": head4.to_json()},
        "idle": {
            "rss_after_start_mib": round3(idle_rss_start),
            "rss_after_idle_mib": round3(idle_rss_end),
            "peak_rss_mib": round3(idle_peak),
            "idle_seconds": round3(idle_started.elapsed().as_secs_f64()),
        },
        "verified": verified.as_ref().err().map(|e| format!("not available: {e:#}")).unwrap_or_else(|| "ran".to_owned()),
        "budgets": budgets.iter().map(Budget::to_json).collect::<Vec<_>>(),
        "table_markdown": table,
        "budgets_markdown": budget_table,
    });
    if let Some(dir) = settings.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&settings.out, serde_json::to_vec_pretty(&results)?)
        .with_context(|| format!("writing {}", settings.out.display()))?;
    eprintln!("bench: wrote {}", settings.out.display());
    Ok(())
}

/// Verified warm and cold: a keyed cosign signature required on every image.
async fn verified_runs(
    bench: &mut Bench,
    settings: &Settings,
    images: &Images,
    prefix: &str,
    closed: Load,
    rate: Load,
    serial: Load,
) -> anyhow::Result<()> {
    let cosign = settings
        .cosign
        .clone()
        .context("TAGPIN_COSIGN_V2 is not set (hack/tools.sh installs cosign)")?;
    let host = images.registry.host.clone();
    let repo = format!("{prefix}signed");
    let warm_tags = tags("warm", POD_IMAGES);
    let cold_tags = tags("cold", settings.verified_cold_requests * POD_IMAGES);
    let all: Vec<String> = warm_tags.iter().chain(&cold_tags).cloned().collect();
    eprintln!(
        "bench: pushing and signing {} images with cosign",
        all.len()
    );
    let started = Instant::now();
    let digests = images.push_tags(&repo, &all).await?;
    let dir = tempfile::tempdir()?;
    let signer = Signer::generate(dir.path(), &cosign, &images.registry)?;
    let by_digest: Vec<String> = digests
        .iter()
        .map(|d| format!("{host}/{repo}@{d}"))
        .collect();
    signer.sign(&by_digest)?;
    eprintln!("bench: signed in {:.1}s", started.elapsed().as_secs_f64());

    let policy = format!(
        "verification:\n  noMatch: deny\n  rules:\n    - name: bench-signed\n      images: [\"{host}/{repo}\"]\n      signatures:\n        anyOf:\n          - name: bench-key\n            key: {{file: {}}}\n            tlog: waived\n",
        signer.public_key().display()
    );
    let server = Server::start(&policy).await?;
    let warm = fixed(reviews::create(
        0,
        &reviews::pod("web-0", &refs(&host, &repo, &warm_tags)),
    ));
    for p in [Protocol::Http1, Protocol::Http2] {
        bench
            .measure(
                &server,
                "verified warm",
                p,
                Expect::Patch,
                closed,
                &warm,
                &warm,
            )
            .await?;
    }
    bench
        .measure(
            &server,
            "verified warm",
            Protocol::Http2,
            Expect::Patch,
            rate,
            &warm,
            &warm,
        )
        .await?;
    let baseline = fixed(reviews::delete(
        0,
        &reviews::pod("web-0", &refs(&host, &repo, &warm_tags)),
    ));
    let cold = each(pods(&refs(&host, &repo, &cold_tags)));
    bench
        .measure(
            &server,
            "verified cold",
            Protocol::Http2,
            Expect::Patch,
            serial,
            &baseline,
            &cold,
        )
        .await?;
    Ok(())
}

fn find<'a>(rows: &'a [Row], scenario: &str, protocol: &str, load_prefix: &str) -> Option<&'a Row> {
    rows.iter().find(|r| {
        r.scenario == scenario && r.protocol == protocol && r.load.starts_with(load_prefix)
    })
}

fn budgets(
    rows: &[Row],
    head4: Latency,
    idle_start: f64,
    idle_end: f64,
    settings: &Settings,
    verified: bool,
) -> Vec<Budget> {
    let mut out = Vec::new();
    let conns = format!("{}", settings.connections);
    for p in ["h1", "h2"] {
        let max_prefix = if p == "h1" { conns.as_str() } else { "1 conn" };
        let warm = find(rows, "warm", p, max_prefix);
        out.push(Budget::new(
            &format!("warm throughput ({p})"),
            ">= 10000 req/s",
            warm.map(|r| {
                format!(
                    "{:.0} req/s ({:.0} µs tagpin CPU per request)",
                    r.rps,
                    r.cpu_per_request_us()
                )
            })
            .unwrap_or_default(),
            warm.map(|r| r.rps >= 10_000.0 && r.errors == 0),
        ));
        let at_rate = find(rows, "warm", p, &format!("{:.0}/s", settings.rate));
        out.push(Budget::new(
            &format!("warm p99 at {:.0} req/s ({p})", settings.rate),
            "<= 2 ms",
            at_rate
                .map(|r| format!("{:.3} ms", r.latency.p99))
                .unwrap_or_default(),
            at_rate.map(|r| r.latency.p99 <= 2.0 && r.errors == 0),
        ));
        let cold = find(rows, "cold", p, "");
        out.push(Budget::new(
            &format!("cold median added over the registry's HEAD ({p})"),
            "<= 1 ms",
            cold.map(|r| {
                format!(
                    "{:.3} ms ({:.3} ms - {:.3} ms for four HEADs at once)",
                    r.latency.p50 - head4.p50,
                    r.latency.p50,
                    head4.p50
                )
            })
            .unwrap_or_default(),
            cold.map(|r| r.latency.p50 - head4.p50 <= 1.0 && r.errors == 0),
        ));
    }
    for p in ["h1", "h2"] {
        let burst = find(rows, "burst (one new tag)", p, "");
        out.push(Budget::new(
            &format!("burst: manifest requests for the one tag ({p})"),
            "exactly 1",
            burst
                .map(|r| {
                    format!(
                        "{} ({} of {} admissions not pinned{})",
                        r.manifests.by_tag(),
                        r.errors,
                        r.requests,
                        if r.errors > 0 {
                            ", see first_error"
                        } else {
                            ""
                        }
                    )
                })
                .unwrap_or_default(),
            burst.map(|r| r.manifests.by_tag() == 1),
        ));
    }
    let gets: u64 = rows.iter().map(|r| r.manifests.get).sum();
    out.push(Budget::new(
        "manifest GET by tag (registry sends Docker-Content-Digest)",
        "0 in every scenario",
        format!("{gets}"),
        Some(gets == 0),
    ));
    for p in ["h1", "h2"] {
        let max_prefix = if p == "h1" { conns.as_str() } else { "1 conn" };
        let warm = find(rows, "warm", p, max_prefix);
        let v = find(rows, "verified warm", p, max_prefix);
        let measured = match (warm, v) {
            (Some(w), Some(v)) => format!(
                "{:.0} vs {:.0} req/s ({:+.1}%); {:.0} vs {:.0} µs CPU per request",
                v.rps,
                w.rps,
                (v.rps / w.rps - 1.0) * 100.0,
                v.cpu_per_request_us(),
                w.cpu_per_request_us()
            ),
            _ => "not available".to_owned(),
        };
        out.push(Budget::new(
            &format!("verified warm vs warm ({p})"),
            "within 10%",
            measured,
            match (warm, v) {
                (Some(w), Some(v)) if verified => Some(v.rps >= 0.9 * w.rps && v.errors == 0),
                _ => None,
            },
        ));
    }
    out.push(Budget::new(
        "idle RSS",
        "<= 20 MiB",
        format!("{idle_start:.1} MiB after start, {idle_end:.1} MiB after idling"),
        Some(idle_start <= 20.0 && idle_end <= 20.0),
    ));
    let peak = rows.iter().map(|r| r.peak_rss_mib).fold(0.0, f64::max);
    let worst = rows
        .iter()
        .max_by(|a, b| a.peak_rss_mib.total_cmp(&b.peak_rss_mib))
        .map(|r| format!(" ({} {} {})", r.scenario, r.protocol, r.load))
        .unwrap_or_default();
    out.push(Budget::new(
        "peak RSS under load",
        "<= 64 MiB",
        format!("{peak:.1} MiB{worst}"),
        Some(peak <= 64.0),
    ));
    out
}
