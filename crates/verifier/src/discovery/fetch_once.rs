//! One admission asks the registry for each artifact once: an [`ArtifactSource`] that
//! shares each answer, and each request still in flight, between everyone who asks for it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures::lock::Mutex as AsyncMutex;
use tagpin_resolver::{Digest, ImageReference};

use crate::discovery::source::{ArtifactSource, Fetched, SourceError};

/// Registry, repository and reference (tag or digest) of one artifact.
type Key = (String, String, String);

/// Answers by key; the first asker fills the slot while the others wait on its lock.
type Slots<T> = Mutex<HashMap<Key, Arc<AsyncMutex<Option<Result<T, SourceError>>>>>>;

/// An [`ArtifactSource`] that asks `S` at most once per manifest, blob and referrers list,
/// errors included, for as long as it lives (one verification, or one admission).
pub struct FetchOnce<S> {
    source: S,
    manifests: Slots<Option<Fetched>>,
    blobs: Slots<Vec<u8>>,
    referrers: Slots<Option<Vec<u8>>>,
}

impl<S: ArtifactSource> FetchOnce<S> {
    /// Shares the answers of `source`.
    pub fn new(source: S) -> Self {
        Self {
            source,
            manifests: Mutex::default(),
            blobs: Mutex::default(),
            referrers: Mutex::default(),
        }
    }
}

fn key(image: &ImageReference, reference: String) -> Key {
    (
        image.registry().to_owned(),
        image.repository().to_owned(),
        reference,
    )
}

/// The answer for `key`: fetched by the first caller, shared with every later one.
async fn once<T: Clone, F>(slots: &Slots<T>, key: Key, fetch: F) -> Result<T, SourceError>
where
    F: Future<Output = Result<T, SourceError>>,
{
    let slot = {
        // A poisoned map only loses sharing, never an answer.
        let mut slots = match slots.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        slots.entry(key).or_default().clone()
    };
    let mut answer = slot.lock().await;
    if let Some(done) = answer.as_ref() {
        return done.clone();
    }
    let fetched = fetch.await;
    *answer = Some(fetched.clone());
    fetched
}

impl<S: ArtifactSource> ArtifactSource for FetchOnce<S> {
    fn manifest(
        &self,
        image: &ImageReference,
        reference: &str,
    ) -> impl Future<Output = Result<Option<Fetched>, SourceError>> + Send {
        let key = key(image, reference.to_owned());
        once(&self.manifests, key, self.source.manifest(image, reference))
    }

    fn blob(
        &self,
        image: &ImageReference,
        digest: &Digest,
    ) -> impl Future<Output = Result<Vec<u8>, SourceError>> + Send {
        let key = key(image, digest.to_string());
        once(&self.blobs, key, self.source.blob(image, digest))
    }

    fn referrers(
        &self,
        image: &ImageReference,
        digest: &Digest,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, SourceError>> + Send {
        let key = key(image, digest.to_string());
        once(&self.referrers, key, self.source.referrers(image, digest))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Counts what it is asked; blobs fail, as a registry that errs.
    #[derive(Default)]
    struct Counting {
        asked: AtomicUsize,
    }

    impl ArtifactSource for Counting {
        async fn manifest(
            &self,
            _image: &ImageReference,
            reference: &str,
        ) -> Result<Option<Fetched>, SourceError> {
            self.asked.fetch_add(1, Ordering::SeqCst);
            // Let the other callers arrive while this one is in flight.
            tokio::task::yield_now().await;
            Ok(Some(Fetched {
                media_type: "m".into(),
                digest: Digest::sha256(reference.as_bytes()),
                bytes: reference.as_bytes().to_vec(),
            }))
        }

        async fn blob(&self, _image: &ImageReference, _d: &Digest) -> Result<Vec<u8>, SourceError> {
            self.asked.fetch_add(1, Ordering::SeqCst);
            Err(SourceError {
                registry: "r".into(),
                cause: "down".into(),
            })
        }

        async fn referrers(
            &self,
            _image: &ImageReference,
            _d: &Digest,
        ) -> Result<Option<Vec<u8>>, SourceError> {
            self.asked.fetch_add(1, Ordering::SeqCst);
            Ok(None)
        }
    }

    #[tokio::test]
    async fn each_artifact_is_asked_once_and_errors_are_shared() {
        let once = FetchOnce::new(Counting::default());
        let image = ImageReference::parse("registry.example/team/app:1").unwrap();
        let other = ImageReference::parse("registry.example/team/other:1").unwrap();
        let (a, b) = futures::join!(once.manifest(&image, "t"), once.manifest(&image, "t"));
        assert_eq!(a, b);
        assert_eq!(once.source.asked.load(Ordering::SeqCst), 1);
        // Another repository is another artifact.
        once.manifest(&other, "t").await.unwrap();
        assert_eq!(once.source.asked.load(Ordering::SeqCst), 2);
        let digest = Digest::sha256(b"x");
        assert!(once.blob(&image, &digest).await.is_err());
        assert!(once.blob(&image, &digest).await.is_err());
        assert_eq!(once.source.asked.load(Ordering::SeqCst), 3);
        once.referrers(&image, &digest).await.unwrap();
        once.referrers(&image, &digest).await.unwrap();
        assert_eq!(once.source.asked.load(Ordering::SeqCst), 4);
    }
}
