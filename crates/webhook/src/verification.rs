//! Verifying pinned digests against the signature and attestation policy, as a trait so
//! admission can be tested without a registry.

use std::sync::Arc;

use futures::future::BoxFuture;
use tagpin_resolver::{Digest, ImageReference, Keychain, ResolveError, Resolver};
use tagpin_verifier::{
    ArtifactSource, CompiledPolicy, Fetched, SourceError, Verdict, VerdictCache,
};

/// Manifest media types accepted when reading signature and attestation manifests.
const MANIFEST_TYPES: [&str; 4] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// Largest signature or attestation blob read.
const MAX_BLOB_BYTES: usize = 16 * 1024 * 1024;

/// Decides whether one digest may run.
pub trait ImageVerifier: Send + Sync + 'static {
    /// Verifies `digest` of `image`, reading artifacts with the credentials of `keychain`.
    /// An error means no verdict could be reached (e.g. the registry failed), never "unsigned".
    fn verify<'a>(
        &'a self,
        image: &'a ImageReference,
        digest: &'a Digest,
        keychain: &'a Keychain,
    ) -> BoxFuture<'a, Result<Verdict, String>>;
}

/// Verifies through the registry client of the resolver, caching verdicts by digest and policy.
pub struct RegistryVerifier {
    resolver: Arc<Resolver>,
    policy: CompiledPolicy,
    cache: VerdictCache,
}

impl RegistryVerifier {
    /// A verifier of `policy` reading through `resolver`'s clients.
    pub fn new(resolver: Arc<Resolver>, policy: CompiledPolicy) -> Self {
        Self {
            resolver,
            policy,
            cache: VerdictCache::default(),
        }
    }
}

impl ImageVerifier for RegistryVerifier {
    fn verify<'a>(
        &'a self,
        image: &'a ImageReference,
        digest: &'a Digest,
        keychain: &'a Keychain,
    ) -> BoxFuture<'a, Result<Verdict, String>> {
        Box::pin(async move {
            // Cached without the image's spelling, told in this request's.
            let name = image.name();
            if let Some(v) = self.cache.get(digest, &name, self.policy.version()) {
                return Ok(v.for_image(image, digest));
            }
            let source = KeychainSource {
                resolver: &self.resolver,
                keychain,
            };
            let verdict = tagpin_verifier::judge_uncached(&source, &self.policy, image, digest)
                .await
                .map_err(|e| e.to_string())?;
            self.cache
                .put(digest, &name, self.policy.version(), &verdict);
            Ok(verdict.for_image(image, digest))
        })
    }
}

/// The resolver's registry access with one request's credentials.
struct KeychainSource<'a> {
    resolver: &'a Resolver,
    keychain: &'a Keychain,
}

/// The verification error names the image; the registry and the cause are said once here.
fn source_error(image: &ImageReference, e: ResolveError) -> SourceError {
    SourceError {
        registry: e.registry().unwrap_or(image.registry()).to_owned(),
        cause: e.cause(),
    }
}

impl ArtifactSource for KeychainSource<'_> {
    async fn manifest(
        &self,
        image: &ImageReference,
        reference: &str,
    ) -> Result<Option<Fetched>, SourceError> {
        let fetched = self
            .resolver
            .fetch_manifest(image, reference, &MANIFEST_TYPES, self.keychain)
            .await
            .map_err(|e| source_error(image, e))?;
        Ok(fetched.map(|m| Fetched {
            media_type: m.media_type,
            digest: m.digest,
            bytes: m.bytes,
        }))
    }

    async fn blob(&self, image: &ImageReference, digest: &Digest) -> Result<Vec<u8>, SourceError> {
        self.resolver
            .fetch_blob(image, digest, MAX_BLOB_BYTES, self.keychain)
            .await
            .map_err(|e| source_error(image, e))
    }

    async fn referrers(
        &self,
        image: &ImageReference,
        digest: &Digest,
    ) -> Result<Option<Vec<u8>>, SourceError> {
        self.resolver
            .fetch_referrers(image, digest, self.keychain)
            .await
            .map_err(|e| source_error(image, e))
    }
}
