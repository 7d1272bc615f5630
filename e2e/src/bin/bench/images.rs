//! The bench's images in the real registry: many tags with distinct digests pushed
//! cheaply (shared blobs, one manifest per tag), signed with real cosign, and the
//! registry's own HEAD latency measured directly.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use serde_json::json;
use tagpin_e2e::TestRegistry;
use tagpin_e2e::registry::OCI_MANIFEST;

use crate::access_log::AccessLog;

/// Pushes at most this many requests to the registry at once.
const PUSH_CONCURRENCY: usize = 8;
/// cosign processes signing at once.
const SIGN_PROCESSES: usize = 6;

/// The blobs every bench manifest of one repository shares.
#[derive(Debug, Clone)]
struct Blobs {
    config: (String, usize),
    layer: (String, usize),
}

/// Pushes and signs the bench's images and times the registry directly.
#[derive(Clone)]
pub struct Images {
    /// The TLS registry.
    pub registry: TestRegistry,
    http: reqwest::Client,
    auth: String,
}

impl Images {
    /// A client of the TLS registry with its credentials.
    pub fn new() -> anyhow::Result<Self> {
        let registry = TestRegistry::tls();
        let ca = registry.ca.clone().context("the TLS registry has no CA")?;
        let pem = std::fs::read(&ca).with_context(|| format!("reading {}", ca.display()))?;
        let http = reqwest::Client::builder()
            .tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem)?)
            .timeout(Duration::from_secs(30))
            .build()?;
        let (user, password) = registry.credentials.clone().unwrap_or_default();
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        Ok(Self {
            registry,
            http,
            auth,
        })
    }

    /// Pushes one manifest per tag in `repository`, each with its own digest; returns the
    /// digests in the order of `tags`.
    pub async fn push_tags(
        &self,
        repository: &str,
        tags: &[String],
    ) -> anyhow::Result<Vec<String>> {
        let blobs = self.push_blobs(repository).await?;
        let gate = Arc::new(tokio::sync::Semaphore::new(PUSH_CONCURRENCY));
        let mut set = tokio::task::JoinSet::new();
        for (i, tag) in tags.iter().enumerate() {
            let (me, blobs, gate) = (self.clone(), blobs.clone(), gate.clone());
            let (repository, tag) = (repository.to_owned(), tag.clone());
            set.spawn(async move {
                let _permit = gate.acquire().await?;
                let manifest = manifest(&blobs, &format!("{repository}:{tag}"))?;
                let digest = me
                    .registry
                    .push_manifest(&repository, &tag, OCI_MANIFEST, &manifest)
                    .await?;
                anyhow::Ok((i, digest))
            });
        }
        let mut digests = vec![String::new(); tags.len()];
        while let Some(done) = set.join_next().await {
            let (i, digest) = done??;
            digests[i] = digest;
        }
        Ok(digests)
    }

    async fn push_blobs(&self, repository: &str) -> anyhow::Result<Blobs> {
        let layer = b"tagpin bench layer".to_vec();
        let layer_digest = self.registry.push_blob(repository, &layer).await?;
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        }))?;
        let config_digest = self.registry.push_blob(repository, &config).await?;
        Ok(Blobs {
            config: (config_digest, config.len()),
            layer: (layer_digest, layer.len()),
        })
    }

    /// How long the registry takes to answer `HEAD` for `group` tags at once, one group
    /// after another, over keep-alive connections: one sample per group.
    pub async fn head_latency(
        &self,
        repository: &str,
        tags: &[String],
        group: usize,
    ) -> anyhow::Result<Vec<Duration>> {
        // The first request opens the connection; it is not timed.
        self.head(repository, &tags[0]).await?;
        let mut samples = Vec::new();
        for chunk in tags[1..].chunks(group) {
            let started = Instant::now();
            let mut set = tokio::task::JoinSet::new();
            for tag in chunk {
                let (me, repository, tag) = (self.clone(), repository.to_owned(), tag.clone());
                set.spawn(async move { me.head(&repository, &tag).await });
            }
            while let Some(done) = set.join_next().await {
                done??;
            }
            samples.push(started.elapsed());
        }
        Ok(samples)
    }

    /// Asks the registry's `/v2/` once: a TLS handshake and nothing else.
    pub async fn ping(&self) -> anyhow::Result<()> {
        let res = self.get_v2("").await?;
        if !res.status().is_success() {
            bail!("GET /v2/: {}", res.status());
        }
        Ok(())
    }

    /// `GET /v2/<query>` with the registry's credentials.
    async fn get_v2(&self, query: &str) -> reqwest::Result<reqwest::Response> {
        let url = format!("https://{}/v2/{query}", self.registry.host);
        self.http
            .get(&url)
            .header("authorization", &self.auth)
            .send()
            .await
    }

    async fn head(&self, repository: &str, tag: &str) -> anyhow::Result<()> {
        let url = format!(
            "https://{}/v2/{repository}/manifests/{tag}",
            self.registry.host
        );
        let res = self
            .http
            .head(&url)
            .header("authorization", &self.auth)
            .header("accept", OCI_MANIFEST)
            .send()
            .await?;
        if !res.status().is_success() || res.headers().get("docker-content-digest").is_none() {
            bail!("HEAD {url}: {} without Docker-Content-Digest", res.status());
        }
        Ok(())
    }

    /// Waits until every request the registry answered so far is in its access log (it
    /// logs in order, so a marker request logged means all before it are).
    pub async fn settle_log(&self, log: &AccessLog, since: u64) -> anyhow::Result<()> {
        let marker = format!(
            "tagpin-bench-marker-{}",
            tagpin_e2e::registry::unique_suffix()
        );
        let _ = self.get_v2(&format!("?{marker}")).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !log.contains_since(since, &marker) {
            if Instant::now() >= deadline {
                bail!("the registry did not log {marker} within 10s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

fn manifest(blobs: &Blobs, name: &str) -> anyhow::Result<Vec<u8>> {
    // The annotation alone makes each tag's digest distinct; blobs are shared.
    Ok(serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blobs.config.0, "size": blobs.config.1},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": blobs.layer.0, "size": blobs.layer.1}],
        "annotations": {"dev.tagpin.bench.image": name},
    }))?)
}

