//! The bench's results: one row per measured run, the budgets, a Markdown table and JSON.

use serde_json::{Value, json};

use crate::access_log::ManifestCounts;
use crate::stats::{Latency, round3};

/// One measured run against one tagpin process.
#[derive(Debug, Clone)]
pub struct Row {
    /// Scenario name (`warm`, `cold`, ...).
    pub scenario: String,
    /// `h1` or `h2`.
    pub protocol: &'static str,
    /// How the load was applied (`16 conns`, `2000/s`, ...).
    pub load: String,
    /// Requests sent.
    pub requests: u64,
    /// Failed or wrong answers.
    pub errors: u64,
    /// The first failure, if any.
    pub first_error: Option<String>,
    /// Successful requests per second.
    pub rps: f64,
    /// Latency percentiles.
    pub latency: Latency,
    /// tagpin's peak RSS during the run, MiB.
    pub peak_rss_mib: f64,
    /// tagpin's CPU seconds (user + system) during the run.
    pub cpu_seconds: f64,
    /// The load generator's CPU seconds during the run.
    pub client_cpu_seconds: f64,
    /// Registry manifest requests during the run.
    pub manifests: ManifestCounts,
}

impl Row {
    /// tagpin's CPU time per request, in microseconds: unlike req/s, it does not depend
    /// on how much of the machine other processes take.
    pub fn cpu_per_request_us(&self) -> f64 {
        self.cpu_seconds * 1e6 / (self.requests.max(1) as f64)
    }

    /// The JSON form written to results.json.
    pub fn to_json(&self) -> Value {
        json!({
            "scenario": self.scenario,
            "protocol": self.protocol,
            "load": self.load,
            "requests": self.requests,
            "errors": self.errors,
            "first_error": self.first_error,
            "rps": round3(self.rps),
            "latency": self.latency.to_json(),
            "tagpin_peak_rss_mib": round3(self.peak_rss_mib),
            "tagpin_cpu_seconds": round3(self.cpu_seconds),
            "tagpin_cpu_us_per_request": round3(self.cpu_per_request_us()),
            "client_cpu_seconds": round3(self.client_cpu_seconds),
            "registry_manifest_requests": self.manifests.to_json(),
        })
    }
}

/// One budget of issue 6 and whether this run met it.
#[derive(Debug, Clone)]
pub struct Budget {
    /// What is budgeted.
    pub name: String,
    /// The limit, as written in the README.
    pub limit: String,
    /// What was measured.
    pub measured: String,
    /// `Some(true)` met, `Some(false)` missed, `None` not measured.
    pub pass: Option<bool>,
}

impl Budget {
    /// A budget with its verdict.
    pub fn new(name: &str, limit: &str, measured: String, pass: Option<bool>) -> Self {
        Self {
            name: name.to_owned(),
            limit: limit.to_owned(),
            measured,
            pass,
        }
    }

    fn verdict(&self) -> &'static str {
        match self.pass {
            Some(true) => "pass",
            Some(false) => "MISS",
            None => "not measured",
        }
    }

    /// The JSON form written to results.json.
    pub fn to_json(&self) -> Value {
        json!({"budget": self.name, "limit": self.limit, "measured": self.measured, "pass": self.pass})
    }
}

/// The results table in Markdown.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| scenario | proto | load | requests | errors | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | tagpin peak RSS MiB | tagpin CPU s | tagpin CPU µs/req | client CPU s | manifest HEAD/GET by tag |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {:.1} | {:.2} | {:.0} | {:.2} | {}/{} |\n",
            r.scenario,
            r.protocol,
            r.load,
            r.requests,
            r.errors,
            r.rps,
            r.latency.p50,
            r.latency.p90,
            r.latency.p99,
            r.latency.p999,
            r.peak_rss_mib,
            r.cpu_seconds,
            r.cpu_per_request_us(),
            r.client_cpu_seconds,
            r.manifests.head,
            r.manifests.get,
        ));
    }
    out
}

/// The budgets table in Markdown.
pub fn budget_table(budgets: &[Budget]) -> String {
    let mut out = String::from("| budget | limit | measured | verdict |\n|---|---|---|---|\n");
    for b in budgets {
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            b.name,
            b.limit,
            b.measured,
            b.verdict()
        ));
    }
    out
}
