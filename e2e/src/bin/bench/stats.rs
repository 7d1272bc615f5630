//! Latency percentiles of one load run.

use std::time::Duration;

use serde_json::{Value, json};

/// Percentiles of a set of request latencies, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Slowest request.
    pub max: f64,
}

impl Latency {
    /// Summarises `samples` (any order); all zero when there are none.
    pub fn of(samples: &mut [Duration]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let at = |q: f64| {
            // Nearest rank: the smallest sample with at least q of all samples at or below it.
            let rank = (q * samples.len() as f64).ceil() as usize;
            ms(samples[rank.clamp(1, samples.len()) - 1])
        };
        Self {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: ms(samples[samples.len() - 1]),
        }
    }

    /// The JSON form written to results.json.
    pub fn to_json(self) -> Value {
        json!({
            "p50_ms": round3(self.p50),
            "p90_ms": round3(self.p90),
            "p99_ms": round3(self.p99),
            "p99_9_ms": round3(self.p999),
            "max_ms": round3(self.max),
        })
    }
}

/// Milliseconds of `d` as a float.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `v` rounded to three decimals, for readable JSON.
pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut s: Vec<Duration> = (1..=1000).map(Duration::from_micros).collect();
        let l = Latency::of(&mut s);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(l.p50, 0.5), "{l:?}");
        assert!(close(l.p90, 0.9), "{l:?}");
        assert!(close(l.p99, 0.99), "{l:?}");
        assert!(close(l.p999, 0.999), "{l:?}");
        assert!(close(l.max, 1.0), "{l:?}");
    }
}
