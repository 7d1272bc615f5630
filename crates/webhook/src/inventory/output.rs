//! Printing the inventory: an aligned table for people, JSON and CSV for tools, the
//! one-line summary, and a progress line on a terminal.

use std::io::{self, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

use super::digests::DigestGroup;
use super::rows::{ContainerType, Row, Summary};

/// Hex characters of a digest shown in tables (as `docker images` shortens IDs).
const SHORT_HEX: usize = 12;
/// Work items from which a progress line is worth showing.
const PROGRESS_FROM: usize = 200;

/// Output format of `tagpin inventory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns, digests shortened, summary as the last line.
    Table,
    /// One JSON document with full digests and the summary.
    Json,
    /// CSV with a header row and full digests; the summary goes to stderr.
    Csv,
}

/// Which checks ran, so the table shows their columns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Columns {
    /// `--drift` ran.
    pub drift: bool,
    /// `--verify` ran.
    pub verify: bool,
    /// Several clusters were read.
    pub cluster: bool,
}

#[derive(Serialize)]
struct ContainersDoc<'a> {
    containers: &'a [&'a Row],
    summary: &'a Summary,
}

#[derive(Serialize)]
struct DigestsDoc<'a> {
    digests: &'a [DigestGroup],
    summary: &'a Summary,
}

#[derive(Serialize)]
struct DigestDoc<'a> {
    digest: &'a DigestGroup,
    containers: &'a [&'a Row],
    summary: &'a Summary,
}

/// Prints container rows in `format`.
pub fn containers(
    out: &mut dyn Write,
    format: Format,
    columns: Columns,
    rows: &[&Row],
    summary: &Summary,
) -> io::Result<()> {
    match format {
        Format::Table => {
            table(out, &container_table(columns, rows))?;
            writeln!(out, "{}", summary.line())
        }
        Format::Json => json(
            out,
            &ContainersDoc {
                containers: rows,
                summary,
            },
        ),
        Format::Csv => {
            csv(out, rows)?;
            eprintln!("{}", summary.line());
            Ok(())
        }
    }
}

/// Prints the by-digest view in `format`.
pub fn digests(
    out: &mut dyn Write,
    format: Format,
    groups: &[DigestGroup],
    summary: &Summary,
) -> io::Result<()> {
    match format {
        Format::Table => {
            let mut lines = vec![cells(&[
                "DIGEST",
                "NAMES",
                "CONTAINERS",
                "WORKLOADS",
                "RUNNING-SINCE",
                "PINNED-SINCE",
            ])];
            for g in groups {
                lines.push(vec![
                    short(&g.digest),
                    g.names.join(","),
                    g.containers.to_string(),
                    g.workloads.join(","),
                    dash(g.running_since.as_deref()),
                    dash(g.pinned_since.as_deref()),
                ]);
            }
            table(out, &lines)?;
            writeln!(out, "{}", summary.line())
        }
        Format::Json => json(
            out,
            &DigestsDoc {
                digests: groups,
                summary,
            },
        ),
        Format::Csv => {
            let mut w = CsvWriter(out);
            w.record(&[
                "digest",
                "names",
                "containers",
                "workloads",
                "running_since",
                "pinned_since",
            ])?;
            for g in groups {
                w.record(&[
                    &g.digest,
                    &g.names.join(" "),
                    &g.containers.to_string(),
                    &g.workloads.join(" "),
                    g.running_since.as_deref().unwrap_or_default(),
                    g.pinned_since.as_deref().unwrap_or_default(),
                ])?;
            }
            eprintln!("{}", summary.line());
            Ok(())
        }
    }
}

/// Prints where one digest runs: its group, then its containers.
pub fn digest(
    out: &mut dyn Write,
    format: Format,
    columns: Columns,
    group: &DigestGroup,
    rows: &[&Row],
    summary: &Summary,
) -> io::Result<()> {
    match format {
        Format::Table => {
            writeln!(
                out,
                "{} runs in {} container(s) of {} workload(s) under {}; running since {}; pinned since {}",
                group.digest,
                group.containers,
                group.workloads.len(),
                if group.names.is_empty() {
                    "no name".to_owned()
                } else {
                    group.names.join(", ")
                },
                dash(group.running_since.as_deref()),
                dash(group.pinned_since.as_deref()),
            )?;
            containers(out, format, columns, rows, summary)
        }
        Format::Json => json(
            out,
            &DigestDoc {
                digest: group,
                containers: rows,
                summary,
            },
        ),
        Format::Csv => containers(out, format, columns, rows, summary),
    }
}

fn json(out: &mut dyn Write, doc: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, doc)?;
    writeln!(out)
}

