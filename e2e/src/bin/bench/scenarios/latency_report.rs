//! The latency and first-admission results: Markdown tables on stdout and latency.json
//! beside results.json.

use anyhow::Context as _;
use serde_json::{Value, json};

use super::first_admission::FirstAdmission;
use super::latency::LatencyRow;
use super::results;
use crate::Settings;
use crate::stats::round3;

/// Prints the tables and writes latency.json.
pub(super) fn publish(
    settings: &Settings,
    rows: Option<&[LatencyRow]>,
    first: Option<&FirstAdmission>,
) -> anyhow::Result<()> {
    let table = rows.map(table).unwrap_or_default();
    let first_table = first.map(first_table).unwrap_or_default();
    println!("{table}");
    println!("{first_table}");
    let out = settings.out.with_file_name("latency.json");
    let json = json!({
        "machine": results::machine(),
        "samples_per_case": settings.latency_samples,
        "rows": rows.unwrap_or_default().iter().map(row_json).collect::<Vec<_>>(),
        "first_admission": first.map(FirstAdmission::to_json),
        "table_markdown": table,
        "first_admission_markdown": first_table,
    });
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, serde_json::to_vec_pretty(&json)?)
        .with_context(|| format!("writing {}", out.display()))?;
    eprintln!("bench: wrote {}", out.display());
    Ok(())
}

fn rounds(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}"))
}

fn verdict(pass: Option<bool>) -> &'static str {
    match pass {
        Some(true) => "pass",
        Some(false) => "MISS",
        None => "-",
    }
}

/// One row per case and round-trip time.
fn table(rows: &[LatencyRow]) -> String {
    let mut out = String::from(
        "| RTT ms | cold admission | images | admissions | errors | p50 ms | p99 ms | p50 ÷ RTT | p99 ÷ RTT | (p50 − p50 at 0 ms) ÷ RTT | registry requests per admission | budget (round trips) | verdict |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {:.0} | {} | {} | {} | {} | {:.1} | {:.1} | {} | {} | {} | {:.1} | {} | {} |\n",
            r.rtt.as_secs_f64() * 1000.0,
            r.case,
            r.images,
            r.admissions,
            r.errors,
            r.latency.p50,
            r.latency.p99,
            rounds(r.rounds_p50()),
            rounds(r.rounds_p99()),
            rounds(r.net_rounds_p50()),
            r.requests,
            r.budget,
            verdict(r.pass()),
        ));
    }
    out
}

fn row_json(r: &LatencyRow) -> Value {
    json!({
        "rtt_ms": round3(r.rtt.as_secs_f64() * 1000.0),
        "case": r.case,
        "images": r.images,
        "admissions": r.admissions,
        "errors": r.errors,
        "latency": r.latency.to_json(),
        "rounds_p50": r.rounds_p50().map(round3),
        "rounds_p99": r.rounds_p99().map(round3),
        "net_rounds_p50": r.net_rounds_p50().map(round3),
        "registry_requests_per_admission": round3(r.requests),
        "budget_round_trips": r.budget,
        "pass": r.pass(),
    })
}

/// The first admission after a start against later ones on new connections.
fn first_table(f: &FirstAdmission) -> String {
    let added = f.added_ms();
    format!(
        "| admission | starts | p50 ms | max ms |\n|---|---:|---:|---:|\n| first after a fresh start (new connection) | {} | {:.2} | {:.2} |\n| later, each on a new connection | {} | {:.2} | {:.2} |\n\nfirst admission adds {added:.2} ms over a warm one on a new connection (budget: within 2 ms: {}); tagpin's warm-up before ready took p50 {:.1} ms\n",
        f.starts,
        f.first.p50,
        f.first.max,
        f.later_count,
        f.later.p50,
        f.later.max,
        if added <= 2.0 { "pass" } else { "MISS" },
        f.warm_up_ms.p50,
    )
}
