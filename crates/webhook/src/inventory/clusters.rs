//! Reading several clusters in one pass (`--context A --context B`): a tag that runs as
//! different digests in different clusters is the ambiguity a hotfix re-tagged in one
//! cluster and not the others leaves behind.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::rows::Row;

/// Marks every row whose tag runs as another digest in another cluster, naming where.
pub fn compare(rows: &mut [Row]) {
    // tag → cluster → digests it runs as there.
    let mut seen: HashMap<String, BTreeMap<String, BTreeSet<String>>> = HashMap::new();
    for row in rows.iter() {
        if let Some((tag, cluster, digest)) = key(row) {
            seen.entry(tag)
                .or_default()
                .entry(cluster)
                .or_default()
                .insert(digest);
        }
    }
    for row in rows.iter_mut() {
        let Some((tag, cluster, digest)) = key(row) else {
            continue;
        };
        let Some(clusters) = seen.get(&tag) else {
            continue;
        };
        row.elsewhere = clusters
            .iter()
            .filter(|(other, _)| **other != cluster)
            .flat_map(|(other, digests)| {
                digests
                    .iter()
                    .filter(|d| **d != digest)
                    .map(move |d| format!("{other}={d}"))
            })
            .collect();
        row.refresh_flags();
    }
}

/// The row's tag, cluster and running digest, when it has all three.
fn key(row: &Row) -> Option<(String, String, String)> {
    Some((
        row.tag_reference()?.normalized(),
        row.cluster.clone()?,
        row.effective_digest()?.to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::rows::{Flag, test_row};

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn in_cluster(cluster: &str, image: &str) -> Row {
        let mut row = test_row("shop", "p", image, None);
        row.cluster = Some(cluster.to_owned());
        row
    }

    #[test]
    fn a_tag_running_as_two_digests_in_two_clusters_is_flagged_on_both() {
        let mut rows = vec![
            in_cluster("east", &format!("reg/app:1.4@{A}")),
            in_cluster("west", &format!("reg/app:1.4@{B}")),
            in_cluster("east", &format!("reg/db:2@{A}")),
            in_cluster("west", &format!("reg/db:2@{A}")),
            // Two digests inside one cluster (a rollout in progress) is not this flag.
            in_cluster("east", &format!("reg/web:3@{A}")),
            in_cluster("east", &format!("reg/web:3@{B}")),
        ];
        compare(&mut rows);
        assert_eq!(rows[0].elsewhere, [format!("west={B}")]);
        assert_eq!(rows[1].elsewhere, [format!("east={A}")]);
        assert!(rows[0].has(Flag::DiffersAcrossClusters));
        for row in &rows[2..] {
            assert!(row.elsewhere.is_empty(), "{row:?}");
            assert!(!row.has(Flag::DiffersAcrossClusters));
        }
    }
}
