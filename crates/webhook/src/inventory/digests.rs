//! Digest-centred views for forensics: every container grouped by the digest it runs,
//! across repositories and names (a mirror or a republished copy is the same artifact).

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use k8s_openapi::jiff::Timestamp;
use serde::Serialize;
use tagpin_resolver::ImageReference;

use super::rows::Row;

/// Every container running one digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DigestGroup {
    /// The digest.
    pub digest: String,
    /// The names it runs under (`registry/repository[:tag]`), sorted.
    pub names: Vec<String>,
    /// Containers running it.
    pub containers: usize,
    /// Top-level owners running it (`namespace/Kind/name`, with the cluster when several).
    pub workloads: Vec<String>,
    /// The earliest start the kubelet reports among them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running_since: Option<String>,
    /// The earliest time tagpin resolved a tag to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned_since: Option<String>,
}

/// Rows grouped by the digest they run (the kubelet's, else the one written), sorted by
/// digest; rows with neither are left out (they are counted as unpinned in the summary).
pub fn by_digest(rows: &[Row]) -> Vec<DigestGroup> {
    let mut groups: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for row in rows {
        if let Some(digest) = row.effective_digest() {
            groups.entry(digest).or_default().push(row);
        }
    }
    groups
        .into_iter()
        .map(|(digest, rows)| group(digest, &rows))
        .collect()
}

/// Rows that involve `digest`: running it, pinned to it, or recorded with it.
pub fn involving<'a>(rows: &'a [Row], digest: &str) -> Vec<&'a Row> {
    rows.iter()
        .filter(|r| {
            [&r.running_digest, &r.pinned_digest, &r.recorded_digest]
                .iter()
                .any(|d| d.as_deref() == Some(digest))
        })
        .collect()
}

/// The group of `rows` for `digest`.
pub fn group(digest: &str, rows: &[&Row]) -> DigestGroup {
    let names: BTreeSet<String> = rows
        .iter()
        .flat_map(|r| [Some(r.image.as_str()), r.original.as_deref()])
        .flatten()
        .filter_map(name_of)
        .collect();
    let workloads: BTreeSet<String> = rows
        .iter()
        .map(|r| {
            let base = format!("{}/{}/{}", r.namespace, r.owner_kind, r.owner_name);
            match &r.cluster {
                Some(c) => format!("{c}:{base}"),
                None => base,
            }
        })
        .collect();
    DigestGroup {
        digest: digest.to_owned(),
        names: names.into_iter().collect(),
        containers: rows.len(),
        workloads: workloads.into_iter().collect(),
        running_since: earliest(rows.iter().filter_map(|r| r.started_at.as_deref())),
        pinned_since: earliest(rows.iter().filter_map(|r| r.resolved_at.as_deref())),
    }
}

/// `registry/repository[:tag]` of a reference, without its digest.
fn name_of(image: &str) -> Option<String> {
    let reference = ImageReference::parse(image).ok()?;
    Some(match reference.tag() {
        Some(tag) => format!("{}:{tag}", reference.name()),
        None => reference.name(),
    })
}

/// The earliest of RFC 3339 times (compared as instants, not as strings).
fn earliest<'a>(times: impl Iterator<Item = &'a str>) -> Option<String> {
    times
        .filter_map(|t| Timestamp::from_str(t).ok().map(|ts| (ts, t)))
        .min_by_key(|(ts, _)| *ts)
        .map(|(_, t)| t.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::rows::test_row;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn groups_one_artifact_across_names_and_leaves_out_digestless_rows() {
        let mut mirror = test_row("b", "m", &format!("mirror.local/team/app:1@{A}"), Some(A));
        mirror.started_at = Some("2026-11-29T08:00:00Z".into());
        let mut origin = test_row("a", "o", &format!("reg.example/team/app:1@{A}"), None);
        origin.resolved_at = Some("2026-11-28T10:00:00.5Z".into());
        let rows = vec![
            origin,
            mirror,
            test_row("a", "x", "reg.example/other:2", Some(B)),
            test_row("a", "y", "reg.example/unpinned:2", None),
        ];
        let groups = by_digest(&rows);
        assert_eq!(groups.len(), 2);
        let a = &groups[0];
        assert_eq!(a.digest, A);
        assert_eq!(a.containers, 2);
        assert_eq!(
            a.names,
            ["mirror.local/team/app:1", "reg.example/team/app:1"]
        );
        assert_eq!(a.workloads, ["a/Pod/o", "b/Pod/m"]);
        assert_eq!(a.running_since.as_deref(), Some("2026-11-29T08:00:00Z"));
        assert_eq!(a.pinned_since.as_deref(), Some("2026-11-28T10:00:00.5Z"));
        assert_eq!(groups[1].names, ["reg.example/other:2"]);

        assert_eq!(involving(&rows, A).len(), 2);
        assert_eq!(involving(&rows, B).len(), 1);
    }

    #[test]
    fn earliest_compares_instants_not_strings() {
        let times = ["2026-11-30T12:00:00.5Z", "2026-11-30T12:00:00Z"];
        assert_eq!(
            earliest(times.into_iter()).as_deref(),
            Some("2026-11-30T12:00:00Z")
        );
    }
}
