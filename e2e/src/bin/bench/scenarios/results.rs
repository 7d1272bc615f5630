//! What the bench prints and writes: the machine, the tables and results.json.

use std::time::Instant;

use anyhow::Context as _;
use serde_json::{Value, json};

use super::POD_IMAGES;
use crate::Settings;
use crate::report::{self, Budget, Row};
use crate::stats::{Latency, round3};

/// The idle tagpin's memory, before and after idling.
pub(super) struct Idle {
    pub started: Instant,
    pub rss_start: f64,
    pub rss_end: f64,
    pub peak: f64,
}

/// Everything measured, ready to print and write.
pub(super) struct Results<'a> {
    pub machine: Value,
    pub settings: &'a Settings,
    pub rows: &'a [Row],
    pub head: [Latency; 2],
    pub idle: Idle,
    pub verified: &'a anyhow::Result<()>,
    pub budgets: Vec<Budget>,
}

/// The machine the bench runs on, for results.json.
pub(super) fn machine() -> Value {
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

impl Results<'_> {
    /// Prints the tables, then writes results.json.
    pub(super) fn publish(&self) -> anyhow::Result<()> {
        let table = report::table(self.rows);
        let budget_table = report::budget_table(&self.budgets);
        self.print(&table, &budget_table);
        self.write(self.to_json(table, budget_table))
    }

    fn print(&self, table: &str, budget_table: &str) {
        let [head1, head4] = self.head;
        let idle = &self.idle;
        println!("{table}");
        println!(
            "registry HEAD (direct, keep-alive): one at a time p50 {:.3} ms p99 {:.3} ms; four at once p50 {:.3} ms p99 {:.3} ms",
            head1.p50, head1.p99, head4.p50, head4.p99
        );
        println!(
            "idle tagpin RSS: {:.1} MiB after start, {:.1} MiB after {:.0}s idle\n",
            idle.rss_start,
            idle.rss_end,
            idle.started.elapsed().as_secs_f64()
        );
        println!("{budget_table}");
    }

    fn to_json(&self, table: String, budget_table: String) -> Value {
        let settings = self.settings;
        let [head1, head4] = self.head;
        let idle = &self.idle;
        json!({
            "machine": self.machine,
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
            "rows": self.rows.iter().map(Row::to_json).collect::<Vec<_>>(),
            "registry_head": {"single": head1.to_json(), "four_at_once": head4.to_json()},
            "idle": {
                "rss_after_start_mib": round3(idle.rss_start),
                "rss_after_idle_mib": round3(idle.rss_end),
                "peak_rss_mib": round3(idle.peak),
                "idle_seconds": round3(idle.started.elapsed().as_secs_f64()),
            },
            "verified": self.verified.as_ref().err().map(|e| format!("not available: {e:#}")).unwrap_or_else(|| "ran".to_owned()),
            "budgets": self.budgets.iter().map(Budget::to_json).collect::<Vec<_>>(),
            "table_markdown": table,
            "budgets_markdown": budget_table,
        })
    }

    fn write(&self, results: Value) -> anyhow::Result<()> {
        let out = &self.settings.out;
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(out, serde_json::to_vec_pretty(&results)?)
            .with_context(|| format!("writing {}", out.display()))?;
        eprintln!("bench: wrote {}", out.display());
        Ok(())
    }
}
