//! The budgets of issue 6, judged from the measured rows.

use crate::Settings;
use crate::report::{Budget, Row};
use crate::stats::Latency;

/// What the budgets are judged from besides the rows.
pub(super) struct Inputs<'a> {
    pub head4: Latency,
    pub idle_start: f64,
    pub idle_end: f64,
    pub settings: &'a Settings,
    pub verified: bool,
}

/// Every budget, in the order of the budget table.
pub(super) fn judge(rows: &[Row], inputs: &Inputs) -> Vec<Budget> {
    let mut out = Vec::new();
    for p in ["h1", "h2"] {
        out.extend(warm_and_cold(rows, p, inputs));
    }
    for p in ["h1", "h2"] {
        out.push(burst(rows, p));
    }
    out.push(no_get_by_tag(rows));
    for p in ["h1", "h2"] {
        out.push(verified_vs_warm(rows, p, inputs));
    }
    out.push(idle_rss(inputs));
    out.push(peak_rss(rows));
    out
}

fn find<'a>(rows: &'a [Row], scenario: &str, protocol: &str, load_prefix: &str) -> Option<&'a Row> {
    rows.iter().find(|r| {
        r.scenario == scenario && r.protocol == protocol && r.load.starts_with(load_prefix)
    })
}

/// The load of the closed-loop run at full concurrency, as `Load::describe` writes it.
fn max_prefix(p: &str, settings: &Settings) -> String {
    if p == "h1" {
        format!("{}", settings.connections)
    } else {
        "1 conn".to_owned()
    }
}

/// Warm throughput, warm p99 at the fixed rate and the cold median over the registry's HEAD.
fn warm_and_cold(rows: &[Row], p: &str, inputs: &Inputs) -> [Budget; 3] {
    let settings = inputs.settings;
    let head4 = inputs.head4;
    let warm = find(rows, "warm", p, &max_prefix(p, settings));
    let throughput = Budget::new(
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
    );
    let at_rate = find(rows, "warm", p, &format!("{:.0}/s", settings.rate));
    let p99 = Budget::new(
        &format!("warm p99 at {:.0} req/s ({p})", settings.rate),
        "<= 2 ms",
        at_rate
            .map(|r| format!("{:.3} ms", r.latency.p99))
            .unwrap_or_default(),
        at_rate.map(|r| r.latency.p99 <= 2.0 && r.errors == 0),
    );
    let cold = find(rows, "cold", p, "");
    let cold = Budget::new(
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
    );
    [throughput, p99, cold]
}

/// The burst's one new tag costs exactly one manifest request.
fn burst(rows: &[Row], p: &str) -> Budget {
    let burst = find(rows, "burst (one new tag)", p, "");
    Budget::new(
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
    )
}

fn no_get_by_tag(rows: &[Row]) -> Budget {
    let gets: u64 = rows.iter().map(|r| r.manifests.get).sum();
    Budget::new(
        "manifest GET by tag (registry sends Docker-Content-Digest)",
        "0 in every scenario",
        format!("{gets}"),
        Some(gets == 0),
    )
}

fn verified_vs_warm(rows: &[Row], p: &str, inputs: &Inputs) -> Budget {
    let max_prefix = max_prefix(p, inputs.settings);
    let warm = find(rows, "warm", p, &max_prefix);
    let v = find(rows, "verified warm", p, &max_prefix);
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
    Budget::new(
        &format!("verified warm vs warm ({p})"),
        "within 10%",
        measured,
        match (warm, v) {
            (Some(w), Some(v)) if inputs.verified => Some(v.rps >= 0.9 * w.rps && v.errors == 0),
            _ => None,
        },
    )
}

fn idle_rss(inputs: &Inputs) -> Budget {
    let (idle_start, idle_end) = (inputs.idle_start, inputs.idle_end);
    Budget::new(
        "idle RSS",
        "<= 20 MiB",
        format!("{idle_start:.1} MiB after start, {idle_end:.1} MiB after idling"),
        Some(idle_start <= 20.0 && idle_end <= 20.0),
    )
}

fn peak_rss(rows: &[Row]) -> Budget {
    let peak = rows.iter().map(|r| r.peak_rss_mib).fold(0.0, f64::max);
    let worst = rows
        .iter()
        .max_by(|a, b| a.peak_rss_mib.total_cmp(&b.peak_rss_mib))
        .map(|r| format!(" ({} {} {})", r.scenario, r.protocol, r.load))
        .unwrap_or_default();
    Budget::new(
        "peak RSS under load",
        "<= 64 MiB",
        format!("{peak:.1} MiB{worst}"),
        Some(peak <= 64.0),
    )
}
