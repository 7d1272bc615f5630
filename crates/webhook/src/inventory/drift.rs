//! `--drift`: re-resolving each distinct original tag once, with the Pod's own credentials,
//! and marking containers whose tag now points to another digest than the one that runs.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use tagpin_resolver::ImageReference;
use tokio::sync::Semaphore;

use super::rows::{DriftCheck, PullIdentity, Row};
use crate::credentials::ClusterState;
use crate::resolving::ImageResolver;

/// Registry lookups in flight at once.
const CONCURRENCY: usize = 16;
/// Lookups in flight at once to any one registry, so one pass never floods a registry
/// (or trips its rate limit) when many tags live there.
const PER_REGISTRY: usize = 4;

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
    let mut limits: HashMap<String, Arc<Semaphore>> = HashMap::new();
    for (tag, _) in lookups.values() {
        limits
            .entry(tag.registry().to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(PER_REGISTRY)));
    }
    let limits = &limits;
    let answers: Vec<(DriftCheck, Vec<usize>)> = futures::stream::iter(lookups.into_iter().map(
        |((normalized, namespace, pull), (tag, at))| async move {
            // Never closed, so acquiring only waits.
            let _permit = match limits.get(tag.registry()) {
                Some(limit) => limit.acquire().await.ok(),
                None => None,
            };
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use futures::future::BoxFuture;
    use tagpin_resolver::{Keychain, Resolution, ResolverStats};

    use super::*;
    use crate::cluster::Cluster;
    use crate::inventory::output::Progress;
    use crate::inventory::rows::test_row;
    use crate::resolving::ResolveFailure;

    /// Fails every lookup after a pause, recording the most lookups in flight at once.
    #[derive(Default)]
    struct Busy {
        in_flight: AtomicUsize,
        most: AtomicUsize,
    }

    impl ImageResolver for Busy {
        fn resolve<'a>(
            &'a self,
            image: &'a ImageReference,
            _keychain: &'a Keychain,
        ) -> BoxFuture<'a, Result<Resolution, ResolveFailure>> {
            Box::pin(async move {
                let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                self.most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
                Err(ResolveFailure {
                    kind: "unreachable",
                    message: format!("{} is down", image.registry()),
                })
            })
        }

        fn stats(&self) -> Option<ResolverStats> {
            None
        }
    }

    #[tokio::test]
    async fn one_registry_sees_at_most_its_limit_of_lookups_at_once() {
        let mut rows: Vec<Row> = (0..20)
            .map(|i| {
                test_row(
                    "ns",
                    &format!("p{i}"),
                    &format!("reg.example/app{i}:1"),
                    None,
                )
            })
            .collect();
        let busy = Busy::default();
        let cluster = Cluster::from_objects(Vec::new(), Vec::new(), None);
        check(&mut rows, &busy, &cluster, &Progress::new(false)).await;
        assert_eq!(busy.most.load(Ordering::SeqCst), PER_REGISTRY);
        assert!(
            rows.iter()
                .all(|r| r.drift.as_ref().is_some_and(|d| d.error.is_some()))
        );
    }
}
