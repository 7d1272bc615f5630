//! Finding the signatures and attestations of one digest: cosign v2 `.sig`
//! and `.att` tags, and OCI 1.1 referrers holding Sigstore bundles (cosign
//! v3) or cosign v2 signature and attestation manifests (its OCI 1.1 mode).

use tagpin_resolver::{Digest, ImageReference};

use crate::bundle::{self, BUNDLE_V03_MEDIA_TYPE};
use crate::cosign_v2::{self, DSSE_MEDIA_TYPE, Manifest, SIMPLE_SIGNING_MEDIA_TYPE};
use crate::evidence::{COSIGN_SIGN_PREDICATE, Claims, Found};
use crate::source::{ArtifactSource, SourceError};

/// Most layers or referrers read per tag or index; a registry cannot make one
/// admission fetch an unbounded number of blobs.
const MAX_ARTIFACTS: usize = 64;

/// Artifact type of cosign v2 signature manifests stored as OCI 1.1 referrers.
const COSIGN_SIG_ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// Artifact type of cosign v2 attestation manifests stored as OCI 1.1 referrers.
const COSIGN_ATT_ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.att.v1+json";

/// The OCI empty config's media type. cosign v2 (go-containerregistry before v0.21) lists a
/// bundle referrer under it in the referrers tag schema instead of the manifest's
/// `artifactType`, so such entries are read to learn their type.
const EMPTY_CONFIG_TYPE: &str = "application/vnd.oci.empty.v1+json";

/// Annotation cosign v3 sets on bundle referrers with the statement's predicate type.
const PREDICATE_TYPE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";

/// Everything found, plus notes on artifacts that could not be read.
#[derive(Debug, Default)]
pub struct Discovery {
    /// Signatures and attestations.
    pub found: Found,
    /// Artifacts skipped because they were malformed, for failure messages.
    pub notes: Vec<String>,
}

fn tag_for(digest: &Digest, suffix: &str) -> String {
    format!("{}-{}.{suffix}", digest.algorithm().name(), digest.hex())
}

/// Reads a layer's blob; a malformed layer digest becomes a note and `None`.
async fn layer_blob<S: ArtifactSource>(
    source: &S,
    image: &ImageReference,
    layer_digest: &str,
    origin: &str,
    notes: &mut Vec<String>,
) -> Result<Option<Vec<u8>>, SourceError> {
    match layer_digest.parse::<Digest>() {
        Ok(d) => source.blob(image, &d).await.map(Some),
        Err(e) => {
            notes.push(format!(
                "{origin}: layer digest {layer_digest:?} is invalid: {e}"
            ));
            Ok(None)
        }
    }
}

/// Reads every signature and attestation attached to `digest`. Registry
/// failures are returned as errors; malformed artifacts become notes.
pub async fn discover<S: ArtifactSource>(
    source: &S,
    image: &ImageReference,
    digest: &Digest,
) -> Result<Discovery, SourceError> {
    let mut out = Discovery::default();
    v2_tag(source, image, digest, "sig", &mut out).await?;
    v2_tag(source, image, digest, "att", &mut out).await?;
    referrers(source, image, digest, &mut out).await?;
    Ok(out)
}

async fn v2_tag<S: ArtifactSource>(
    source: &S,
    image: &ImageReference,
    digest: &Digest,
    suffix: &str,
    out: &mut Discovery,
) -> Result<(), SourceError> {
    let tag = tag_for(digest, suffix);
    let Some(fetched) = source.manifest(image, &tag).await? else {
        return Ok(());
    };
    let kind = if suffix == "sig" {
        Kind::Signatures
    } else {
        Kind::Attestations
    };
    read_layers(source, image, &tag, &fetched.bytes, kind, out).await
}

/// What the layers of a cosign signature manifest hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Simple-signing payloads (`.sig`).
    Signatures,
    /// DSSE envelopes (`.att`).
    Attestations,
}

/// Reads the layers of a cosign v2 signature or attestation manifest, found
/// by tag or, in cosign's OCI 1.1 mode, as a referrer.
async fn read_layers<S: ArtifactSource>(
    source: &S,
    image: &ImageReference,
    name: &str,
    bytes: &[u8],
    kind: Kind,
    out: &mut Discovery,
) -> Result<(), SourceError> {
    let manifest = match Manifest::parse(bytes) {
        Ok(m) => m,
        Err(e) => {
            out.notes.push(format!("{name}: {e}"));
            return Ok(());
        }
    };
    if manifest.layers.len() > MAX_ARTIFACTS {
        out.notes.push(format!(
            "{name}: only the first {MAX_ARTIFACTS} of {} layers were read",
            manifest.layers.len()
        ));
    }
    let want = match kind {
        Kind::Signatures => SIMPLE_SIGNING_MEDIA_TYPE,
        Kind::Attestations => DSSE_MEDIA_TYPE,
    };
    for (i, layer) in manifest.layers.iter().take(MAX_ARTIFACTS).enumerate() {
        let origin = format!("{name} layer {i}");
        if layer.media_type != want {
            out.notes.push(format!(
                "{origin}: media type {:?} ignored",
                layer.media_type
            ));
            continue;
        }
        let Some(blob) = layer_blob(source, image, &layer.digest, &origin, &mut out.notes).await?
        else {
            continue;
        };
        let built = match kind {
            Kind::Signatures => cosign_v2::signature_evidence(origin, layer, blob).map(|e| vec![e]),
            Kind::Attestations => cosign_v2::attestation_evidence(origin, layer, &blob),
        };
        match (built, kind) {
            (Ok(evidence), Kind::Signatures) => out.found.signatures.extend(evidence),
            (Ok(evidence), Kind::Attestations) => out.found.attestations.extend(evidence),
            (Err(e), _) => out.notes.push(e),
        }
    }
    Ok(())
}

