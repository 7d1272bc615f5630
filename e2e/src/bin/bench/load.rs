//! Drives AdmissionReviews at tagpin over keep-alive HTTPS connections: closed loop (as
//! fast as the connections allow), open loop (a fixed request rate) and a burst.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;

/// Which HTTP version the connections speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1: one request at a time per connection.
    Http1,
    /// HTTP/2: requests multiplexed as streams on one connection.
    Http2,
}

impl Protocol {
    /// `h1` or `h2`, as the table shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http1 => "h1",
            Self::Http2 => "h2",
        }
    }
}

/// What a correct answer contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Allowed with a JSON patch (images pinned).
    Patch,
    /// Allowed, nothing to pin.
    Allowed,
}

/// The body of request number `n`.
pub type Bodies = Arc<dyn Fn(u64) -> Bytes + Send + Sync>;

/// tagpin's `/mutate` over one client (one connection pool).
#[derive(Clone)]
pub struct Target {
    url: String,
    client: reqwest::Client,
    expect: Expect,
}

/// Latencies and failures of one run.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Latency of every successful request.
    pub latencies: Vec<Duration>,
    /// Requests that failed or got a wrong answer.
    pub errors: u64,
    /// The first failure, to show what went wrong.
    pub first_error: Option<String>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Outcome {
    fn merge(&mut self, other: Outcome) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn record(&mut self, result: Result<Duration, String>) {
        match result {
            Ok(d) => self.latencies.push(d),
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }

    /// Requests answered, failed ones included.
    pub fn requests(&self) -> u64 {
        self.latencies.len() as u64 + self.errors
    }

    /// Successful requests per second of wall time.
    pub fn rps(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl Target {
    /// A client for `base` (`https://127.0.0.1:port`) trusting only `ca_pem`.
    pub fn new(
        base: &str,
        ca_pem: &[u8],
        protocol: Protocol,
        expect: Expect,
    ) -> anyhow::Result<Self> {
        let ca = reqwest::Certificate::from_pem(ca_pem).context("tagpin's CA is not PEM")?;
        let builder = reqwest::Client::builder()
            .tls_certs_only([ca])
            .timeout(Duration::from_secs(30))
            .pool_idle_timeout(None)
            .pool_max_idle_per_host(usize::MAX);
        let builder = match protocol {
            Protocol::Http1 => builder.http1_only(),
            Protocol::Http2 => builder.http2_prior_knowledge(),
        };
        Ok(Self {
            url: format!("{base}/mutate"),
            client: builder.build().context("building the load client")?,
            expect,
        })
    }

    /// Sends one review and checks the answer; the latency on success.
    pub async fn send(&self, body: Bytes) -> Result<Duration, String> {
        let started = Instant::now();
        let res = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("POST /mutate: {e:#}"))?;
        let status = res.status();
        let answer = res
            .bytes()
            .await
            .map_err(|e| format!("reading the answer: {e:#}"))?;
        let elapsed = started.elapsed();
        if status != reqwest::StatusCode::OK {
            return Err(format!("{status}: {}", String::from_utf8_lossy(&answer)));
        }
        let ok = contains(&answer, b"\"allowed\":true")
            && (self.expect == Expect::Allowed || contains(&answer, b"\"patch\":"));
        if ok {
            Ok(elapsed)
        } else {
            Err(format!(
                "unexpected answer: {}",
                String::from_utf8_lossy(&answer)
            ))
        }
    }

    /// Opens `n` connections (HTTP/1.1) by sending `n` concurrent requests, so a later
    /// burst does not pay for TLS handshakes.
    pub async fn warm_connections(&self, n: usize, bodies: &Bodies) {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..n {
            let t = self.clone();
            let body = bodies(i as u64);
            set.spawn(async move { t.send(body).await });
        }
        while set.join_next().await.is_some() {}
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `concurrency` workers send back to back until `duration` passes or `limit` requests
/// have been sent.
pub async fn closed_loop(
    target: &Target,
    concurrency: usize,
    duration: Duration,
    limit: Option<u64>,
    bodies: &Bodies,
) -> Outcome {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (t, next, bodies) = (target.clone(), next.clone(), bodies.clone());
        set.spawn(async move {
            let mut out = Outcome::default();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if limit.is_some_and(|l| n >= l) || Instant::now() >= deadline {
                    return out;
                }
                out.record(t.send(bodies(n)).await);
            }
        });
    }
    let mut total = Outcome::default();
    while let Some(done) = set.join_next().await {
        if let Ok(out) = done {
            total.merge(out);
        }
    }
    total.elapsed = started.elapsed();
    total
}

/// Starts requests at `rate` per second for `duration` from at most `connections`
/// workers (HTTP/1.1 connections or HTTP/2 streams): request `n` is due at `n / rate`
/// and starts then, or as soon as a worker is free when tagpin falls behind. Latency is
/// measured from the start of each request; the achieved rate shows any shortfall.
pub async fn open_loop(
    target: &Target,
    rate: f64,
    connections: usize,
    duration: Duration,
    bodies: &Bodies,
) -> Outcome {
    let total = (rate * duration.as_secs_f64()).round() as u64;
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (t, next, bodies) = (target.clone(), next.clone(), bodies.clone());
        set.spawn(async move {
            let mut out = Outcome::default();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return out;
                }
                let due = started + Duration::from_secs_f64(n as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
                out.record(t.send(bodies(n)).await);
            }
        });
    }
    let mut out = Outcome::default();
    while let Some(done) = set.join_next().await {
        if let Ok(worker) = done {
            out.merge(worker);
        }
    }
    out.elapsed = started.elapsed();
    out
}

/// Sends `n` requests at the same instant (each on its own task) and waits for all.
pub async fn burst(target: &Target, n: usize, bodies: &Bodies) -> Outcome {
    let gate = Arc::new(tokio::sync::Barrier::new(n));
    let mut set = tokio::task::JoinSet::new();
    let started = Instant::now();
    for i in 0..n {
        let (t, body, gate) = (target.clone(), bodies(i as u64), gate.clone());
        set.spawn(async move {
            gate.wait().await;
            t.send(body).await
        });
    }
    let mut out = Outcome::default();
    while let Some(done) = set.join_next().await {
        out.record(done.unwrap_or_else(|e| Err(e.to_string())));
    }
    out.elapsed = started.elapsed();
    out
}
