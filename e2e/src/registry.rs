//! Pushes test images (single-platform manifests and two-platform indexes) to the
//! local registries over the registry API, as a client would.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use serde_json::json;
use sha2::Digest as _;

use crate::env::TestEnv;
use crate::{layer, logs};

/// What a test image's layer holds.
#[derive(Debug, Clone, Copy)]
enum Content {
    /// A few bytes: enough for a digest, nothing to run.
    Inert,
    /// Busybox, which the node runs.
    Busybox,
}

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// One of the local registries.
#[derive(Debug, Clone)]
pub struct TestRegistry {
    /// `host:port`.
    pub host: String,
    /// `https` or `http`.
    pub scheme: &'static str,
    /// Basic credentials, when the registry wants them.
    pub credentials: Option<(String, String)>,
    /// The CA that signed its certificate.
    pub ca: Option<PathBuf>,
    /// Its access log.
    pub log: PathBuf,
    http: reqwest::Client,
}

/// A platform of a multi-platform image.
#[derive(Debug, Clone, Copy)]
pub struct Platform {
    /// `amd64`, `arm64`, ...
    pub architecture: &'static str,
    /// `linux`.
    pub os: &'static str,
}

impl Platform {
    /// The two platforms multi-arch test images are built for.
    pub const AMD64_AND_ARM64: [Platform; 2] = [
        Platform {
            architecture: "amd64",
            os: "linux",
        },
        Platform {
            architecture: "arm64",
            os: "linux",
        },
    ];
}

/// What a push created.
#[derive(Debug, Clone)]
pub struct PushedImage {
    /// `sha256:<hex>` of the manifest or index the tag points to.
    pub digest: String,
    /// `host/repository:tag`.
    pub reference: String,
}

impl TestRegistry {
    /// The TLS registry with htpasswd auth.
    pub fn tls() -> Self {
        let env = TestEnv::load();
        let ca = PathBuf::from(env.require("TAGPIN_REGISTRY_CA"));
        Self::build(
            env.require("TAGPIN_REGISTRY"),
            "https",
            Some((
                env.require("TAGPIN_REGISTRY_USER"),
                env.require("TAGPIN_REGISTRY_PASSWORD"),
            )),
            Some(ca),
            PathBuf::from(env.require("TAGPIN_REGISTRY_LOG")),
        )
    }

    /// The TLS registry under the name the node and its Pods use (`hack/registry.sh` in the
    /// cluster's network namespace): the same registry, credentials and CA as
    /// [`TestRegistry::tls`], so what a test pushes here the kubelet can pull.
    pub fn node() -> Self {
        let env = TestEnv::load();
        let mut registry = Self::tls();
        registry.host = env.require("TAGPIN_NODE_REGISTRY");
        registry
    }

    /// The registry that serves the OCI 1.1 referrers API (TLS, same CA and credentials
    /// as [`TestRegistry::tls`]); the other two are distribution 2.8, which has none.
    pub fn referrers() -> Self {
        let env = TestEnv::load();
        Self::build(
            env.require("TAGPIN_REFERRERS_REGISTRY"),
            "https",
            Some((
                env.require("TAGPIN_REGISTRY_USER"),
                env.require("TAGPIN_REGISTRY_PASSWORD"),
            )),
            Some(PathBuf::from(env.require("TAGPIN_REGISTRY_CA"))),
            PathBuf::from(env.require("TAGPIN_REFERRERS_REGISTRY_LOG")),
        )
    }

    /// The plain-HTTP registry used as a mirror.
    pub fn mirror() -> Self {
        let env = TestEnv::load();
        Self::build(
            env.require("TAGPIN_MIRROR"),
            "http",
            None,
            None,
            PathBuf::from(env.require("TAGPIN_MIRROR_LOG")),
        )
    }

