//! Finding the signatures and attestations of one digest: cosign v2 `.sig`
//! and `.att` tags, and OCI 1.1 referrers holding Sigstore bundles (cosign
//! v3) or cosign v2 signature and attestation manifests (its OCI 1.1 mode).
//!
//! At most three rounds of registry requests, however many artifacts: the two
//! cosign v2 tags and the referrers list at once; then every manifest the list
//! names at once; then every blob of every manifest at once (the signed image
//! manifest beside them, when a bundle may sign it).

use futures::future::{try_join_all, try_join3};
use tagpin_resolver::{Digest, ImageReference};

use crate::discovery::source::{ArtifactSource, Fetched, SourceError};
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
/// Annotation cosign v3 sets on a bundle manifest with what the bundle holds.
const BUNDLE_CONTENT_ANNOTATION: &str = "dev.sigstore.bundle.content";
/// [`BUNDLE_CONTENT_ANNOTATION`] of a bundle holding a DSSE envelope, which names its
/// subject itself; any other bundle may sign the image manifest's bytes.
const DSSE_CONTENT: &str = "dsse-envelope";

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

impl Discovery {
    /// Adds what `other` found after what this one did.
    fn extend(&mut self, other: Discovery) {
        self.found.signatures.extend(other.found.signatures);
        self.found.attestations.extend(other.found.attestations);
        self.notes.extend(other.notes);
    }

    fn note(note: String) -> Self {
        Self {
            notes: vec![note],
            ..Self::default()
        }
    }

    /// Every part in order, as if each had been read after the one before.
    fn merged(parts: impl IntoIterator<Item = Discovery>) -> Self {
        let mut out = Self::default();
        for part in parts {
            out.extend(part);
        }
        out
    }
}

fn tag_for(digest: &Digest, suffix: &str) -> String {
    format!("{}-{}.{suffix}", digest.algorithm().name(), digest.hex())
}

/// Reads a layer's blob; a malformed layer digest becomes a note.
async fn layer_blob<S: ArtifactSource>(
    source: &S,
    image: &ImageReference,
    layer_digest: &str,
    origin: &str,
) -> Result<Result<Vec<u8>, String>, SourceError> {
    match layer_digest.parse::<Digest>() {
        Ok(d) => source.blob(image, &d).await.map(Ok),
        Err(e) => Ok(Err(format!(
            "{origin}: layer digest {layer_digest:?} is invalid: {e}"
        ))),
    }
}

/// Reads every signature and attestation attached to `digest`. Registry
/// failures are returned as errors; malformed artifacts become notes.
pub async fn discover<S: ArtifactSource>(
    source: &S,
    image: &ImageReference,
    digest: &Digest,
) -> Result<Discovery, SourceError> {
    let (sig, att, referrers) = try_join3(
        v2_tag(source, image, digest, Kind::Signatures),
        v2_tag(source, image, digest, Kind::Attestations),
        referrers(source, image, digest),
    )
    .await?;
    Ok(Discovery::merged([sig, att, referrers]))
}

async fn v2_tag<S: ArtifactSource>(
    source: &S,
    image: &ImageReference,
    digest: &Digest,
    kind: Kind,
) -> Result<Discovery, SourceError> {
    let tag = tag_for(digest, kind.suffix());
    match source.manifest(image, &tag).await? {
        Some(fetched) => read_layers(source, image, &tag, &fetched.bytes, kind).await,
        None => Ok(Discovery::default()),
    }
}

/// What the layers of a cosign signature manifest hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Simple-signing payloads (`.sig`).
    Signatures,
    /// DSSE envelopes (`.att`).
    Attestations,
}

impl Kind {
    fn suffix(self) -> &'static str {
        match self {
            Kind::Signatures => "sig",
            Kind::Attestations => "att",
        }
    }
}

/// Reads the layers of a cosign v2 signature or attestation manifest, found
/// by tag or, in cosign's OCI 1.1 mode, as a referrer: every blob at once.
async fn read_layers<S: ArtifactSource>(
    source: &S,
    image: &ImageReference,
    name: &str,
    bytes: &[u8],
    kind: Kind,
) -> Result<Discovery, SourceError> {
    let manifest = match Manifest::parse(bytes) {
        Ok(m) => m,
        Err(e) => return Ok(Discovery::note(format!("{name}: {e}"))),
    };
    let mut out = Discovery::default();
    if manifest.layers.len() > MAX_ARTIFACTS {
        out.notes.push(format!(
            "{name}: only the first {MAX_ARTIFACTS} of {} layers were read",
            manifest.layers.len()
        ));
    }
    let layers = manifest.layers.iter().take(MAX_ARTIFACTS).enumerate();
    let parts =
        try_join_all(layers.map(|(i, layer)| read_layer(source, image, name, i, layer, kind)))
            .await?;
    out.extend(Discovery::merged(parts));
    Ok(out)
}

