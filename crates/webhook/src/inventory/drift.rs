//! `--drift`: re-resolving each distinct original tag once, with the Pod's own credentials,
//! and marking containers whose tag now points to another digest than the one that runs.

use std::collections::HashMap;

use futures::StreamExt;
use tagpin_resolver::ImageReference;

use super::rows::{DriftCheck, PullIdentity, Row};
use crate::credentials::ClusterState;
use crate::resolving::ImageResolver;

/// Registry lookups in flight at once.
const CONCURRENCY: usize = 16;

/// One lookup: a tag as seen with one namespace's credentials.
type Key = (String, String, PullIdentity);

/// Re-resolves the tag of every row that has one and records the answer on the row. The
/// resolver's cache and single-flight make identical credentials share one request, so the
/// registry sees one request per distinct tag and credential set. A failed lookup is
/// recorded as an error on the row, never as drift.
pub async fn check(
    rows: &mut [Row],
    resolver: &dyn ImageResolver,
    cluster: &dyn ClusterState,
    progress: &super::output::Progress,
) {
    let mut lookups: HashMap<Key, (ImageReference, Vec<usize>)> = HashMap::new();
    for (i, row) in rows.iter().enumerate() {
        let Some(tag) = row.tag_reference() else {
            continue;
        };
        let key = (tag.normalized(), row.namespace.clone(), row.pull.clone());
        lookups
            .entry(key)
            .or_insert_with(|| (tag, Vec::new()))
            .1
            .push(i);
    }
    progress.start("re-resolving tags", lookups.len());
    let answers: Vec<(DriftCheck, Vec<usize>)> = futures::stream::iter(lookups.into_iter().map(
        |((normalized, namespace, pull), (tag, at))| async move {
            let keychain = cluster.keychain(&namespace, &pull.secrets, &pull.service_account);
            let answer = match resolver.resolve(&tag, &keychain).await {
                Ok(r) => DriftCheck {
                    tag: normalized,
                    now: Some(r.digest.to_string()),
                    error: None,
                },
                Err(e) => DriftCheck {
                    tag: normalized,
                    now: None,
                    error: Some(e.message),
                },
            };
            progress.step();
            (answer, at)
        },
    ))
    .buffer_unordered(CONCURRENCY)
    .collect()
    .await;
    progress.finish();
    for (answer, at) in answers {
        for i in at {
            if let Some(row) = rows.get_mut(i) {
                row.drift = Some(answer.clone());
                row.refresh_flags();
            }
        }
    }
}