/// A cosign key pair and the registry login cosign uses, in a directory.
pub struct Signer {
    dir: PathBuf,
    cosign: PathBuf,
    registry: TestRegistry,
    /// cosign v3: Sigstore bundles as referrers, and no signing config.
    v3: bool,
}

impl Signer {
    /// Generates a key pair (empty password) with real cosign in `dir`.
    pub fn generate(dir: &Path, cosign: &Path, registry: &TestRegistry) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir.join("docker"))?;
        std::fs::write(
            dir.join("docker/config.json"),
            registry.docker_config_json(),
        )?;
        let signer = Self {
            dir: dir.to_owned(),
            cosign: cosign.to_owned(),
            registry: registry.clone(),
            v3: false,
        };
        if !dir.join("cosign.key").is_file() {
            signer.run(&["generate-key-pair", "--output-key-prefix", "cosign"])?;
        }
        Ok(signer)
    }

    /// The public key file, for the policy.
    pub fn public_key(&self) -> PathBuf {
        self.dir.join("cosign.pub")
    }

    /// The same key pair and login, signing with cosign v3 (`cosign`).
    pub fn v3(&self, cosign: &Path) -> Self {
        Self {
            dir: self.dir.clone(),
            cosign: cosign.to_owned(),
            registry: self.registry.clone(),
            v3: true,
        }
    }

    /// Logs cosign in to `host` too, another address of the same registry (a proxy).
    pub fn login_alias(&self, host: &str) -> anyhow::Result<()> {
        let mut alias = self.registry.clone();
        alias.host = host.to_owned();
        std::fs::write(
            self.dir.join("docker/config.json"),
            tagpin_e2e::registry::docker_config_json(&[&self.registry, &alias]),
        )?;
        Ok(())
    }

    /// Attests a predicate of `predicate_type` (a URI) about every image, one cosign process
    /// per image and several at once.
    pub fn attest(&self, images: &[String], predicate_type: &str) -> anyhow::Result<()> {
        let predicate = self.dir.join(format!(
            "predicate-{}.json",
            tagpin_e2e::registry::unique_suffix()
        ));
        std::fs::write(&predicate, json!({"bench": predicate_type}).to_string())?;
        let key = self.dir.join("cosign.key").display().to_string();
        let predicate = predicate.display().to_string();
        for chunk in images.chunks(SIGN_PROCESSES) {
            let mut running = Vec::new();
            for image in chunk {
                let mut args = vec!["attest", "--yes", "--key", key.as_str()];
                args.extend(["--type", predicate_type, "--predicate", predicate.as_str()]);
                args.extend(self.offline_flags());
                args.push(image.as_str());
                running.push(
                    self.command(&args)
                        .stdout(Stdio::null())
                        .stderr(Stdio::piped())
                        .spawn()?,
                );
            }
            wait_all(running, "attest")?;
        }
        Ok(())
    }

    /// Flags that keep cosign offline: no transparency log, and for v3 no signing config.
    fn offline_flags(&self) -> Vec<&'static str> {
        if self.v3 {
            vec!["--tlog-upload=false", "--use-signing-config=false"]
        } else {
            vec!["--tlog-upload=false"]
        }
    }

    /// Signs every `host/repository@digest` in `images`, many per cosign run and
    /// several runs at once (cosign signs one image after another, each a dozen requests).
    pub fn sign(&self, images: &[String]) -> anyhow::Result<()> {
        let key = self.dir.join("cosign.key").display().to_string();
        let per_run = images.len().div_ceil(SIGN_PROCESSES).max(1);
        let mut running = Vec::new();
        for chunk in images.chunks(per_run) {
            let mut args = vec!["sign", "--yes", "--key", key.as_str()];
            args.extend(self.offline_flags());
            args.extend(chunk.iter().map(String::as_str));
            running.push(
                self.command(&args)
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()?,
            );
        }
        wait_all(running, "sign")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.cosign);
        cmd.args(args)
            .current_dir(&self.dir)
            .env("COSIGN_PASSWORD", "")
            .env("DOCKER_CONFIG", self.dir.join("docker"))
            // No TUF fetch of the public-good root: the bench is offline.
            .env("TUF_ROOT", self.dir.join("tuf"));
        if let Some(ca) = &self.registry.ca {
            // cosign trusts the registry's test CA through Go's SSL_CERT_FILE.
            cmd.env("SSL_CERT_FILE", ca);
        }
        cmd
    }

    fn run(&self, args: &[&str]) -> anyhow::Result<()> {
        let out = self
            .command(args)
            .output()
            .with_context(|| format!("running {}", self.cosign.display()))?;
        if !out.status.success() {
            bail!(
                "cosign {} failed: {}",
                args.first().unwrap_or(&""),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

/// Waits for every cosign process; the first failure names the command and its stderr.
fn wait_all(running: Vec<std::process::Child>, what: &str) -> anyhow::Result<()> {
    let mut failed = None;
    for child in running {
        let out = child.wait_with_output()?;
        if !out.status.success() && failed.is_none() {
            failed = Some(String::from_utf8_lossy(&out.stderr).into_owned());
        }
    }
    match failed {
        Some(stderr) => bail!("cosign {what} failed: {stderr}"),
        None => Ok(()),
    }
}