fn container_table(columns: Columns, rows: &[&Row]) -> Vec<Vec<String>> {
    let mut header = Vec::new();
    if columns.cluster {
        header.push("CLUSTER");
    }
    header.extend([
        "NAMESPACE",
        "OWNER",
        "POD",
        "CONTAINER",
        "IMAGE",
        "RUNNING",
        "ORIGINAL",
        "RESOLVED",
        "VERDICT",
        "RULE",
        "SIGNERS",
    ]);
    if columns.drift {
        header.push("TAG-NOW");
    }
    if columns.verify {
        header.push("TODAY");
    }
    header.push("FLAGS");
    let mut lines = vec![cells(&header)];
    for r in rows {
        let mut line = Vec::new();
        if columns.cluster {
            line.push(dash(r.cluster.as_deref()));
        }
        let container = match r.container_type {
            ContainerType::Regular => r.container.clone(),
            other => format!("{} ({})", r.container, other.as_str()),
        };
        line.extend([
            r.namespace.clone(),
            format!("{}/{}", r.owner_kind, r.owner_name),
            r.pod.clone(),
            container,
            short_image(&r.image),
            r.running_digest.as_deref().map(short).unwrap_or("-".into()),
            dash(r.original.as_deref()),
            dash(r.resolved_at.as_deref()),
            dash(r.verdict.as_deref()),
            dash(r.rule.as_deref()),
            if r.signers.is_empty() {
                "-".to_owned()
            } else {
                r.signers
                    .iter()
                    .map(|s| short(s))
                    .collect::<Vec<_>>()
                    .join(",")
            },
        ]);
        if columns.drift {
            line.push(match &r.drift {
                Some(d) if d.error.is_some() => "error".to_owned(),
                Some(d) => d.now.as_deref().map(short).unwrap_or("-".into()),
                None => "-".to_owned(),
            });
        }
        if columns.verify {
            line.push(match &r.today {
                Some(t) if t.error.is_some() => "error".to_owned(),
                Some(t) => dash(t.verdict.as_deref()),
                None => "-".to_owned(),
            });
        }
        line.push(if r.flags.is_empty() {
            "-".to_owned()
        } else {
            r.flags
                .iter()
                .map(|f| f.as_str())
                .collect::<Vec<_>>()
                .join(",")
        });
        lines.push(line);
    }
    lines
}

fn csv(out: &mut dyn Write, rows: &[&Row]) -> io::Result<()> {
    let mut w = CsvWriter(out);
    w.record(&[
        "cluster",
        "namespace",
        "owner_kind",
        "owner_name",
        "pod",
        "container",
        "container_type",
        "image",
        "pinned_digest",
        "running_digest",
        "started_at",
        "record_from",
        "original",
        "recorded_digest",
        "resolved_at",
        "verdict",
        "rule",
        "signers",
        "tag_now",
        "drift_error",
        "verdict_today",
        "verify_error",
        "elsewhere",
        "flags",
    ])?;
    for r in rows {
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        let flags: Vec<&str> = r.flags.iter().map(|f| f.as_str()).collect();
        w.record(&[
            &opt(&r.cluster),
            &r.namespace,
            &r.owner_kind,
            &r.owner_name,
            &r.pod,
            &r.container,
            r.container_type.as_str(),
            &r.image,
            &opt(&r.pinned_digest),
            &opt(&r.running_digest),
            &opt(&r.started_at),
            &opt(&r.record_from),
            &opt(&r.original),
            &opt(&r.recorded_digest),
            &opt(&r.resolved_at),
            &opt(&r.verdict),
            &opt(&r.rule),
            &r.signers.join(" "),
            &r.drift
                .as_ref()
                .and_then(|d| d.now.clone())
                .unwrap_or_default(),
            &r.drift
                .as_ref()
                .and_then(|d| d.error.clone())
                .unwrap_or_default(),
            &r.today
                .as_ref()
                .and_then(|t| t.verdict.clone())
                .unwrap_or_default(),
            &r.today
                .as_ref()
                .and_then(|t| t.error.clone())
                .unwrap_or_default(),
            &flags.join(" "),
        ])?;
    }
    Ok(())
}

/// RFC 4180 records: fields with a comma, quote or line break are quoted, quotes doubled.
struct CsvWriter<'a>(&'a mut dyn Write);

impl CsvWriter<'_> {
    fn record(&mut self, fields: &[&str]) -> io::Result<()> {
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        write!(self.0, "{}\r\n", line.join(","))
    }
}

fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

fn cells(header: &[&str]) -> Vec<String> {
    header.iter().map(|h| (*h).to_owned()).collect()
}

fn dash(value: Option<&str>) -> String {
    value.filter(|v| !v.is_empty()).unwrap_or("-").to_owned()
}