    fn build(
        host: String,
        scheme: &'static str,
        credentials: Option<(String, String)>,
        ca: Option<PathBuf>,
        log: PathBuf,
    ) -> Self {
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(30));
        if let Some(ca) = &ca {
            let pem = std::fs::read(ca).unwrap_or_else(|e| panic!("reading {}: {e}", ca.display()));
            let certs = reqwest::Certificate::from_pem_bundle(&pem).expect("test CA is PEM");
            builder = builder.tls_certs_only(certs);
        }
        Self {
            host,
            scheme,
            credentials,
            ca,
            log,
            http: builder.build().expect("HTTP client builds"),
        }
    }

    /// A docker `config.json` holding this registry's credentials.
    pub fn docker_config_json(&self) -> String {
        docker_config_json(&[self])
    }

    /// Reads a manifest by tag or digest: its status and body, without checking it.
    pub async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
        accept: &str,
    ) -> anyhow::Result<(reqwest::StatusCode, Vec<u8>)> {
        let res = self
            .request(
                reqwest::Method::GET,
                &self.url(&format!("{repository}/manifests/{reference}")),
            )
            .header("accept", accept)
            .send()
            .await?;
        Ok((res.status(), res.bytes().await?.to_vec()))
    }

    /// Asks the OCI 1.1 referrers API of `digest`: its status and body.
    pub async fn get_referrers(
        &self,
        repository: &str,
        digest: &str,
    ) -> anyhow::Result<(reqwest::StatusCode, Vec<u8>)> {
        let res = self
            .request(
                reqwest::Method::GET,
                &self.url(&format!("{repository}/referrers/{digest}")),
            )
            .header("accept", OCI_INDEX)
            .send()
            .await?;
        Ok((res.status(), res.bytes().await?.to_vec()))
    }

    fn url(&self, path: &str) -> String {
        format!("{}://{}/v2/{path}", self.scheme, self.host)
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, url);
        match &self.credentials {
            Some((u, p)) => req.basic_auth(u, Some(p)),
            None => req,
        }
    }

    /// Uploads a blob (monolithic), returning its digest.
    pub async fn push_blob(&self, repository: &str, bytes: &[u8]) -> anyhow::Result<String> {
        let digest = sha256(bytes);
        let res = self
            .request(
                reqwest::Method::POST,
                &self.url(&format!("{repository}/blobs/uploads/")),
            )
            .send()
            .await?;
        if res.status() != reqwest::StatusCode::ACCEPTED {
            bail!("starting upload to {repository}: {}", res.status());
        }
        let location = res
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .context("upload has no Location")?
            .to_owned();
        let location = if location.starts_with("http") {
            location
        } else {
            format!("{}://{}{location}", self.scheme, self.host)
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let res = self
            .request(
                reqwest::Method::PUT,
                &format!("{location}{sep}digest={digest}"),
            )
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await?;
        if res.status() != reqwest::StatusCode::CREATED {
            bail!("finishing upload to {repository}: {}", res.status());
        }
        Ok(digest)
    }

    /// Puts a manifest under `reference` (a tag), returning its digest.
    pub async fn push_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> anyhow::Result<String> {
        let res = self
            .request(
                reqwest::Method::PUT,
                &self.url(&format!("{repository}/manifests/{reference}")),
            )
            .header("content-type", media_type)
            .body(bytes.to_vec())
            .send()
            .await?;
        if res.status() != reqwest::StatusCode::CREATED {
            let status = res.status();
            let body = res.text().await.unwrap_or_default();
            bail!("pushing manifest {repository}:{reference}: {status} {body}");
        }
        Ok(sha256(bytes))
    }

    /// Pushes a single-platform image whose content is derived from `seed` and tags it.
    pub async fn push_image(
        &self,
        repository: &str,
        tag: &str,
        seed: &str,
    ) -> anyhow::Result<PushedImage> {
        self.push_single(repository, tag, seed, Content::Inert)
            .await
    }

    /// Pushes a two-or-more-platform image index and tags it.
    pub async fn push_index(
        &self,
        repository: &str,
        tag: &str,
        seed: &str,
        platforms: &[Platform],
    ) -> anyhow::Result<PushedImage> {
        self.push_multi(repository, tag, seed, platforms, Content::Inert)
            .await
    }

    /// Like [`TestRegistry::push_image`], but an image the node runs: busybox sleeping
    /// until it is stopped ([`crate::layer`]).
    pub async fn push_runnable_image(
        &self,
        repository: &str,
        tag: &str,
        seed: &str,
    ) -> anyhow::Result<PushedImage> {
        self.push_single(repository, tag, seed, Content::Busybox)
            .await
    }

    /// Like [`TestRegistry::push_index`], with a runnable image for every platform, each
    /// carrying the busybox built for it.
    pub async fn push_runnable_index(
        &self,
        repository: &str,
        tag: &str,
        seed: &str,
        platforms: &[Platform],
    ) -> anyhow::Result<PushedImage> {
        self.push_multi(repository, tag, seed, platforms, Content::Busybox)
            .await
    }

    async fn push_single(
        &self,
        repository: &str,
        tag: &str,
        seed: &str,
        content: Content,
    ) -> anyhow::Result<PushedImage> {
        let platform = Platform {
            architecture: "amd64",
            os: "linux",
        };
        let (bytes, _) = self
            .image_manifest(repository, seed, platform, content)
            .await?;
        let digest = self
            .push_manifest(repository, tag, OCI_MANIFEST, &bytes)
            .await?;
        Ok(PushedImage {
            digest,
            reference: format!("{}/{repository}:{tag}", self.host),
        })
    }

    async fn push_multi(
        &self,
        repository: &str,
        tag: &str,
        seed: &str,
        platforms: &[Platform],
        content: Content,
    ) -> anyhow::Result<PushedImage> {
        let mut manifests = Vec::new();
        for p in platforms {
            let (bytes, digest) = self
                .image_manifest(
                    repository,
                    &format!("{seed}-{}", p.architecture),
                    *p,
                    content,
                )
                .await?;
            self.push_manifest(repository, &digest, OCI_MANIFEST, &bytes)
                .await?;
            manifests.push(json!({
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": bytes.len(),
                "platform": {"architecture": p.architecture, "os": p.os},
            }));
        }
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
        }))?;
        let digest = self
            .push_manifest(repository, tag, OCI_INDEX, &index)
            .await?;
        Ok(PushedImage {
            digest,
            reference: format!("{}/{repository}:{tag}", self.host),
        })
    }

    async fn image_manifest(
        &self,
        repository: &str,
        seed: &str,
        platform: Platform,
        content: Content,
    ) -> anyhow::Result<(Vec<u8>, String)> {
        let (layer, image_config) = match content {
            Content::Inert => (
                format!("tagpin test layer {seed}").into_bytes(),
                json!({"Labels": {"dev.tagpin.test.seed": seed}}),
            ),
            Content::Busybox => (
                layer::busybox_layer(platform.architecture, seed)?,
                json!({"Labels": {"dev.tagpin.test.seed": seed}, "Cmd": layer::SLEEP_CMD}),
            ),
        };
        let layer_digest = self.push_blob(repository, &layer).await?;
        let config = serde_json::to_vec(&json!({
            "architecture": platform.architecture,
            "os": platform.os,
            "config": image_config,
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        }))?;
        let config_digest = self.push_blob(repository, &config).await?;
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
        }))?;
        let digest = sha256(&manifest);
        Ok((manifest, digest))
    }

    /// Manifest requests with `method` for `repository`'s `reference` in the access log,
    /// after every request answered so far has been logged.
    pub async fn manifest_requests(
        &self,
        method: &str,
        repository: &str,
        reference: &str,
    ) -> usize {
        let marker = format!("tagpin-log-marker-{}", unique_suffix());
        // The registry logs requests in order, so once the marker is logged, so is everything before it.
        let _ = self
            .request(reqwest::Method::GET, &format!("{}?{marker}", self.url("")))
            .send()
            .await;
        let log = self.log.clone();
        let m = marker.clone();
        tokio::task::spawn_blocking(move || logs::wait_for_line(&log, &m, Duration::from_secs(10)))
            .await
            .expect("log wait runs");
        logs::count_manifest_requests(&self.log, method, repository, reference)
    }
}

/// A docker `config.json` holding the credentials of every registry given.
pub fn docker_config_json(registries: &[&TestRegistry]) -> String {
    let auths: serde_json::Map<String, serde_json::Value> = registries
        .iter()
        .map(|r| {
            let (u, p) = r.credentials.clone().unwrap_or_default();
            let auth = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            (r.host.clone(), json!({"auth": auth}))
        })
        .collect();
    json!({"auths": auths}).to_string()
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// A string unique to this process and moment, for fresh repositories and tags.
pub fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{}-{nanos:x}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
