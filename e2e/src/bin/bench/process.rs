//! Memory and CPU time of a running process, read from `/proc`.

use std::path::Path;

use anyhow::Context as _;

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ, 100 on Linux).
const CLOCK_TICKS: f64 = 100.0;

/// A process observed through `/proc/<pid>`.
#[derive(Debug, Clone, Copy)]
pub struct Proc {
    /// Its pid.
    pub pid: u32,
}

impl Proc {
    /// The process whose command line contains `needle` (e.g. its config file path).
    pub fn find(needle: &str) -> anyhow::Result<Self> {
        for entry in std::fs::read_dir("/proc")?.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(needle) && pid != std::process::id() {
                return Ok(Self { pid });
            }
        }
        anyhow::bail!("no process has {needle:?} on its command line")
    }

    /// This process.
    pub fn me() -> Self {
        Self {
            pid: std::process::id(),
        }
    }

    fn status_kib(&self, field: &str) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/status", self.pid);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        text.lines()
            .find_map(|l| {
                l.strip_prefix(field)?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse()
                    .ok()
            })
            .with_context(|| format!("{path} has no {field}"))
    }

    /// Resident set size now, in MiB.
    pub fn rss_mib(&self) -> anyhow::Result<f64> {
        Ok(self.status_kib("VmRSS:")? as f64 / 1024.0)
    }

    /// Peak resident set size (since start or the last [`Proc::reset_peak`]), in MiB.
    pub fn peak_rss_mib(&self) -> anyhow::Result<f64> {
        Ok(self.status_kib("VmHWM:")? as f64 / 1024.0)
    }

    /// Resets the peak RSS to the current RSS, so the next reading covers one scenario.
    pub fn reset_peak(&self) -> anyhow::Result<()> {
        let path = format!("/proc/{}/clear_refs", self.pid);
        std::fs::write(Path::new(&path), "5").with_context(|| format!("writing {path}"))
    }

    /// User plus system CPU time so far, in seconds.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let path = format!("/proc/{}/stat", self.pid);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        // Fields after the parenthesised command name, which may itself contain spaces.
        let rest = text
            .rsplit_once(')')
            .map(|(_, r)| r)
            .with_context(|| format!("{path} is malformed"))?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of stat; `rest` starts at field 3.
        let tick = |i: usize| -> anyhow::Result<f64> {
            Ok(fields
                .get(i - 3)
                .with_context(|| format!("{path} has no field {i}"))?
                .parse::<f64>()?)
        };
        Ok((tick(14)? + tick(15)?) / CLOCK_TICKS)
    }
}
