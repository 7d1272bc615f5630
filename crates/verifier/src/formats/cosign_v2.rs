//! Evidence from the cosign v2 tag layout: `.sig` simple-signing layers and
//! `.att` DSSE layers, with certificate, chain and Rekor bundle annotations.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use crate::formats::dsse::Envelope;
use crate::formats::evidence::{Claims, Evidence};
use crate::formats::intoto::Statement;
use crate::formats::simple_signing::SimpleSigning;
use crate::proofs::rekor::TlogEntry;

/// Media type of simple-signing payload layers.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Media type of DSSE envelope layers.
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// Layer annotation carrying the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Layer annotation carrying the PEM signing certificate.
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// Layer annotation carrying the PEM certificate chain.
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
/// Layer annotation carrying the Rekor bundle (SET and entry).
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";

/// One layer descriptor of an OCI manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The layer's media type.
    #[serde(default)]
    pub media_type: String,
    /// The layer's digest.
    pub digest: String,
    /// The layer's annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Artifact type (in referrers indexes).
    #[serde(default)]
    pub artifact_type: Option<String>,
    /// The platform an image index entry runs on.
    #[serde(default)]
    pub platform: Option<Platform>,
}

/// The platform of an image index entry.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Platform {
    /// Operating system (`linux`; `unknown` on build attestations).
    #[serde(default)]
    pub os: String,
    /// CPU architecture (`amd64`; `unknown` on build attestations).
    #[serde(default)]
    pub architecture: String,
}

/// The parts of an OCI manifest or index tagpin reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Layers (image manifests).
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// Manifests (image indexes).
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// Artifact type of an artifact manifest.
    #[serde(default)]
    pub artifact_type: Option<String>,
    /// The manifest's own media type field.
    #[serde(default)]
    pub media_type: Option<String>,
    /// The manifest's annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl Manifest {
    /// Parses manifest JSON.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("manifest is not valid JSON: {e}"))
    }
}

#[derive(Deserialize)]
struct RekorBundleJson {
    #[serde(rename = "SignedEntryTimestamp")]
    signed_entry_timestamp: String,
    #[serde(rename = "Payload")]
    payload: RekorPayloadJson,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RekorPayloadJson {
    body: String,
    integrated_time: i64,
    log_index: i64,
    #[serde(rename = "logID")]
    log_id: String,
}

/// Certificate, chain and log entries shipped in a layer's annotations.
type Material = (Option<Vec<u8>>, Vec<Vec<u8>>, Vec<TlogEntry>);

/// Decodes the certificate, chain and Rekor bundle annotations of a layer.
fn material(annotations: &BTreeMap<String, String>) -> Result<Material, String> {
    let certificate = match annotations.get(CERTIFICATE_ANNOTATION) {
        Some(p) if !p.trim().is_empty() => Some(
            pem::parse(p.trim())
                .map_err(|e| format!("certificate annotation is not PEM: {e}"))?
                .into_contents(),
        ),
        _ => None,
    };
    let chain = match annotations.get(CHAIN_ANNOTATION) {
        Some(p) if !p.trim().is_empty() => pem::parse_many(p)
            .map_err(|e| format!("chain annotation is not PEM: {e}"))?
            .into_iter()
            .map(pem::Pem::into_contents)
            .collect(),
        _ => Vec::new(),
    };
    let tlog = match annotations.get(BUNDLE_ANNOTATION) {
        Some(b) if !b.trim().is_empty() => {
            let json: RekorBundleJson = serde_json::from_str(b)
                .map_err(|e| format!("Rekor bundle annotation is malformed: {e}"))?;
            vec![TlogEntry {
                body_b64: json.payload.body,
                integrated_time: json.payload.integrated_time,
                log_index: json.payload.log_index,
                log_id: hex::decode(&json.payload.log_id)
                    .map_err(|e| format!("Rekor bundle logID is not hex: {e}"))?,
                set: Some(
                    STANDARD
                        .decode(&json.signed_entry_timestamp)
                        .map_err(|e| format!("Rekor SET is not base64: {e}"))?,
                ),
                inclusion: None,
            }]
        }
        _ => Vec::new(),
    };
    Ok((certificate, chain, tlog))
}

/// Builds the evidence of one `.sig` layer from its annotations and payload blob.
pub fn signature_evidence(
    origin: String,
    layer: &Descriptor,
    payload: Vec<u8>,
) -> Result<Evidence, String> {
    let sig_b64 = layer
        .annotations
        .get(SIGNATURE_ANNOTATION)
        .ok_or_else(|| format!("{origin}: layer has no {SIGNATURE_ANNOTATION} annotation"))?;
    let signature = STANDARD
        .decode(sig_b64.trim())
        .map_err(|e| format!("{origin}: signature annotation is not base64: {e}"))?;
    let (certificate, chain, tlog) =
        material(&layer.annotations).map_err(|e| format!("{origin}: {e}"))?;
    let claims = match SimpleSigning::parse(&payload) {
        Ok(s) => Claims::ImageSignature(s),
        Err(e) => Claims::Unreadable(e),
    };
    Ok(Evidence {
        origin,
        signed_bytes: payload.clone(),
        signed_digest: None,
        tlog_payload: payload,
        signature,
        certificate,
        chain,
        tlog,
        timestamps: Vec::new(),
        claims,
    })
}

/// Builds evidence from a DSSE envelope: one per envelope signature.
pub fn envelope_evidence(
    origin: &str,
    envelope: &Envelope,
    certificate: Option<Vec<u8>>,
    chain: Vec<Vec<u8>>,
    tlog: Vec<TlogEntry>,
) -> Vec<Evidence> {
    let claims = if envelope.payload_type == crate::formats::dsse::IN_TOTO_PAYLOAD_TYPE {
        match Statement::parse(&envelope.payload) {
            Ok(s) => Claims::Statement(s),
            Err(e) => Claims::Unreadable(e),
        }
    } else {
        Claims::Unreadable(format!(
            "DSSE payload type {:?} is not in-toto",
            envelope.payload_type
        ))
    };
    let pae = envelope.pae();
    envelope
        .signatures
        .iter()
        .enumerate()
        .map(|(i, sig)| Evidence {
            origin: if envelope.signatures.len() > 1 {
                format!("{origin} signature {i}")
            } else {
                origin.to_owned()
            },
            signed_bytes: pae.clone(),
            signed_digest: None,
            tlog_payload: envelope.payload.clone(),
            signature: sig.clone(),
            certificate: certificate.clone(),
            chain: chain.clone(),
            tlog: tlog.clone(),
            timestamps: Vec::new(),
            claims: claims.clone(),
        })
        .collect()
}

/// Builds the evidence of one `.att` layer from its annotations and envelope blob.
pub fn attestation_evidence(
    origin: String,
    layer: &Descriptor,
    blob: &[u8],
) -> Result<Vec<Evidence>, String> {
    let envelope = Envelope::parse(blob).map_err(|e| format!("{origin}: {e}"))?;
    let (certificate, chain, tlog) =
        material(&layer.annotations).map_err(|e| format!("{origin}: {e}"))?;
    Ok(envelope_evidence(
        &origin,
        &envelope,
        certificate,
        chain,
        tlog,
    ))
}
