//! Reading artifacts next to an image (signatures, attestations, referrers) through the
//! same clients, credentials and deadlines as resolution.

use std::time::Instant;

use http::Method;

use crate::client::{MAX_MANIFEST_BYTES, RegistryClient, RequestContext, read_limited};
use crate::credentials::Keychain;
use crate::digest::Digest;
use crate::error::ResolveError;
use crate::reference::ImageReference;
use crate::resolve::{Resolver, content_type, digest_header};

/// Media type of an OCI image index, as the referrers API answers.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A manifest read from a registry, checked against its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedManifest {
    /// The `Content-Type` the registry sent.
    pub media_type: String,
    /// The digest of `bytes`.
    pub digest: Digest,
    /// The manifest exactly as served.
    pub bytes: Vec<u8>,
}

impl Resolver {
    /// Reads the manifest `reference` (a tag or a digest) of `image`'s repository from
    /// the image's own registry; `Ok(None)` when the registry has none.
    pub async fn fetch_manifest(
        &self,
        image: &ImageReference,
        reference: &str,
        accept: &[&str],
        keychain: &Keychain,
    ) -> Result<Option<FetchedManifest>, ResolveError> {
        let (client, budget) = self.origin_client(image, keychain)?;
        let ctx = context(image, budget);
        let path = format!("{}/manifests/{reference}", image.repository());
        let res = client.send(Method::GET, &path, accept, &ctx).await?;
        if res.status() == http::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !res.status().is_success() {
            return Err(client.status_error(res, &ctx, None).await);
        }
        let invalid = |cause: String| {
            ResolveError::invalid_response(image.as_written(), client.host(), cause)
        };
        let media_type = content_type(res.headers());
        let claimed = digest_header(res.headers()).map_err(&invalid)?;
        let bytes = read_limited(res, MAX_MANIFEST_BYTES)
            .await
            .map_err(|e| invalid(format!("reading manifest {reference}: {e}")))?;
        let expected = reference.parse::<Digest>().ok().or(claimed);
        let digest = match expected {
            Some(d) if d.matches(&bytes) => d,
            Some(d) => {
                return Err(invalid(format!(
                    "manifest {reference} does not hash to {d}"
                )));
            }
            None => Digest::sha256(&bytes),
        };
        Ok(Some(FetchedManifest {
            media_type,
            digest,
            bytes,
        }))
    }

    /// Reads blob `digest` of `image`'s repository, at most `limit` bytes, checked against the digest.
    pub async fn fetch_blob(
        &self,
        image: &ImageReference,
        digest: &Digest,
        limit: usize,
        keychain: &Keychain,
    ) -> Result<Vec<u8>, ResolveError> {
        let (client, budget) = self.origin_client(image, keychain)?;
        let ctx = context(image, budget);
        let path = format!("{}/blobs/{digest}", image.repository());
        let res = client.send(Method::GET, &path, &[], &ctx).await?;
        if !res.status().is_success() {
            return Err(client.status_error(res, &ctx, None).await);
        }
        let invalid = |cause: String| {
            ResolveError::invalid_response(image.as_written(), client.host(), cause)
        };
        let bytes = read_limited(res, limit)
            .await
            .map_err(|e| invalid(format!("reading blob {digest}: {e}")))?;
        if !digest.matches(&bytes) {
            return Err(invalid(format!("blob does not hash to {digest}")));
        }
        Ok(bytes)
    }

    /// The OCI 1.1 referrers index of `digest`, falling back to the `sha256-<hex>` tag
    /// schema when the registry has no referrers API; `Ok(None)` when neither exists.
    ///
    /// Until the host has said whether it serves the API, both are asked at once, so the
    /// fallback costs no round trip of its own; then only the one it serves is asked. A
    /// registry that serves the API never answers it with 404 (OCI distribution spec 1.1),
    /// so a 404 means the tag schema.
    pub async fn fetch_referrers(
        &self,
        image: &ImageReference,
        digest: &Digest,
        keychain: &Keychain,
    ) -> Result<Option<Vec<u8>>, ResolveError> {
        let (client, budget) = self.origin_client(image, keychain)?;
        let tag = format!("{}-{}", digest.algorithm().name(), digest.hex());
        let by_tag = async {
            Ok(self
                .fetch_manifest(image, &tag, &[OCI_INDEX], keychain)
                .await?
                .map(|m| m.bytes))
        };
        let by_api = referrers_api(&client, image, digest, budget);
        let endpoint = client.endpoint();
        match endpoint.referrers_api() {
            Some(false) => by_tag.await,
            Some(true) => match by_api.await? {
                Some(index) => Ok(Some(index)),
                None => {
                    endpoint.learn_referrers_api(false);
                    by_tag.await
                }
            },
            None => {
                let (listed, tagged) = futures::join!(by_api, by_tag);
                match listed? {
                    Some(index) => {
                        endpoint.learn_referrers_api(true);
                        Ok(Some(index))
                    }
                    None => {
                        endpoint.learn_referrers_api(false);
                        tagged
                    }
                }
            }
        }
    }

    fn origin_client(
        &self,
        image: &ImageReference,
        keychain: &Keychain,
    ) -> Result<(std::sync::Arc<RegistryClient>, std::time::Duration), ResolveError> {
        let client = self.client(image.registry(), keychain.credential_for(image.registry()))?;
        Ok((client, self.deadline()))
    }
}

/// `GET /v2/<name>/referrers/<digest>`: the index when the host serves the referrers API,
/// `None` when it does not (404, or an answer that is no OCI index).
async fn referrers_api(
    client: &RegistryClient,
    image: &ImageReference,
    digest: &Digest,
    budget: std::time::Duration,
) -> Result<Option<Vec<u8>>, ResolveError> {
    let ctx = context(image, budget);
    let path = format!("{}/referrers/{digest}", image.repository());
    let res = client.send(Method::GET, &path, &[OCI_INDEX], &ctx).await?;
    let is_index = res
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(OCI_INDEX));
    if res.status().is_success() && is_index {
        let bytes = read_limited(res, MAX_MANIFEST_BYTES).await.map_err(|e| {
            ResolveError::invalid_response(
                image.as_written(),
                client.host(),
                format!("reading referrers of {digest}: {e}"),
            )
        })?;
        return Ok(Some(bytes));
    }
    if !res.status().is_success() && res.status() != http::StatusCode::NOT_FOUND {
        return Err(client.status_error(res, &ctx, None).await);
    }
    Ok(None)
}

fn context(image: &ImageReference, budget: std::time::Duration) -> RequestContext<'_> {
    RequestContext {
        image: image.as_written(),
        repository: image.repository(),
        origin: image.registry(),
        deadline: Instant::now() + budget,
        budget,
    }
}
