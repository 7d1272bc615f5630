//! Finding the signatures and attestations of one digest: cosign v2 `.sig`
//! and `.att` tags, and OCI 1.1 referrers holding Sigstore bundles (cosign
//! v3) or cosign v2 signature and attestation manifests (its OCI 1.1 mode).

use tagpin_resolver::{Digest, ImageReference};

use crate::discovery::source::{ArtifactSource, SourceError};
use crate::formats::bundle::{self, BUNDLE_V03_MEDIA_TYPE};
use crate::formats::cosign_v2::{
    self, DSSE_MEDIA_TYPE, Descriptor, Manifest, SIMPLE_SIGNING_MEDIA_TYPE,
};
use crate::formats::evidence::{COSIGN_SIGN_PREDICATE, Claims, Evidence, Found};

/// Most layers or referrers read per tag or index; a registry cannot make one
/// admission fetch an unbounded number of blobs.
const MAX_ARTIFACTS: usize = 64;

/// Artifact type of cosign v2 signature manifests stored as OCI 1.1 referrers.
const COSIGN_SIG_ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// Artifact type of cosign v2 attestation manifests stored as OCI 1.1 referrers.
const COSIGN_ATT_ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.att.v1+json";

/// Annotation cosign v3 sets on bundle referrers with the statement's predicate type.
const PREDICATE_TYPE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";

/// The OCI empty config's media type. cosign v2 (go-containerregistry before v0.21) lists a
/// bundle referrer under it in the referrers tag schema instead of the manifest's
/// `artifactType`, so such entries are read to learn their type.
const EMPTY_CONFIG_TYPE: &str = "application/vnd.oci.empty.v1+json";

/// The referrer artifact types that may hold signatures or attestations.
const WANTED_TYPES: [&str; 3] = [
    BUNDLE_V03_MEDIA_TYPE,
    COSIGN_SIG_ARTIFACT_TYPE,
    COSIGN_ATT_ARTIFACT_TYPE,
];

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
fn listed_type(desc: &Descriptor, manifest: &[u8]) -> Option<String> {
    match desc.artifact_type.as_deref() {
        Some(EMPTY_CONFIG_TYPE) => Manifest::parse(manifest).ok()?.artifact_type,
        t => t.map(str::to_owned),
    }
}

/// Reads the OCI 1.1 referrers of `digest`: cosign v2 manifests in its
/// OCI 1.1 mode and Sigstore bundles.
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
    let mut subject = Subject {
        digest,
        bytes: None,
    };
    for desc in signature_referrers(&index, digest, out) {
        read_referrer(source, image, desc, &mut subject, out).await?;
    }
    Ok(())
}

/// The referrers that may hold signatures or attestations, at most
/// [`MAX_ARTIFACTS`] of them.
fn signature_referrers<'a>(
    index: &'a Manifest,
    digest: &Digest,
    out: &mut Discovery,
) -> Vec<&'a Descriptor> {
    let mut found: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| {
            d.artifact_type
                .as_deref()
                .is_some_and(|t| WANTED_TYPES.contains(&t) || t == EMPTY_CONFIG_TYPE)
        })
        .collect();
    if found.len() > MAX_ARTIFACTS {
        out.notes.push(format!(
            "referrers of {digest}: only the first {MAX_ARTIFACTS} of {} bundles were read",
            found.len()
        ));
        found.truncate(MAX_ARTIFACTS);
    }
    found
}

/// Reads one referrer: a cosign v2 manifest, or a manifest holding a bundle.
async fn read_referrer<S: ArtifactSource>(
    source: &S,
    image: &ImageReference,
    desc: &Descriptor,
    subject: &mut Subject<'_>,
    out: &mut Discovery,
) -> Result<(), SourceError> {
    let origin = format!("referrer {}", desc.digest);
    let Some(fetched) = source.manifest(image, &desc.digest).await? else {
        out.notes.push(format!("{origin}: listed but not found"));
        return Ok(());
    };
    let artifact_type = listed_type(desc, &fetched.bytes);
    if !artifact_type
        .as_deref()
        .is_some_and(|t| WANTED_TYPES.contains(&t))
    {
        return Ok(());
    }
    let kind = match artifact_type.as_deref() {
        Some(COSIGN_SIG_ARTIFACT_TYPE) => Some(Kind::Signatures),
        Some(COSIGN_ATT_ARTIFACT_TYPE) => Some(Kind::Attestations),
        _ => None,
    };
    if let Some(kind) = kind {
        return read_layers(source, image, &origin, &fetched.bytes, kind, out).await;
    }
    let Some(evidence) =
        bundle_evidence(source, image, &origin, &fetched.bytes, subject, out).await?
    else {
        return Ok(());
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
    Ok(())
}

/// The image manifest the referrers are attached to, read once and only when
/// a message signature needs it.
struct Subject<'a> {
    digest: &'a Digest,
    /// The bytes, or why they are not at hand.
    bytes: Option<Result<Vec<u8>, String>>,
}

impl Subject<'_> {
    /// The subject manifest's bytes, fetched by digest and checked against
    /// it; `Err` is a note on why they are not at hand.
    async fn bytes<S: ArtifactSource>(
        &mut self,
        source: &S,
        image: &ImageReference,
    ) -> Result<Result<&[u8], String>, SourceError> {
        if self.bytes.is_none() {
            let digest = self.digest;
            self.bytes = Some(match source.manifest(image, &digest.to_string()).await? {
                None => Err(format!("the signed manifest {digest} is not found")),
                Some(f) if !digest.matches(&f.bytes) => Err(format!(
                    "the registry served a manifest for {digest} that does not hash to it"
                )),
                Some(f) => Ok(f.bytes),
            });
        }
        Ok(match &self.bytes {
            Some(Ok(b)) => Ok(b.as_slice()),
            Some(Err(e)) => Err(e.clone()),
            None => Err("the signed manifest was not read".into()),
        })
    }
}

/// The evidence of the Sigstore bundle a referrer manifest holds. A message
/// signature is bound to the subject manifest's bytes: it signs that image
/// or nothing. Problems become notes and `None`.
async fn bundle_evidence<S: ArtifactSource>(
    source: &S,
    image: &ImageReference,
    origin: &str,
    manifest: &[u8],
    subject: &mut Subject<'_>,
    out: &mut Discovery,
) -> Result<Option<Vec<Evidence>>, SourceError> {
    let manifest = match Manifest::parse(manifest) {
        Ok(m) => m,
        Err(e) => {
            out.notes.push(format!("{origin}: {e}"));
            return Ok(None);
        }
    };
    let Some(layer) = manifest
        .layers
        .iter()
        .find(|l| l.media_type == BUNDLE_V03_MEDIA_TYPE)
    else {
        out.notes.push(format!("{origin}: no bundle layer"));
        return Ok(None);
    };
    let Some(blob) = layer_blob(source, image, &layer.digest, origin, &mut out.notes).await? else {
        return Ok(None);
    };
    let parsed = match bundle::parse(origin, &blob) {
        Ok(p) => p,
        Err(e) => {
            out.notes.push(e);
            return Ok(None);
        }
    };
    let bound = if parsed.signs_message() {
        match subject.bytes(source, image).await? {
            Ok(bytes) => parsed.with_message(bytes),
            Err(why) => Err(why),
        }
    } else {
        parsed.envelope_evidence()
    };
    match bound {
        Ok(evidence) => Ok(Some(evidence)),
        Err(e) => {
            out.notes.push(format!("{origin}: {e}"));
            Ok(None)
        }
    }
}
