//! Tag to digest: mirrors then origin, one HEAD per lookup, a TTL cache keyed by the
//! credentials used, and single-flight so concurrent lookups of one tag make one request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use http::{Method, header};

use crate::cache::TtlCache;
use crate::client::{
    MANIFEST_MEDIA_TYPES, MAX_MANIFEST_BYTES, RegistryClient, RequestContext, read_limited,
};
use crate::config::ResolverConfig;
use crate::credentials::{Credential, Keychain};
use crate::digest::Digest;
use crate::endpoint::{Endpoint, api_host};
use crate::error::ResolveError;
use crate::reference::ImageReference;
use crate::stats::{ResolverStats, Stats};

/// The digest a tag pointed to, and how it was learnt.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    /// The image as the user wrote it.
    pub image: ImageReference,
    /// The digest the registry serves for the tag (the index digest for multi-arch images).
    pub digest: Digest,
    /// What the user wrote with the digest appended.
    pub pinned: String,
    /// The manifest's media type, when the registry said.
    pub media_type: String,
    /// When the registry answered.
    pub resolved_at: SystemTime,
    /// True when served from cache.
    pub cached: bool,
    /// The registry host that answered: a mirror or the origin.
    pub source: String,
    /// The origin, when it confirmed a mirror's answer (`confirmMirrors`); `None` when the
    /// origin answered itself, confirmation is off, or the origin was unreachable.
    pub confirmed_by: Option<String>,
}

/// Cache key: the image plus every credential that would be used to look it up, so an
/// answer obtained with one credential is never served to a request without it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LookupKey {
    image: String,
    credentials: Vec<Option<String>>,
}

/// A registry host and the fingerprint of the credential its client uses.
type ClientKey = (String, Option<String>);

type Inflight = Shared<BoxFuture<'static, Result<Resolution, ResolveError>>>;

struct Inner {
    config: ResolverConfig,
    stats: Arc<Stats>,
    endpoints: Mutex<HashMap<String, Arc<Endpoint>>>,
    clients: Mutex<HashMap<ClientKey, Arc<RegistryClient>>>,
    cache: TtlCache<LookupKey, Resolution>,
    inflight: Mutex<HashMap<LookupKey, Inflight>>,
}

/// Resolves tags to digests. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver").finish_non_exhaustive()
    }
}

/// Most registry clients kept before the least useful are dropped (credentials rotate).
const MAX_CLIENTS: usize = 4096;

impl Resolver {
    /// A resolver with `config`; fails on settings that cannot work (a missing CA file, say).
    pub fn new(config: ResolverConfig) -> Result<Self, ResolveError> {
        config.validate().map_err(ResolveError::Config)?;
        let cache = TtlCache::new(config.cache.ttl(), config.cache.max_entries);
        let resolver = Self {
            inner: Arc::new(Inner {
                config,
                stats: Arc::default(),
                endpoints: Mutex::default(),
                clients: Mutex::default(),
                cache,
                inflight: Mutex::default(),
            }),
        };
        // Build every configured endpoint now so a bad CA fails at start, not per request.
        let hosts: Vec<String> = resolver
            .inner
            .config
            .registries
            .iter()
            .flat_map(|(h, s)| std::iter::once(h.clone()).chain(s.mirrors.iter().cloned()))
            .collect();
        for host in hosts {
            resolver.inner.endpoint(&host)?;
        }
        Ok(resolver)
    }

    /// The settings this resolver runs with.
    pub fn config(&self) -> &ResolverConfig {
        &self.inner.config
    }

    /// Counters for metrics.
    pub fn stats(&self) -> ResolverStats {
        self.inner.stats.snapshot()
    }

