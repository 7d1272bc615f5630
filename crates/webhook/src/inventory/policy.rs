//! `--verify`: re-verifying each distinct running digest against the current policy and
//! marking what would be denied today.

use std::collections::HashMap;
use std::str::FromStr;

use futures::StreamExt;
use tagpin_resolver::{Digest, ImageReference};

use super::rows::{PolicyCheck, PullIdentity, Row};
use crate::credentials::ClusterState;
use crate::verification::ImageVerifier;

/// Verifications in flight at once.
const CONCURRENCY: usize = 8;

/// One verification: a digest under one name, read with one namespace's credentials.
type Key = (String, String, String, PullIdentity);

/// Verifies the digest each row runs (the kubelet's, else the pinned one) under the row's
/// image name; rows with no digest are left unchecked. No verdict (a registry error) is
/// recorded as an error on the row, never as a pass or a denial.
pub async fn check(
    rows: &mut [Row],
    verifier: &dyn ImageVerifier,
    cluster: &dyn ClusterState,
    progress: &super::output::Progress,
) {
    let mut checks: HashMap<Key, Vec<usize>> = HashMap::new();
    for (i, row) in rows.iter().enumerate() {
        let Some(digest) = row.effective_digest() else {
            continue;
        };
        let key = (
            row.image.clone(),
            digest.to_owned(),
            row.namespace.clone(),
            row.pull.clone(),
        );
        checks.entry(key).or_default().push(i);
    }
    progress.start("re-verifying digests", checks.len());
    let answers: Vec<(PolicyCheck, Vec<usize>)> = futures::stream::iter(checks.into_iter().map(
        |((image, digest, namespace, pull), at)| async move {
            let keychain = cluster.keychain(&namespace, &pull.secrets, &pull.service_account);
            let answer = verify_one(verifier, &image, &digest, &keychain).await;
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
                row.today = Some(answer.clone());
                row.refresh_flags();
            }
        }
    }
}

async fn verify_one(
    verifier: &dyn ImageVerifier,
    image: &str,
    digest: &str,
    keychain: &tagpin_resolver::Keychain,
) -> PolicyCheck {
    let failed = |error: String| PolicyCheck {
        verdict: None,
        admits: false,
        rule: None,
        reason: None,
        error: Some(error),
    };
    let reference = match ImageReference::parse(image) {
        Ok(r) => r,
        Err(e) => return failed(e.to_string()),
    };
    let digest = match Digest::from_str(digest) {
        Ok(d) => d,
        Err(e) => return failed(e.to_string()),
    };
    let reference = reference.with_digest(digest.clone());
    match verifier.verify(&reference, &digest, keychain).await {
        Ok(v) => PolicyCheck {
            verdict: Some(v.outcome.as_str().to_owned()),
            admits: v.outcome.admits(),
            rule: (!v.rule.is_empty()).then_some(v.rule),
            reason: v.reason,
            error: None,
        },
        Err(e) => failed(e),
    }
}
