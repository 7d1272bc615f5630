//! The plain scenarios, with no verification policy: baseline, warm, large, cold and burst,
//! and the registry's own HEAD latency to compare cold against.

use std::time::Instant;

use super::{Bench, LARGE_IMAGES, Load, POD_IMAGES, Server, each, fixed, pods, refs, tags};
use crate::images::Images;
use crate::load::{Bodies, Expect, Protocol};
use crate::reviews;
use crate::stats::Latency;

const PROTOCOLS: [Protocol; 2] = [Protocol::Http1, Protocol::Http2];

/// The tags pushed for the plain scenarios, under one repository.
pub(super) struct Tags {
    host: String,
    app: String,
    /// Cold requests per protocol.
    n: usize,
    warm: Vec<String>,
    large: Vec<String>,
    cold_h1: Vec<String>,
    cold_h2: Vec<String>,
    head: Vec<String>,
    burst: Vec<String>,
}

/// The loads of the plain scenarios.
pub(super) struct Loads {
    pub closed: Load,
    pub rate: Load,
    pub cold: Load,
    pub burst: Load,
}

/// Pushes every tag the plain scenarios and the HEAD measurement use.
pub(super) async fn push(
    images: &Images,
    prefix: &str,
    cold_requests: usize,
) -> anyhow::Result<Tags> {
    let host = images.registry.host.clone();
    eprintln!("bench: pushing images under {host}/{prefix}");
    let n = cold_requests;
    let tags = Tags {
        app: format!("{prefix}app"),
        host,
        n,
        warm: tags("warm", POD_IMAGES),
        large: tags("large", LARGE_IMAGES),
        cold_h1: tags("cold-h1", n * POD_IMAGES),
        cold_h2: tags("cold-h2", n * POD_IMAGES),
        head: tags("head", 1 + n * POD_IMAGES + n),
        burst: vec!["burst-h1".to_owned(), "burst-h2".to_owned()],
    };
    let all: Vec<String> = [
        &tags.warm,
        &tags.large,
        &tags.cold_h1,
        &tags.cold_h2,
        &tags.head,
        &tags.burst,
    ]
    .into_iter()
    .flatten()
    .cloned()
    .collect();
    let pushed = Instant::now();
    images.push_tags(&tags.app, &all).await?;
    eprintln!(
        "bench: pushed {} tags in {:.1}s",
        all.len(),
        pushed.elapsed().as_secs_f64()
    );
    Ok(tags)
}

/// The request bodies of the plain scenarios.
struct Reviews {
    warm: Bodies,
    baseline: Bodies,
    large: Bodies,
    /// One per protocol: every image of the burst's Pod names the same tag, new to tagpin.
    bursts: Vec<Bodies>,
}

impl Reviews {
    fn new(tags: &Tags) -> Self {
        let (host, app) = (&tags.host, &tags.app);
        let warm_pod = reviews::pod("web-0", &refs(host, app, &tags.warm));
        let large_pod = reviews::pod("web-0", &refs(host, app, &tags.large));
        let bursts = refs(host, app, &tags.burst)
            .into_iter()
            .map(|r| {
                fixed(reviews::create(
                    0,
                    &reviews::pod("web-0", &vec![r; POD_IMAGES]),
                ))
            })
            .collect();
        Self {
            warm: fixed(reviews::create(0, &warm_pod)),
            baseline: fixed(reviews::delete(0, &warm_pod)),
            large: fixed(reviews::create(0, &large_pod)),
            bursts,
        }
    }
}

/// Runs the plain scenarios against one tagpin with no verification policy.
pub(super) async fn run(bench: &mut Bench, tags: &Tags, loads: &Loads) -> anyhow::Result<()> {
    let reviews = Reviews::new(tags);
    eprintln!("bench: plain tagpin (no verification policy)");
    let server = Server::start("").await?;
    measure_steady(bench, &server, &reviews, loads).await?;
    measure_large(bench, &server, &reviews, loads.closed).await?;
    measure_cold(bench, &server, &reviews, tags, loads.cold).await?;
    measure_burst(bench, &server, &reviews, loads.burst).await
}

/// Baseline and warm: a closed loop for throughput, then a fixed rate for latency; same
/// order in the table.
async fn measure_steady(
    bench: &mut Bench,
    server: &Server,
    reviews: &Reviews,
    loads: &Loads,
) -> anyhow::Result<()> {
    let Reviews { warm, baseline, .. } = reviews;
    for load in [loads.closed, loads.rate] {
        for p in PROTOCOLS {
            bench
                .measure(
                    server,
                    "baseline",
                    p,
                    Expect::Allowed,
                    load,
                    baseline,
                    baseline,
                )
                .await?;
            bench
                .measure(server, "warm", p, Expect::Patch, load, warm, warm)
                .await?;
        }
    }
    Ok(())
}

async fn measure_large(
    bench: &mut Bench,
    server: &Server,
    reviews: &Reviews,
    closed: Load,
) -> anyhow::Result<()> {
    for p in PROTOCOLS {
        bench
            .measure(
                server,
                "large (50 images)",
                p,
                Expect::Patch,
                closed,
                &reviews.large,
                &reviews.large,
            )
            .await?;
    }
    Ok(())
}

/// Every request names tags tagpin has not seen, one at a time.
async fn measure_cold(
    bench: &mut Bench,
    server: &Server,
    reviews: &Reviews,
    tags: &Tags,
    serial: Load,
) -> anyhow::Result<()> {
    for (p, cold_tags) in PROTOCOLS.into_iter().zip([&tags.cold_h1, &tags.cold_h2]) {
        let bodies = each(pods(&refs(&tags.host, &tags.app, cold_tags)));
        bench
            .measure(
                server,
                "cold",
                p,
                Expect::Patch,
                serial,
                &reviews.baseline,
                &bodies,
            )
            .await?;
    }
    Ok(())
}

async fn measure_burst(
    bench: &mut Bench,
    server: &Server,
    reviews: &Reviews,
    load: Load,
) -> anyhow::Result<()> {
    for (p, burst) in PROTOCOLS.into_iter().zip(&reviews.bursts) {
        bench
            .measure(
                server,
                "burst (one new tag)",
                p,
                Expect::Patch,
                load,
                &reviews.baseline,
                burst,
            )
            .await?;
    }
    Ok(())
}

/// The registry's own HEAD latency, one at a time and four at once.
pub(super) async fn head_latency(images: &Images, tags: &Tags) -> anyhow::Result<[Latency; 2]> {
    eprintln!("bench: the registry's own HEAD latency");
    let n = tags.n;
    let single = &tags.head[..1 + n];
    let grouped = &tags.head[n..];
    let mut head1 = images.head_latency(&tags.app, single, 1).await?;
    let mut head4 = images.head_latency(&tags.app, grouped, POD_IMAGES).await?;
    Ok([Latency::of(&mut head1), Latency::of(&mut head4)])
}