    /// The digest `image`'s tag points to now (or within the cache TTL), asked with the
    /// first credential `keychain` has for each registry tried. An image that already
    /// names a digest is returned as written, without asking the registry.
    pub async fn resolve(
        &self,
        image: &ImageReference,
        keychain: &Keychain,
    ) -> Result<Resolution, ResolveError> {
        if let Some(digest) = image.digest() {
            return Ok(Resolution {
                image: image.clone(),
                digest: digest.clone(),
                pinned: image.as_written().to_owned(),
                media_type: String::new(),
                resolved_at: SystemTime::now(),
                cached: false,
                source: image.registry().to_owned(),
                confirmed_by: None,
            });
        }
        let hosts = self.inner.hosts_for(image.registry());
        let credentials: Vec<Option<Credential>> = hosts
            .iter()
            .map(|h| keychain.credential_for(h).cloned())
            .collect();
        let key = LookupKey {
            image: image.normalized(),
            credentials: credentials
                .iter()
                .map(|c| c.as_ref().map(Credential::fingerprint))
                .collect(),
        };
        if let Some(mut hit) = self.inner.cache.get(&key) {
            self.inner.stats.hit();
            hit.image = image.clone();
            hit.pinned = image.pinned(&hit.digest);
            hit.cached = true;
            return Ok(hit);
        }
        let shared = self.inner.join_or_start(image, key, hosts, credentials)?;
        // The lookup may have been started by another spelling of this image.
        let mut resolution = shared.await.map_err(|e| e.for_image(image.as_written()))?;
        resolution.pinned = image.pinned(&resolution.digest);
        resolution.image = image.clone();
        Ok(resolution)
    }

    /// A client for `host` with `credential`: clients never share bearer tokens.
    pub fn client(
        &self,
        host: &str,
        credential: Option<&Credential>,
    ) -> Result<Arc<RegistryClient>, ResolveError> {
        self.inner.client(host, credential.cloned())
    }

    /// How long one lookup may take, retries and mirrors included.
    pub fn deadline(&self) -> Duration {
        self.inner.config.timeouts.deadline()
    }
}

impl Inner {
    /// The lookup of `key` in flight, or a new one: concurrent lookups of one image share
    /// one registry request, and only a success is cached.
    fn join_or_start(
        self: &Arc<Self>,
        image: &ImageReference,
        key: LookupKey,
        hosts: Vec<String>,
        credentials: Vec<Option<Credential>>,
    ) -> Result<Inflight, ResolveError> {
        let mut inflight = self
            .inflight
            .lock()
            .map_err(|_| ResolveError::Config("resolver state poisoned".into()))?;
        if let Some(existing) = inflight.get(&key) {
            self.stats.hit();
            return Ok(existing.clone());
        }
        self.stats.miss();
        let inner = Arc::clone(self);
        let (task_image, task_key) = (image.clone(), key.clone());
        let task = tokio::spawn(async move {
            let result = inner.lookup(&task_image, &hosts, &credentials).await;
            if let Ok(r) = &result {
                inner.cache.insert(task_key.clone(), r.clone());
            }
            if let Ok(mut inflight) = inner.inflight.lock() {
                inflight.remove(&task_key);
            }
            result
        });
        let image_text = image.as_written().to_owned();
        let registry = image.registry().to_owned();
        let fut: Inflight = async move {
            task.await.unwrap_or_else(|e| {
                Err(ResolveError::InvalidResponse {
                    image: image_text,
                    registry,
                    cause: format!("lookup task failed: {e}"),
                })
            })
        }
        .boxed()
        .shared();
        inflight.insert(key, fut.clone());
        Ok(fut)
    }

    /// Mirrors in order, then the origin.
    fn hosts_for(&self, registry: &str) -> Vec<String> {
        let mut hosts = self.config.registry(registry).mirrors;
        hosts.push(registry.to_owned());
        hosts
    }

    fn endpoint(&self, host: &str) -> Result<Arc<Endpoint>, ResolveError> {
        let mut endpoints = self
            .endpoints
            .lock()
            .map_err(|_| ResolveError::Config("resolver state poisoned".into()))?;
        if let Some(e) = endpoints.get(host) {
            return Ok(Arc::clone(e));
        }
        let settings = self.config.registry(host);
        let e = Arc::new(Endpoint::new(host, &settings, &self.config.timeouts)?);
        endpoints.insert(host.to_owned(), Arc::clone(&e));
        Ok(e)
    }

