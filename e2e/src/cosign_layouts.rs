//! Signatures and attestations in cosign's registry layouts, made in memory with a test key
//! and stored in a [`RecordingRegistry`]: the cosign v2 `.sig`/`.att` tags, and cosign v3
//! Sigstore bundles as OCI 1.1 referrers. Keyed and without a transparency log, so a policy
//! with `tlog: waived` verifies them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::recording_registry::RecordingRegistry;
use crate::registry::{OCI_INDEX, OCI_MANIFEST};

/// The predicate type of cosign v3's image signatures (a DSSE statement).
pub const COSIGN_SIGN: &str = "https://sigstore.dev/cosign/sign/v1";
/// Media type of Sigstore bundle v0.3.
const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The OCI empty config, `{}`.
const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";

/// A P-256 key pair made for one test.
pub struct TestKey {
    pair: aws_lc_rs::signature::EcdsaKeyPair,
}

impl Default for TestKey {
    fn default() -> Self {
        Self::new()
    }
}

impl TestKey {
    /// A fresh key.
    pub fn new() -> Self {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .expect("P-256 key generates");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
            .expect("generated key reads back");
        Self { pair }
    }

    /// The public key as PEM.
    pub fn pem(&self) -> String {
        use aws_lc_rs::encoding::AsDer as _;
        use aws_lc_rs::signature::KeyPair as _;
        let der: aws_lc_rs::encoding::PublicKeyX509Der<'_> =
            self.pair.public_key().as_der().expect("public key encodes");
        let b64 = STANDARD.encode(der.as_ref());
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    /// An ECDSA P-256 SHA-256 signature over `message`, DER.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.pair
            .sign(&rng, message)
            .expect("signing works")
            .as_ref()
            .to_vec()
    }

    /// A DSSE envelope of an in-toto statement of `predicate_type` about `digest`.
    fn envelope(&self, name: &str, digest: &str, predicate_type: &str) -> Value {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        let statement = json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": name, "digest": {"sha256": hex}}],
            "predicateType": predicate_type,
            "predicate": {},
        });
        let payload = serde_json::to_vec(&statement).expect("statement serializes");
        let payload_type = "application/vnd.in-toto+json";
        let mut pae = format!(
            "DSSEv1 {} {payload_type} {} ",
            payload_type.len(),
            payload.len()
        )
        .into_bytes();
        pae.extend_from_slice(&payload);
        json!({
            "payloadType": payload_type,
            "payload": STANDARD.encode(&payload),
            "signatures": [{"keyid": "", "sig": STANDARD.encode(self.sign(&pae))}],
        })
    }
}

/// `host/repository`, as signatures name the image.
fn image_name(registry: &RecordingRegistry, repository: &str) -> String {
    format!("{}/{repository}", registry.addr)
}

fn manifest(registry: &RecordingRegistry, repository: &str, layers: Vec<Value>) -> Vec<u8> {
    let config = registry.put_blob(repository, b"{}");
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": layers,
    }))
    .expect("manifest serializes")
}

fn layer(
    registry: &RecordingRegistry,
    repository: &str,
    media_type: &str,
    bytes: &[u8],
    annotations: Value,
) -> Value {
    let digest = registry.put_blob(repository, bytes);
    json!({"mediaType": media_type, "digest": digest, "size": bytes.len(), "annotations": annotations})
}

/// Pushes a distinct image manifest tagged `tag`; returns its digest.
pub fn push_image(registry: &RecordingRegistry, repository: &str, tag: &str) -> String {
    let config = registry.put_blob(repository, format!("{repository}:{tag}").as_bytes());
    let bytes = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 1},
        "layers": [],
    }))
    .expect("manifest serializes");
    registry.put_manifest(repository, Some(tag), OCI_MANIFEST, &bytes)
}

/// Pushes an index tagged `tag` listing `platforms` (image digests, for linux/amd64,
/// linux/arm64, ...); returns its digest.
pub fn push_index(
    registry: &RecordingRegistry,
    repository: &str,
    tag: &str,
    platforms: &[String],
) -> String {
    let architectures = ["amd64", "arm64", "s390x", "ppc64le"];
    let manifests: Vec<Value> = platforms
        .iter()
        .zip(architectures.iter().cycle())
        .map(|(digest, arch)| {
            json!({
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": 1,
                "platform": {"os": "linux", "architecture": arch},
            })
        })
        .collect();
    let bytes = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    }))
    .expect("index serializes");
    registry.put_manifest(repository, Some(tag), OCI_INDEX, &bytes)
}

/// cosign v2's layout: a simple-signing signature under `sha256-<hex>.sig` and, when
/// `attestations` names predicate types, one DSSE layer each under `sha256-<hex>.att`.
pub fn sign_v2(
    registry: &RecordingRegistry,
    repository: &str,
    digest: &str,
    key: &TestKey,
    attestations: &[&str],
) {
    let name = image_name(registry, repository);
    let payload = serde_json::to_vec(&json!({
        "critical": {
            "identity": {"docker-reference": name},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": null,
    }))
    .expect("payload serializes");
    let signature = STANDARD.encode(key.sign(&payload));
    let sig = layer(
        registry,
        repository,
        "application/vnd.dev.cosign.simplesigning.v1+json",
        &payload,
        json!({"dev.cosignproject.cosign/signature": signature}),
    );
    let tag = digest.replacen(':', "-", 1);
    let bytes = manifest(registry, repository, vec![sig]);
    registry.put_manifest(
        repository,
        Some(&format!("{tag}.sig")),
        OCI_MANIFEST,
        &bytes,
    );
    if attestations.is_empty() {
        return;
    }
    let layers = attestations
        .iter()
        .map(|predicate_type| {
            let envelope = key.envelope(&name, digest, predicate_type);
            layer(
                registry,
                repository,
                "application/vnd.dsse.envelope.v1+json",
                &serde_json::to_vec(&envelope).expect("envelope serializes"),
                json!({"dev.cosignproject.cosign/signature": "", "predicateType": predicate_type}),
            )
        })
        .collect();
    let bytes = manifest(registry, repository, layers);
    registry.put_manifest(
        repository,
        Some(&format!("{tag}.att")),
        OCI_MANIFEST,
        &bytes,
    );
}

/// cosign v3's layout: a Sigstore bundle referrer holding a signature statement, and one
/// bundle referrer per predicate type in `attestations`.
pub fn sign_v3(
    registry: &RecordingRegistry,
    repository: &str,
    digest: &str,
    key: &TestKey,
    attestations: &[&str],
) {
    let name = image_name(registry, repository);
    for predicate_type in std::iter::once(&COSIGN_SIGN).chain(attestations) {
        let bundle = json!({
            "mediaType": BUNDLE,
            "verificationMaterial": {"publicKey": {"hint": "test"}, "tlogEntries": []},
            "dsseEnvelope": key.envelope(&name, digest, predicate_type),
        });
        let bytes = serde_json::to_vec(&bundle).expect("bundle serializes");
        let blob = registry.put_blob(repository, &bytes);
        let empty = registry.put_blob(repository, b"{}");
        let referrer = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": BUNDLE,
            "config": {"mediaType": EMPTY_CONFIG, "digest": empty, "size": 2},
            "layers": [{"mediaType": BUNDLE, "digest": blob, "size": bytes.len()}],
            "annotations": {
                "dev.sigstore.bundle.content": "dsse-envelope",
                "dev.sigstore.bundle.predicateType": predicate_type,
            },
        });
        registry.put_referrer(repository, digest, referrer);
    }
}