/// Writes `lines` with every column padded to its widest cell.
fn table(out: &mut dyn Write, lines: &[Vec<String>]) -> io::Result<()> {
    let columns = lines.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            lines
                .iter()
                .filter_map(|l| l.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for line in lines {
        let mut text = String::new();
        for (i, cell) in line.iter().enumerate() {
            if i + 1 == line.len() {
                text.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count()) + 2;
                text.push_str(cell);
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        writeln!(out, "{}", text.trim_end())?;
    }
    Ok(())
}

/// `sha256:` and the first hex characters of a digest or key fingerprint.
fn short(digest: &str) -> String {
    match digest.split_once(':') {
        Some((algorithm, hex))
            if hex.len() > SHORT_HEX && hex.chars().all(|c| c.is_ascii_hexdigit()) =>
        {
            format!("{algorithm}:{}", &hex[..SHORT_HEX])
        }
        _ => digest.to_owned(),
    }
}

/// The image as written with its digest shortened.
fn short_image(image: &str) -> String {
    match image.rsplit_once('@') {
        Some((base, digest)) => format!("{base}@{}", short(digest)),
        None => image.to_owned(),
    }
}

/// A progress line on stderr, shown only on a terminal and for enough work to be worth it.
pub struct Progress {
    enabled: bool,
    what: Mutex<&'static str>,
    total: AtomicUsize,
    done: AtomicUsize,
}

impl Progress {
    /// Progress reporting, shown when `terminal` is true.
    pub fn new(terminal: bool) -> Self {
        Self {
            enabled: terminal,
            what: Mutex::new(""),
            total: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
        }
    }

    /// Starts a phase of `total` items.
    pub fn start(&self, what: &'static str, total: usize) {
        if let Ok(mut w) = self.what.lock() {
            *w = what;
        }
        self.total.store(total, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
    }

    /// One item of the phase is done.
    pub fn step(&self) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let total = self.total.load(Ordering::Relaxed);
        if self.enabled && total >= PROGRESS_FROM && (done.is_multiple_of(50) || done == total) {
            let what = self.what.lock().map(|w| *w).unwrap_or_default();
            eprint!("\r\x1b[2K{what}: {done}/{total}");
        }
    }

    /// Clears the line at the end of a phase.
    pub fn finish(&self) {
        if self.enabled && self.total.load(Ordering::Relaxed) >= PROGRESS_FROM {
            eprint!("\r\x1b[2K");
        }
    }

    /// A one-off message (e.g. while listing a large cluster).
    pub fn note(&self, message: &str) {
        if self.enabled {
            eprint!("\r\x1b[2K{message}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::rows::test_row;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn rows() -> Vec<Row> {
        let mut pinned = test_row("shop", "web", &format!("reg/app:1.4@{A}"), Some(A));
        pinned.original = Some("reg/app:1.4".into());
        pinned.record_from = Some("Pod/web".into());
        pinned.verdict = Some("verified".into());
        pinned.signers = vec![format!("sha256:{}", "5".repeat(64))];
        pinned.refresh_flags();
        let odd = test_row("shop", "tool", "reg/tool:\"x\",y", None);
        vec![pinned, odd]
    }

    fn text(f: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> String {
        let mut out = Vec::new();
        f(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn table_aligns_columns_shortens_digests_and_ends_with_the_summary() {
        let rows = rows();
        let refs: Vec<&Row> = rows.iter().collect();
        let summary = Summary::of(&rows);
        let out = text(|o| containers(o, Format::Table, Columns::default(), &refs, &summary));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert!(
            lines[0].starts_with("NAMESPACE  OWNER     POD   CONTAINER  IMAGE"),
            "{out}"
        );
        assert!(
            lines[1].contains("reg/app:1.4@sha256:aaaaaaaaaaaa  sha256:aaaaaaaaaaaa"),
            "{out}"
        );
        assert!(lines[1].contains("sha256:555555555555"), "{out}");
        assert!(lines[1].ends_with("  -"), "{out}");
        assert!(lines[2].ends_with("unpinned,no-record"), "{out}");
        // Every column starts at the same offset on every line.
        let at = lines[0].find("IMAGE").unwrap();
        assert_eq!(&lines[1][at..at + 3], "reg");
        assert_eq!(lines[3], summary.line());
        assert!(
            !out.contains(&A[20..]),
            "table digests are shortened: {out}"
        );
    }

    #[test]
    fn csv_has_full_digests_and_quotes_what_needs_quoting() {
        let rows = rows();
        let refs: Vec<&Row> = rows.iter().collect();
        let out = text(|o| {
            containers(
                o,
                Format::Csv,
                Columns::default(),
                &refs,
                &Summary::of(&rows),
            )
        });
        let lines: Vec<&str> = out.split("\r\n").collect();
        assert!(lines[0].starts_with("cluster,namespace,owner_kind,owner_name,pod,container,"));
        assert_eq!(lines[0].split(',').count(), 24);
        assert!(
            lines[1].contains(&format!(",reg/app:1.4@{A},{A},{A},")),
            "{out}"
        );
        assert!(lines[2].contains(r#","reg/tool:""x"",y","#), "{out}");
        assert!(lines[2].ends_with(",unpinned no-record"), "{out}");
    }

    #[test]
    fn json_carries_rows_flags_and_summary() {
        let rows = rows();
        let refs: Vec<&Row> = rows.iter().collect();
        let summary = Summary::of(&rows);
        let out = text(|o| containers(o, Format::Json, Columns::default(), &refs, &summary));
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(doc["containers"][0]["runningDigest"], A);
        assert_eq!(doc["containers"][0]["ownerKind"], "Pod");
        assert_eq!(doc["containers"][0]["containerType"], "regular");
        assert_eq!(
            doc["containers"][1]["flags"],
            serde_json::json!(["unpinned", "no-record"])
        );
        assert_eq!(doc["summary"]["containers"], 2);
        assert_eq!(doc["summary"]["unpinned"], 1);
    }
}