    fn client(
        &self,
        host: &str,
        credential: Option<Credential>,
    ) -> Result<Arc<RegistryClient>, ResolveError> {
        let key = (
            host.to_owned(),
            credential.as_ref().map(Credential::fingerprint),
        );
        let endpoint = self.endpoint(api_host(host))?;
        let mut clients = self
            .clients
            .lock()
            .map_err(|_| ResolveError::Config("resolver state poisoned".into()))?;
        if let Some(c) = clients.get(&key) {
            return Ok(Arc::clone(c));
        }
        if clients.len() >= MAX_CLIENTS {
            // Rotated credentials leave clients behind; dropping all only costs new tokens.
            clients.clear();
        }
        let client = Arc::new(RegistryClient::new(
            endpoint,
            credential,
            Arc::clone(&self.stats),
        ));
        clients.insert(key, Arc::clone(&client));
        Ok(client)
    }

    /// Asks each host in turn (mirrors, then the origin) until one answers, then has
    /// the origin confirm a mirror's answer when the registry asks for that.
    async fn lookup(
        &self,
        image: &ImageReference,
        hosts: &[String],
        credentials: &[Option<Credential>],
    ) -> Result<Resolution, ResolveError> {
        let budget = self.config.timeouts.deadline();
        let deadline = Instant::now() + budget;
        let confirm = self.config.registry(image.registry()).confirm_mirrors;
        let mut last_err = None;
        for (i, (host, credential)) in hosts.iter().zip(credentials).enumerate() {
            match self.ask(host, credential, image, deadline, budget).await {
                Ok((digest, media_type)) => {
                    let origin = hosts.len() - 1;
                    let confirmed_by = if confirm && i < origin {
                        let (origin, credential) = (&hosts[origin], &credentials[origin]);
                        let asked = self.ask(origin, credential, image, deadline, budget).await;
                        confirmation(image, host, origin, &digest, asked)?
                    } else {
                        None
                    };
                    return Ok(Resolution {
                        image: image.clone(),
                        pinned: image.pinned(&digest),
                        digest,
                        media_type,
                        resolved_at: SystemTime::now(),
                        cached: false,
                        source: host.clone(),
                        confirmed_by,
                    });
                }
                Err(e) => {
                    let next = e.try_next_endpoint();
                    tracing::debug!(image = image.as_written(), registry = %host, error = %e, "lookup failed");
                    last_err = Some(e);
                    if !next {
                        break;
                    }
                }
            }
        }
        Err(last_err.unwrap_or_else(|| ResolveError::Config("no registry to ask".into())))
    }

    /// One host's answer for `image`'s tag: the digest and the media type.
    async fn ask(
        &self,
        host: &str,
        credential: &Option<Credential>,
        image: &ImageReference,
        deadline: Instant,
        budget: Duration,
    ) -> Result<(Digest, String), ResolveError> {
        let client = self.client(host, credential.clone())?;
        let ctx = RequestContext {
            image: image.as_written(),
            repository: image.repository(),
            origin: image.registry(),
            deadline,
            budget,
        };
        head_digest(&client, image, &ctx).await
    }
}

/// Judges the origin's answer to a mirror's: the same digest confirms it; an
/// unreachable origin leaves it unconfirmed (`Ok(None)`), so air-gapped clusters
/// keep resolving; any other answer means the mirror's digest is not the origin's.
fn confirmation(
    image: &ImageReference,
    mirror: &str,
    origin: &str,
    mirror_digest: &Digest,
    origin_answer: Result<(Digest, String), ResolveError>,
) -> Result<Option<String>, ResolveError> {
    let unconfirmed = |answer: String| ResolveError::Unconfirmed {
        image: image.as_written().to_owned(),
        mirror: mirror.to_owned(),
        registry: origin.to_owned(),
        digest: mirror_digest.to_string(),
        answer,
    };
    match origin_answer {
        Ok((digest, _)) if &digest == mirror_digest => Ok(Some(origin.to_owned())),
        Ok((digest, _)) => Err(unconfirmed(format!("it serves {digest}"))),
        Err(e @ (ResolveError::Unreachable { .. } | ResolveError::TimedOut { .. })) => {
            tracing::warn!(
                image = image.as_written(),
                mirror,
                origin,
                error = %e,
                "mirror's answer not confirmed: the origin is unreachable"
            );
            Ok(None)
        }
        Err(e) => Err(unconfirmed(e.cause())),
    }
}