/// A referrer's artifact type: as listed, or the manifest's own where the listing gave
/// the empty config's type.
fn listed_type(desc: &cosign_v2::Descriptor, manifest: &[u8]) -> Option<String> {
    match desc.artifact_type.as_deref() {
        Some(EMPTY_CONFIG_TYPE) => Manifest::parse(manifest).ok()?.artifact_type,
        t => t.map(str::to_owned),
    }
}

async fn referrers<S: ArtifactSource>(
    source: &S,
    image: &ImageReference,
    digest: &Digest,
    out: &mut Discovery,
) -> Result<(), SourceError> {
    let Some(index) = source.referrers(image, digest).await? else {
        return Ok(());
    };
    let index = match Manifest::parse(&index) {
        Ok(m) => m,
        Err(e) => {
            out.notes.push(format!("referrers of {digest}: {e}"));
            return Ok(());
        }
    };
    let mut subject_manifest: Option<Vec<u8>> = None;
    let wanted = [
        BUNDLE_V03_MEDIA_TYPE,
        COSIGN_SIG_ARTIFACT_TYPE,
        COSIGN_ATT_ARTIFACT_TYPE,
    ];
    let bundles: Vec<_> = index
        .manifests
        .iter()
        .filter(|d| {
            d.artifact_type
                .as_deref()
                .is_some_and(|t| wanted.contains(&t) || t == EMPTY_CONFIG_TYPE)
        })
        .collect();
    if bundles.len() > MAX_ARTIFACTS {
        out.notes.push(format!(
            "referrers of {digest}: only the first {MAX_ARTIFACTS} of {} bundles were read",
            bundles.len()
        ));
    }
    for desc in bundles.into_iter().take(MAX_ARTIFACTS) {
        let origin = format!("referrer {}", desc.digest);
        let Some(fetched) = source.manifest(image, &desc.digest).await? else {
            out.notes.push(format!("{origin}: listed but not found"));
            continue;
        };
        let artifact_type = listed_type(desc, &fetched.bytes);
        if !artifact_type
            .as_deref()
            .is_some_and(|t| wanted.contains(&t))
        {
            continue;
        }
        let kind = match artifact_type.as_deref() {
            Some(COSIGN_SIG_ARTIFACT_TYPE) => Some(Kind::Signatures),
            Some(COSIGN_ATT_ARTIFACT_TYPE) => Some(Kind::Attestations),
            _ => None,
        };
        if let Some(kind) = kind {
            read_layers(source, image, &origin, &fetched.bytes, kind, out).await?;
            continue;
        }
        let manifest = match Manifest::parse(&fetched.bytes) {
            Ok(m) => m,
            Err(e) => {
                out.notes.push(format!("{origin}: {e}"));
                continue;
            }
        };
        let Some(layer) = manifest
            .layers
            .iter()
            .find(|l| l.media_type == BUNDLE_V03_MEDIA_TYPE)
        else {
            out.notes.push(format!("{origin}: no bundle layer"));
            continue;
        };
        let Some(blob) = layer_blob(source, image, &layer.digest, &origin, &mut out.notes).await?
        else {
            continue;
        };
        let parsed = match bundle::parse(&origin, &blob) {
            Ok(p) => p,
            Err(e) => {
                out.notes.push(e);
                continue;
            }
        };
        let evidence = if parsed.message_digest.is_some() {
            // A message signature over the image signs the manifest bytes.
            if subject_manifest.is_none() {
                subject_manifest = source
                    .manifest(image, &digest.to_string())
                    .await?
                    .map(|m| m.bytes);
            }
            let Some(bytes) = &subject_manifest else {
                out.notes.push(format!(
                    "{origin}: the signed manifest {digest} is not found"
                ));
                continue;
            };
            match parsed.with_message(bytes) {
                Ok(e) => e,
                Err(e) => {
                    out.notes.push(format!("{origin}: {e}"));
                    continue;
                }
            }
        } else {
            parsed.evidence
        };
        let annotated = desc
            .annotations
            .get(PREDICATE_TYPE_ANNOTATION)
            .map(String::as_str);
        for ev in evidence {
            let is_signature = match &ev.claims {
                Claims::Statement(s) => s.predicate_type == COSIGN_SIGN_PREDICATE,
                Claims::ManifestSignature | Claims::ImageSignature(_) => true,
                Claims::Unreadable(_) => annotated.is_none_or(|p| p == COSIGN_SIGN_PREDICATE),
            };
            if is_signature {
                out.found.signatures.push(ev);
            } else {
                out.found.attestations.push(ev);
            }
        }
    }
    Ok(())
}
