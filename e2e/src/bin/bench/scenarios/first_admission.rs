//! The first admission after a fresh start against a warm admission on a new connection:
//! tagpin is started, left alone until its log says it is ready (so no probe did its first
//! TLS handshake), then sent one review on a new connection, then more, each on a new
//! connection of its own. The review names images by digest, so no registry is asked and
//! what differs is tagpin's one-time work.

use std::time::Duration;

use serde_json::{Value, json};
use tagpin_e2e::tagpin::{Tagpin, TagpinConfig};

use crate::Settings;
use crate::images::Images;
use crate::load::{Expect, Protocol, Target};
use crate::reviews;
use crate::stats::{Latency, round3};

/// Warm admissions on new connections per start.
const LATER: usize = 20;

/// What the first-admission runs measured.
#[derive(Debug, Clone)]
pub struct FirstAdmission {
    /// Fresh starts.
    pub starts: usize,
    /// The first admission of each start.
    pub first: Latency,
    /// Later admissions, each on a new connection.
    pub later: Latency,
    /// How many later admissions were timed.
    pub later_count: usize,
    /// How long tagpin's warm-up took, as it logged it.
    pub warm_up_ms: Latency,
}

impl FirstAdmission {
    /// The first admission's median over the later ones'.
    pub fn added_ms(&self) -> f64 {
        self.first.p50 - self.later.p50
    }

    /// The JSON form written to latency.json.
    pub fn to_json(&self) -> Value {
        json!({
            "starts": self.starts,
            "first": self.first.to_json(),
            "later_on_new_connections": self.later.to_json(),
            "added_ms": round3(self.added_ms()),
            "warm_up_ms": self.warm_up_ms.to_json(),
        })
    }
}

/// Starts tagpin `settings.first_starts` times and times its admissions.
pub(super) async fn run(settings: &Settings, images: &Images) -> anyhow::Result<FirstAdmission> {
    // The bench's own first TLS handshake (its crypto's start-up) happens here, untimed.
    images.ping().await?;
    let image = format!(
        "{}/bench/first@sha256:{}",
        images.registry.host,
        "0123456789abcdef".repeat(4)
    );
    let review = reviews::create(0, &reviews::pod("first", &[image]));
    let (mut first, mut later, mut warm_up) = (Vec::new(), Vec::new(), Vec::new());
    for start in 0..settings.first_starts {
        eprintln!("bench: first admission, start {}", start + 1);
        let tagpin = Tagpin::start_untouched(TagpinConfig {
            extra: "defaultMode: enforce\n".to_owned(),
            ..TagpinConfig::default()
        })
        .await;
        let ca = tagpin.ca_pem();
        let base = tagpin.url("");
        // Each client is built before its clock starts: only the request is timed.
        let target = Target::new(&base, &ca, Protocol::Http2, Expect::Allowed)?;
        first.push(send(&target, &review).await?);
        for _ in 0..LATER {
            let target = Target::new(&base, &ca, Protocol::Http2, Expect::Allowed)?;
            later.push(send(&target, &review).await?);
        }
        if let Some(ms) = logged_warm_up(&tagpin.log()) {
            warm_up.push(Duration::from_secs_f64(ms / 1000.0));
        }
    }
    Ok(FirstAdmission {
        starts: settings.first_starts,
        first: Latency::of(&mut first),
        later_count: later.len(),
        later: Latency::of(&mut later),
        warm_up_ms: Latency::of(&mut warm_up),
    })
}

async fn send(target: &Target, review: &bytes::Bytes) -> anyhow::Result<Duration> {
    target
        .send(review.clone())
        .await
        .map_err(|e| anyhow::anyhow!("first-admission review failed: {e}"))
}

/// The `milliseconds` of tagpin's `warmed up` log line (JSON).
fn logged_warm_up(log: &str) -> Option<f64> {
    log.lines()
        .filter(|l| l.contains("warmed up"))
        .find_map(|l| serde_json::from_str::<Value>(l).ok())
        .and_then(|v| v["milliseconds"].as_f64())
}