/// HEAD the manifest; the digest header must be well formed. Without one, GET and hash.
async fn head_digest(
    client: &RegistryClient,
    image: &ImageReference,
    ctx: &RequestContext<'_>,
) -> Result<(Digest, String), ResolveError> {
    let path = format!("{}/manifests/{}", image.repository(), image.tag_or_latest());
    let res = client
        .send(Method::HEAD, &path, &MANIFEST_MEDIA_TYPES, ctx)
        .await?;
    if !res.status().is_success() {
        return Err(client.status_error(res, ctx, None).await);
    }
    let invalid = |cause: String| ResolveError::invalid_response(ctx.image, client.host(), cause);
    let media_type = content_type(res.headers());
    if let Some(digest) = digest_header(res.headers()).map_err(&invalid)? {
        return Ok((digest, media_type));
    }
    let res = client
        .send(Method::GET, &path, &MANIFEST_MEDIA_TYPES, ctx)
        .await?;
    if !res.status().is_success() {
        return Err(client.status_error(res, ctx, None).await);
    }
    let header_digest = digest_header(res.headers()).map_err(&invalid)?;
    let media_type = content_type(res.headers());
    let body = read_limited(res, MAX_MANIFEST_BYTES)
        .await
        .map_err(|e| invalid(format!("reading the manifest: {e}")))?;
    check_manifest(&body).map_err(&invalid)?;
    let algorithm = header_digest
        .as_ref()
        .map_or(crate::digest::DigestAlgorithm::Sha256, Digest::algorithm);
    let computed = Digest::of_bytes(algorithm, &body);
    if let Some(claimed) = header_digest
        && claimed != computed
    {
        return Err(invalid(format!(
            "Docker-Content-Digest {claimed} does not match the manifest's digest {computed}"
        )));
    }
    Ok((computed, media_type))
}

/// The `Docker-Content-Digest` header, validated: `None` when absent.
pub fn digest_header(headers: &http::HeaderMap) -> Result<Option<Digest>, String> {
    let Some(v) = headers.get("docker-content-digest") else {
        return Ok(None);
    };
    let text = v
        .to_str()
        .map_err(|_| "Docker-Content-Digest header is not ASCII".to_owned())?;
    text.trim()
        .parse()
        .map(Some)
        .map_err(|e| format!("malformed Docker-Content-Digest header: {e}"))
}

/// The media type of a response, without parameters.
pub(crate) fn content_type(headers: &http::HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned())
        .unwrap_or_default()
}

/// A manifest or index: schema version 2 with a media type tagpin pins.
fn check_manifest(body: &[u8]) -> Result<(), String> {
    let manifest: oci_client::manifest::OciManifest = serde_json::from_slice(body)
        .map_err(|e| format!("body is neither an image manifest nor an index: {e}"))?;
    let schema_version = match &manifest {
        oci_client::manifest::OciManifest::Image(m) => m.schema_version,
        oci_client::manifest::OciManifest::ImageIndex(i) => i.schema_version,
    };
    if schema_version != 2 {
        return Err(format!(
            "unsupported manifest schemaVersion {schema_version}"
        ));
    }
    let media_type = manifest.content_type();
    if MANIFEST_MEDIA_TYPES.contains(&media_type) {
        Ok(())
    } else {
        Err(format!("unsupported manifest media type {media_type:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_header_forms() {
        let mut h = http::HeaderMap::new();
        assert_eq!(digest_header(&h), Ok(None));
        h.insert(
            "docker-content-digest",
            format!("sha256:{}", "a".repeat(64)).parse().unwrap(),
        );
        assert!(digest_header(&h).unwrap().is_some());
        h.insert("docker-content-digest", "sha256:abc".parse().unwrap());
        assert!(digest_header(&h).unwrap_err().contains("malformed"));
    }

    #[test]
    fn manifests_are_checked() {
        assert!(check_manifest(br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#).is_ok());
        assert!(check_manifest(br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":[]}"#).is_ok());
        assert!(check_manifest(br#"{"schemaVersion":1,"manifests":[]}"#).is_err());
        assert!(check_manifest(br#"{"mediaType":"text/html"}"#).is_err());
        assert!(check_manifest(b"<html>").is_err());
    }
}
