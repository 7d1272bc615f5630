//! An in-memory registry implementing `ArtifactSource`, and fixture helpers.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tagpin_resolver::{Digest, ImageReference};
use tagpin_verifier::{ArtifactSource, CompiledPolicy, Fetched, Policy, SourceError};

/// Registry contents keyed by tag or digest; one repository is enough here.
#[derive(Default)]
pub struct MemoryRegistry {
    manifests: Mutex<HashMap<String, Fetched>>,
    blobs: Mutex<HashMap<String, Vec<u8>>>,
    referrers: Mutex<HashMap<String, Vec<u8>>>,
    /// When set, every call fails with this cause.
    pub fail: Mutex<Option<String>>,
}

impl MemoryRegistry {
    fn check(&self) -> Result<(), SourceError> {
        match &*self.fail.lock().unwrap() {
            Some(cause) => Err(SourceError {
                registry: "127.0.0.1:5443".into(),
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Stores a blob and returns its digest.
    pub fn put_blob(&self, bytes: &[u8]) -> Digest {
        let d = Digest::sha256(bytes);
        self.blobs
            .lock()
            .unwrap()
            .insert(d.to_string(), bytes.to_vec());
        d
    }

    /// Stores a manifest under its digest and optionally a tag.
    pub fn put_manifest(&self, tag: Option<&str>, media_type: &str, bytes: &[u8]) -> Digest {
        let d = Digest::sha256(bytes);
        let f = Fetched {
            media_type: media_type.into(),
            digest: d.clone(),
            bytes: bytes.to_vec(),
        };
        let mut m = self.manifests.lock().unwrap();
        m.insert(d.to_string(), f.clone());
        if let Some(t) = tag {
            m.insert(t.to_owned(), f);
        }
        d
    }

    /// Stores `bytes` under `reference` as they are, even under a digest they
    /// do not hash to: a registry that lies.
    pub fn put_raw(&self, reference: &str, media_type: &str, bytes: &[u8]) {
        let f = Fetched {
            media_type: media_type.into(),
            digest: Digest::sha256(bytes),
            bytes: bytes.to_vec(),
        };
        self.manifests
            .lock()
            .unwrap()
            .insert(reference.to_owned(), f);
    }

    /// Removes a tag.
    pub fn delete_tag(&self, tag: &str) {
        self.manifests.lock().unwrap().remove(tag);
    }

    /// Stores a layer blob and returns its descriptor.
    pub fn layer(&self, media_type: &str, bytes: &[u8], annotations: Value) -> Value {
        let d = self.put_blob(bytes);
        json!({"mediaType": media_type, "digest": d.to_string(), "size": bytes.len(), "annotations": annotations})
    }

    /// Writes a cosign v2 tag (`sha256-<hex>.sig` / `.att`) with these layers.
    pub fn put_v2_tag(&self, subject: &Digest, suffix: &str, layers: Vec<Value>) {
        let config = self.put_blob(b"{}");
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": 2},
            "layers": layers,
        });
        let tag = format!("sha256-{}.{suffix}", subject.hex());
        self.put_manifest(
            Some(&tag),
            "application/vnd.oci.image.manifest.v1+json",
            &serde_json::to_vec(&manifest).unwrap(),
        );
    }

    /// Attaches Sigstore bundles to `subject` as OCI 1.1 referrers.
    pub fn put_bundle_referrers(&self, subject: &Digest, bundles: &[Vec<u8>]) {
        let mut entries = Vec::new();
        for b in bundles {
            let layer = self.layer(BUNDLE_TYPE, b, json!({}));
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "artifactType": BUNDLE_TYPE,
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2},
                "layers": [layer],
                "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject.to_string(), "size": 1},
            });
            let bytes = serde_json::to_vec(&manifest).unwrap();
            let d = self.put_manifest(None, "application/vnd.oci.image.manifest.v1+json", &bytes);
            entries.push(json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d.to_string(), "size": bytes.len(), "artifactType": BUNDLE_TYPE}));
        }
        let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries});
        self.referrers
            .lock()
            .unwrap()
            .insert(subject.to_string(), serde_json::to_vec(&index).unwrap());
    }
}

/// Media type of Sigstore bundle v0.3.
pub const BUNDLE_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

