//! The registry interface the verifier reads signatures and attestations through.

use std::future::Future;

use tagpin_resolver::{Digest, ImageReference};

/// A manifest as the registry served it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The manifest's media type (Content-Type or `mediaType` field).
    pub media_type: String,
    /// The manifest's digest, checked against the bytes by the source.
    pub digest: Digest,
    /// The manifest bytes.
    pub bytes: Vec<u8>,
}

/// A registry failure while looking for signatures; never means "unsigned".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("registry {registry}: {cause}")]
pub struct SourceError {
    /// The registry host that failed.
    pub registry: String,
    /// What went wrong (connection, status, auth, digest mismatch...).
    pub cause: String,
}

/// Where the verifier reads signature and attestation artifacts from.
pub trait ArtifactSource: Send + Sync {
    /// Fetches a manifest of `image`'s repository by tag or digest;
    /// `Ok(None)` when the registry answers 404.
    fn manifest(
        &self,
        image: &ImageReference,
        reference: &str,
    ) -> impl Future<Output = Result<Option<Fetched>, SourceError>> + Send;

    /// Fetches a blob of `image`'s repository by digest; the implementation
    /// checks the bytes against the digest.
    fn blob(
        &self,
        image: &ImageReference,
        digest: &Digest,
    ) -> impl Future<Output = Result<Vec<u8>, SourceError>> + Send;

    /// Lists the referrers of `digest` as an OCI image index (OCI 1.1 referrers
    /// API, with the `sha256-<hex>` tag-schema fallback done by the
    /// implementation); `Ok(None)` when neither is available.
    fn referrers(
        &self,
        image: &ImageReference,
        digest: &Digest,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, SourceError>> + Send;
}

/// A borrowed source reads as the source itself.
impl<S: ArtifactSource> ArtifactSource for &S {
    fn manifest(
        &self,
        image: &ImageReference,
        reference: &str,
    ) -> impl Future<Output = Result<Option<Fetched>, SourceError>> + Send {
        (**self).manifest(image, reference)
    }

    fn blob(
        &self,
        image: &ImageReference,
        digest: &Digest,
    ) -> impl Future<Output = Result<Vec<u8>, SourceError>> + Send {
        (**self).blob(image, digest)
    }

    fn referrers(
        &self,
        image: &ImageReference,
        digest: &Digest,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, SourceError>> + Send {
        (**self).referrers(image, digest)
    }
}
