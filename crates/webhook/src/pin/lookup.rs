//! Tag to digest and digest to verdict for every distinct image of a run, each looked up
//! once, a bounded number at a time.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use futures::StreamExt;
use tagpin_resolver::{Digest, ImageReference, Keychain};
use tagpin_verifier::Verdict;

use crate::admission::record;
use crate::resolving::ImageResolver;
use crate::verification::ImageVerifier;

/// Which images are looked up in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Resolve tags without a digest.
    Pin,
    /// Resolve every tag, also those that already carry a digest.
    Update,
    /// Resolve nothing: only report what is not pinned.
    Check,
}

/// What became of one image as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// Not a valid image reference.
    Invalid(String),
    /// A tag not looked up (`Check` mode).
    Unpinned(ImageReference),
    /// Pinned to `digest`; `text` is what the field holds afterwards and `previous` the
    /// digest it carried before, if any.
    Pinned {
        /// The reference as written.
        reference: ImageReference,
        /// The digest the field is pinned to.
        digest: Digest,
        /// The field's new text.
        text: String,
        /// The digest written before, when there was one.
        previous: Option<Digest>,
        /// When the registry answered; `None` when the digest was kept as written.
        resolved_at: Option<SystemTime>,
        /// The registry endpoints the digest rests on, as the webhook records them.
        resolved_by: Vec<String>,
    },
    /// The registry could not tell the digest.
    Failed(ImageReference, String),
}

impl Resolved {
    /// The reference and digest to verify, when pinned.
    pub fn pinned(&self) -> Option<(&ImageReference, &Digest)> {
        match self {
            Self::Pinned {
                reference, digest, ..
            } => Some((reference, digest)),
            _ => None,
        }
    }
}

/// The registry access of one run.
pub struct Lookups {
    /// Tag to digest.
    pub resolver: Arc<dyn ImageResolver>,
    /// Digest to verdict, when the config has a policy.
    pub verifier: Option<Arc<dyn ImageVerifier>>,
    /// Credentials of every lookup.
    pub keychain: Keychain,
    /// Lookups in flight at once.
    pub concurrency: usize,
}

/// The part of `written` before its `@digest`, when it has both a tag and a digest.
fn tag_part(reference: &ImageReference) -> Option<&str> {
    reference.tag()?;
    let written = reference.as_written();
    written.rsplit_once('@').map(|(tag, _)| tag)
}

impl Lookups {
    /// Resolves every distinct image of `written` as `mode` says, keyed by the text written.
    pub async fn resolve_all<'a>(
        &self,
        written: impl IntoIterator<Item = &'a str>,
        mode: Mode,
    ) -> HashMap<String, Resolved> {
        let mut parsed: BTreeMap<String, Result<ImageReference, String>> = BTreeMap::new();
        for w in written {
            parsed
                .entry(w.to_owned())
                .or_insert_with(|| ImageReference::parse(w).map_err(|e| e.to_string()));
        }
        // What to ask the registry, keyed by the normalized tag reference so that
        // `nginx`, `nginx:latest` and `docker.io/library/nginx` are one lookup.
        let mut wanted: BTreeMap<String, ImageReference> = BTreeMap::new();
        for reference in parsed.values().flatten() {
            if let Some(lookup) = lookup_reference(reference, mode) {
                wanted.entry(lookup.normalized()).or_insert(lookup);
            }
        }
        let answers: HashMap<String, Answer> =
            futures::stream::iter(wanted.into_iter().map(|(key, reference)| async move {
                let answer = self
                    .resolver
                    .resolve(&reference, &self.keychain)
                    .await
                    .map(|r| {
                        let by = record::resolved_by(&r);
                        (r.digest, r.resolved_at, by)
                    })
                    .map_err(|f| f.message);
                (key, answer)
            }))
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        parsed
            .into_iter()
            .map(|(w, p)| {
                let resolved = match p {
                    Err(e) => Resolved::Invalid(e),
                    Ok(reference) => settle(reference, mode, &answers),
                };
                (w, resolved)
            })
            .collect()
    }

    /// Verifies every distinct pinned digest once, keyed by repository name and digest;
    /// empty without a verifier.
    pub async fn verify_all<'a>(
        &self,
        pinned: impl IntoIterator<Item = (&'a ImageReference, &'a Digest)>,
    ) -> HashMap<(String, String), Result<Verdict, String>> {
        let Some(verifier) = &self.verifier else {
            return HashMap::new();
        };
        let mut distinct: BTreeMap<(String, String), (&ImageReference, &Digest)> = BTreeMap::new();
        for (reference, digest) in pinned {
            distinct
                .entry(verdict_key(reference, digest))
                .or_insert((reference, digest));
        }
        futures::stream::iter(distinct.into_iter().map(|(key, (reference, digest))| {
            let verifier = verifier.clone();
            async move {
                let verdict = verifier.verify(reference, digest, &self.keychain).await;
                (key, verdict)
            }
        }))
        .buffer_unordered(self.concurrency.max(1))
        .collect()
        .await
    }
}

/// The key of a verdict: what the verifier's own cache keys on.
pub fn verdict_key(reference: &ImageReference, digest: &Digest) -> (String, String) {
    (reference.name(), digest.to_string())
}

/// The tag reference to ask the registry about, if `mode` asks for one.
fn lookup_reference(reference: &ImageReference, mode: Mode) -> Option<ImageReference> {
    match (reference.digest(), mode) {
        (_, Mode::Check) => None,
        (None, _) => Some(reference.clone()),
        (Some(_), Mode::Update) => ImageReference::parse(tag_part(reference)?).ok(),
        (Some(_), Mode::Pin) => None,
    }
}

/// The registry's answer for one tag: digest, time and endpoints, or why not.
type Answer = Result<(Digest, SystemTime, Vec<String>), String>;

/// The outcome of one written image from the registry's answers.
fn settle(reference: ImageReference, mode: Mode, answers: &HashMap<String, Answer>) -> Resolved {
    let Some(lookup) = lookup_reference(&reference, mode) else {
        return match reference.digest().cloned() {
            Some(digest) => Resolved::Pinned {
                text: reference.as_written().to_owned(),
                previous: Some(digest.clone()),
                resolved_at: None,
                resolved_by: Vec::new(),
                reference,
                digest,
            },
            None => Resolved::Unpinned(reference),
        };
    };
    match answers.get(&lookup.normalized()) {
        Some(Ok((digest, at, by))) => Resolved::Pinned {
            text: lookup.pinned(digest),
            previous: reference.digest().cloned(),
            resolved_at: Some(*at),
            resolved_by: by.clone(),
            digest: digest.clone(),
            reference: lookup,
        },
        Some(Err(e)) => Resolved::Failed(reference, e.clone()),
        None => Resolved::Failed(reference, "not resolved".to_owned()),
    }
}