/// One layer of a cosign v2 manifest.
async fn read_layer<S: ArtifactSource>(
    source: &S,
    image: &ImageReference,
    name: &str,
    i: usize,
    layer: &Descriptor,
    kind: Kind,
) -> Result<Discovery, SourceError> {
    let origin = format!("{name} layer {i}");
    let want = match kind {
        Kind::Signatures => SIMPLE_SIGNING_MEDIA_TYPE,
        Kind::Attestations => DSSE_MEDIA_TYPE,
    };
    if layer.media_type != want {
        return Ok(Discovery::note(format!(
            "{origin}: media type {:?} ignored",
            layer.media_type
        )));
    }
    let blob = match layer_blob(source, image, &layer.digest, &origin).await? {
        Ok(blob) => blob,
        Err(note) => return Ok(Discovery::note(note)),
    };
    let built = match kind {
        Kind::Signatures => cosign_v2::signature_evidence(origin, layer, blob).map(|e| vec![e]),
        Kind::Attestations => cosign_v2::attestation_evidence(origin, layer, &blob),
    };
    let mut out = Discovery::default();
    match (built, kind) {
        (Ok(evidence), Kind::Signatures) => out.found.signatures.extend(evidence),
        (Ok(evidence), Kind::Attestations) => out.found.attestations.extend(evidence),
        (Err(e), _) => out.notes.push(e),
    }
    Ok(out)
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
/// OCI 1.1 mode and Sigstore bundles, every referrer at once.
async fn referrers<S: ArtifactSource>(
    source: &S,
    image: &ImageReference,
    digest: &Digest,
) -> Result<Discovery, SourceError> {
    let Some(index) = source.referrers(image, digest).await? else {
        return Ok(Discovery::default());
    };
    let index = match Manifest::parse(&index) {
        Ok(m) => m,
        Err(e) => return Ok(Discovery::note(format!("referrers of {digest}: {e}"))),
    };
    let mut out = Discovery::default();
    let wanted = signature_referrers(&index, digest, &mut out);
    let parts = try_join_all(
        wanted
            .into_iter()
            .map(|desc| read_referrer(source, image, digest, desc)),
    )
    .await?;
    out.extend(Discovery::merged(parts));
    Ok(out)
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
    subject: &Digest,
    desc: &Descriptor,
) -> Result<Discovery, SourceError> {
    let origin = format!("referrer {}", desc.digest);
    let Some(fetched) = source.manifest(image, &desc.digest).await? else {
        return Ok(Discovery::note(format!("{origin}: listed but not found")));
    };
    let artifact_type = listed_type(desc, &fetched.bytes);
    match artifact_type.as_deref() {
        Some(COSIGN_SIG_ARTIFACT_TYPE) => {
            read_layers(source, image, &origin, &fetched.bytes, Kind::Signatures).await
        }
        Some(COSIGN_ATT_ARTIFACT_TYPE) => {
            read_layers(source, image, &origin, &fetched.bytes, Kind::Attestations).await
        }
        Some(BUNDLE_V03_MEDIA_TYPE) => {
            let evidence = bundle_evidence(source, image, &origin, &fetched.bytes, subject).await?;
            Ok(sort_bundle_evidence(desc, evidence))
        }
        _ => Ok(Discovery::default()),
    }
}

/// Files a bundle's evidence as signatures or attestations.
fn sort_bundle_evidence(desc: &Descriptor, evidence: Result<Vec<Evidence>, String>) -> Discovery {
    let evidence = match evidence {
        Ok(evidence) => evidence,
        Err(note) => return Discovery::note(note),
    };
    let annotated = desc
        .annotations
        .get(PREDICATE_TYPE_ANNOTATION)
        .map(String::as_str);
    let mut out = Discovery::default();
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
    out
}

/// The image manifest the referrers are attached to, fetched by digest and
/// checked against it; `Err` is a note on why its bytes are not at hand.
async fn subject_bytes<S: ArtifactSource>(
    source: &S,
    image: &ImageReference,
    digest: &Digest,
) -> Result<Result<Vec<u8>, String>, SourceError> {
    Ok(match source.manifest(image, &digest.to_string()).await? {
        None => Err(format!("the signed manifest {digest} is not found")),
        Some(Fetched { bytes, .. }) if !digest.matches(&bytes) => Err(format!(
            "the registry served a manifest for {digest} that does not hash to it"
        )),
        Some(f) => Ok(f.bytes),
    })
}

/// The evidence of the Sigstore bundle a referrer manifest holds. A message
/// signature is bound to the subject manifest's bytes: it signs that image
/// or nothing. Problems become a note (`Err`).
///
/// The subject manifest is fetched beside the bundle's blob unless the manifest says the
/// bundle holds a DSSE envelope; a bundle that turns out otherwise has it fetched after.
async fn bundle_evidence<S: ArtifactSource>(
    source: &S,
    image: &ImageReference,
    origin: &str,
    manifest: &[u8],
    subject: &Digest,
) -> Result<Result<Vec<Evidence>, String>, SourceError> {
    let manifest = match Manifest::parse(manifest) {
        Ok(m) => m,
        Err(e) => return Ok(Err(format!("{origin}: {e}"))),
    };
    let Some(layer) = manifest
        .layers
        .iter()
        .find(|l| l.media_type == BUNDLE_V03_MEDIA_TYPE)
    else {
        return Ok(Err(format!("{origin}: no bundle layer")));
    };
    let holds_dsse = manifest
        .annotations
        .get(BUNDLE_CONTENT_ANNOTATION)
        .is_some_and(|c| c == DSSE_CONTENT);
    let prefetch = async {
        if holds_dsse {
            Ok(None)
        } else {
            subject_bytes(source, image, subject).await.map(Some)
        }
    };
    let (blob, prefetched) =
        futures::try_join!(layer_blob(source, image, &layer.digest, origin), prefetch)?;
    let blob = match blob {
        Ok(blob) => blob,
        Err(note) => return Ok(Err(note)),
    };
    let parsed = match bundle::parse(origin, &blob) {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    let bound = if parsed.signs_message() {
        let bytes = match prefetched {
            Some(bytes) => bytes,
            None => subject_bytes(source, image, subject).await?,
        };
        bytes.and_then(|b| parsed.with_message(&b))
    } else {
        parsed.envelope_evidence()
    };
    Ok(bound.map_err(|e| format!("{origin}: {e}")))
}