impl ArtifactSource for MemoryRegistry {
    fn manifest(
        &self,
        _image: &ImageReference,
        reference: &str,
    ) -> impl Future<Output = Result<Option<Fetched>, SourceError>> + Send {
        let r = self
            .check()
            .map(|_| self.manifests.lock().unwrap().get(reference).cloned());
        async move { r }
    }

    fn blob(
        &self,
        _image: &ImageReference,
        digest: &Digest,
    ) -> impl Future<Output = Result<Vec<u8>, SourceError>> + Send {
        let r = self.check().and_then(|_| {
            self.blobs
                .lock()
                .unwrap()
                .get(&digest.to_string())
                .cloned()
                .ok_or_else(|| SourceError {
                    registry: "127.0.0.1:5443".into(),
                    cause: format!("blob {digest} not found"),
                })
        });
        async move { r }
    }

    fn referrers(
        &self,
        _image: &ImageReference,
        digest: &Digest,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, SourceError>> + Send {
        let r = self.check().map(|_| {
            self.referrers
                .lock()
                .unwrap()
                .get(&digest.to_string())
                .cloned()
        });
        async move { r }
    }
}

/// Path of a fixture file.
pub fn fixture_path(name: &str) -> String {
    let mut p = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    p.push("tests/fixtures");
    p.push(name);
    p.to_string_lossy().into_owned()
}

/// Contents of a fixture file.
pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap()
}

/// Contents of a fixture file as text.
pub fn fixture_text(name: &str) -> String {
    String::from_utf8(fixture(name)).unwrap()
}

/// The fixtures made by the Go generator.
pub fn generated() -> Value {
    serde_json::from_slice(&fixture("generated.json")).unwrap()
}

/// The digest of the stand-in image manifest the fixtures sign.
pub fn d1() -> Digest {
    Digest::sha256(&fixture("manifest.json"))
}

/// The digest of the other stand-in manifest.
pub fn d2() -> Digest {
    Digest::sha256(&fixture("manifest-other.json"))
}

/// The image the fixtures name.
pub fn image() -> ImageReference {
    ImageReference::parse("127.0.0.1:5443/team/app:v1").unwrap()
}

/// Parses and compiles a YAML policy, with `$FIXTURES` replaced by the fixture directory.
pub fn policy(yaml: &str) -> CompiledPolicy {
    try_policy(yaml).unwrap()
}

/// Parses and compiles a YAML policy, returning the error text on failure.
pub fn try_policy(yaml: &str) -> Result<CompiledPolicy, String> {
    let yaml = yaml.replace("$FIXTURES", &fixture_path(""));
    let p: Policy = serde_norway::from_str(&yaml).map_err(|e| e.to_string())?;
    p.compile().map_err(|e| e.to_string())
}

/// A `.sig` layer for a payload file and its base64 signature.
pub fn sig_layer(reg: &MemoryRegistry, payload: &[u8], sig_b64: &str, extra: Value) -> Value {
    let mut annotations = json!({"dev.cosignproject.cosign/signature": sig_b64.trim()});
    if let (Some(a), Some(e)) = (annotations.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            a.insert(k.clone(), v.clone());
        }
    }
    reg.layer(
        "application/vnd.dev.cosign.simplesigning.v1+json",
        payload,
        annotations,
    )
}

/// A `.att` layer holding a DSSE envelope.
pub fn att_layer(reg: &MemoryRegistry, envelope: &[u8]) -> Value {
    reg.layer(
        "application/vnd.dsse.envelope.v1+json",
        envelope,
        json!({"dev.cosignproject.cosign/signature": ""}),
    )
}

/// A Sigstore v0.3 bundle around a DSSE envelope file, keyed (public key hint).
pub fn dsse_bundle(envelope: &[u8]) -> Vec<u8> {
    let env: Value = serde_json::from_slice(envelope).unwrap();
    serde_json::to_vec(&json!({
        "mediaType": BUNDLE_TYPE,
        "verificationMaterial": {"publicKey": {"hint": "cosign.pub"}, "tlogEntries": []},
        "dsseEnvelope": env,
    }))
    .unwrap()
}

/// Base64 encoding.
pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

impl MemoryRegistry {
    /// Loads what `fixtures/capture.sh` saved from a real registry after
    /// cosign v2 and v3 signed and attested two images. The `sha256-<hex>`
    /// tag index is served as the referrers list, as the registry client's
    /// tag-schema fallback does.
    pub fn captured() -> Self {
        let reg = Self::default();
        let dir = fixture_path("captured");
        for entry in std::fs::read_dir(format!("{dir}/blobs")).unwrap() {
            reg.put_blob(&std::fs::read(entry.unwrap().path()).unwrap());
        }
        let media_type = |bytes: &[u8]| {
            serde_json::from_slice::<Value>(bytes).unwrap()["mediaType"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        for entry in std::fs::read_dir(format!("{dir}/manifests")).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            reg.put_manifest(None, &media_type(&bytes), &bytes);
        }
        for entry in std::fs::read_dir(format!("{dir}/tags")).unwrap() {
            let entry = entry.unwrap();
            let tag = entry.file_name().to_string_lossy().into_owned();
            let bytes = std::fs::read(entry.path()).unwrap();
            reg.put_manifest(Some(&tag), &media_type(&bytes), &bytes);
            if let Some(hex) = tag.strip_prefix("sha256-").filter(|t| !t.contains('.')) {
                reg.referrers
                    .lock()
                    .unwrap()
                    .insert(format!("sha256:{hex}"), bytes);
            }
        }
        reg
    }
}

/// The images `fixtures/capture.sh` signed: the repository, and the digests
/// signed with cosign v2 (key), cosign v3 (key), cosign v2 (test-CA
/// certificate) and cosign v2 in OCI 1.1 mode (key).
pub fn captured_images() -> (ImageReference, Digest, Digest, Digest, Digest) {
    let v: Value = serde_json::from_slice(&fixture("captured/images.json")).unwrap();
    let digest = |k: &str| v[k].as_str().unwrap().parse().unwrap();
    (
        ImageReference::parse(&format!("{}:v1", v["repository"].as_str().unwrap())).unwrap(),
        digest("v2"),
        digest("v3"),
        digest("ca"),
        digest("oci11"),
    )
}

/// A P-256 signing key made for one test, standing in for a key the policy
/// trusts (a CI key, say) that signed something it should not have.
pub use tagpin_e2e::cosign_layouts::TestKey;

/// A keyed policy for a test key.
pub trait KeyPolicy {
    /// A keyed policy trusting this key for every image, with `tlog: waived`.
    fn policy(&self) -> String;
}

impl KeyPolicy for TestKey {
    fn policy(&self) -> String {
        format!(
            "noMatch: deny\nrules:\n  - name: r\n    images: [\"**\"]\n    signatures:\n      anyOf:\n        - key: {{pem: {}}}\n          tlog: waived\n",
            serde_json::to_string(&self.pem()).unwrap()
        )
    }
}

/// A Sigstore v0.3 message-signature bundle with a public-key hint; with
/// `digest`, it names that SHA-256 message digest.
pub fn message_bundle(signature: &[u8], digest: Option<&[u8]>) -> Vec<u8> {
    let mut ms = json!({"signature": b64(signature)});
    if let Some(d) = digest {
        ms["messageDigest"] = json!({"algorithm": "SHA2_256", "digest": b64(d)});
    }
    serde_json::to_vec(&json!({
        "mediaType": BUNDLE_TYPE,
        "verificationMaterial": {"publicKey": {"hint": "test"}, "tlogEntries": []},
        "messageSignature": ms,
    }))
    .unwrap()
}

impl MemoryRegistry {
    /// Stores an image index listing `entries` (descriptor JSON) and returns its digest.
    pub fn put_index(&self, entries: Vec<Value>) -> Digest {
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": entries,
        });
        self.put_manifest(
            None,
            "application/vnd.oci.image.index.v1+json",
            &serde_json::to_vec(&index).unwrap(),
        )
    }

    /// Stores an image manifest with one distinct layer and returns its digest.
    pub fn put_image(&self, seed: &str) -> Digest {
        let layer = self.put_blob(seed.as_bytes());
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": layer.to_string(), "size": seed.len()},
            "layers": [],
        });
        self.put_manifest(
            None,
            "application/vnd.oci.image.manifest.v1+json",
            &serde_json::to_vec(&manifest).unwrap(),
        )
    }
}

/// An index entry for `digest` on `os/arch`, with optional annotations.
pub fn index_entry(digest: &Digest, os: &str, arch: &str, annotations: Value) -> Value {
    json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": digest.to_string(),
        "size": 1,
        "platform": {"os": os, "architecture": arch},
        "annotations": annotations,
    })
}
