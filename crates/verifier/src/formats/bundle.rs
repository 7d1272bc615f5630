//! Sigstore bundles (v0.1 to v0.3): message signatures and DSSE envelopes with
//! their certificate or key hint and transparency-log entries.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use crate::formats::cosign_v2::envelope_evidence;
use crate::formats::dsse::Envelope;
use crate::formats::evidence::{Claims, Evidence};
use crate::proofs::rekor::{InclusionProof, TlogEntry};

/// Media type of v0.3 bundles (also the artifact type of cosign v3 referrers).
pub const BUNDLE_V03_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BundleJson {
    media_type: String,
    verification_material: MaterialJson,
    #[serde(default)]
    message_signature: Option<MessageSignatureJson>,
    #[serde(default)]
    dsse_envelope: Option<EnvelopeJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MaterialJson {
    #[serde(default)]
    certificate: Option<RawBytes>,
    #[serde(default)]
    x509_certificate_chain: Option<ChainJson>,
    #[serde(default)]
    tlog_entries: Vec<TlogEntryJson>,
    #[serde(default)]
    timestamp_verification_data: Option<TimestampDataJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TimestampDataJson {
    #[serde(default)]
    rfc3161_timestamps: Vec<SignedTimestampJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignedTimestampJson {
    signed_timestamp: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBytes {
    raw_bytes: String,
}

#[derive(Deserialize)]
struct ChainJson {
    #[serde(default)]
    certificates: Vec<RawBytes>,
}

/// protobuf-JSON int64 values arrive as strings, sometimes as numbers.
#[derive(Deserialize)]
#[serde(untagged)]
enum Int64 {
    Num(i64),
    Str(String),
}

impl Int64 {
    fn get(&self) -> Result<i64, String> {
        match self {
            Int64::Num(n) => Ok(*n),
            Int64::Str(s) => s.parse().map_err(|_| format!("{s:?} is not an integer")),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TlogEntryJson {
    log_index: Int64,
    log_id: KeyIdJson,
    #[serde(default)]
    integrated_time: Option<Int64>,
    #[serde(default)]
    inclusion_promise: Option<PromiseJson>,
    #[serde(default)]
    inclusion_proof: Option<ProofJson>,
    canonicalized_body: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyIdJson {
    key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromiseJson {
    signed_entry_timestamp: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProofJson {
    log_index: Int64,
    root_hash: String,
    tree_size: Int64,
    #[serde(default)]
    hashes: Vec<String>,
    #[serde(default)]
    checkpoint: Option<CheckpointJson>,
}

#[derive(Deserialize)]
struct CheckpointJson {
    envelope: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageSignatureJson {
    #[serde(default)]
    message_digest: Option<MessageDigestJson>,
    signature: String,
}

#[derive(Deserialize)]
struct MessageDigestJson {
    algorithm: String,
    digest: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnvelopeJson {
    payload: String,
    payload_type: String,
    #[serde(default)]
    signatures: Vec<SigJson>,
}

#[derive(Deserialize)]
struct SigJson {
    sig: String,
}

fn b64(s: &str, what: &str) -> Result<Vec<u8>, String> {
    STANDARD
        .decode(s)
        .map_err(|e| format!("bundle {what} is not base64: {e}"))
}

/// A message-signature bundle's claim about the message it signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageDigest {
    /// Algorithm name as in the bundle (`SHA2_256`).
    pub algorithm: String,
    /// The digest bytes.
    pub digest: Vec<u8>,
}

/// A parsed bundle. A DSSE envelope carries what it signs; a message
/// signature signs an artifact that is not in the bundle, so its evidence is
/// only handed out bound to that artifact ([`Parsed::with_message`] or
/// [`Parsed::with_digest`]), never over an empty message.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// Evidence, one per signature; for a message signature, not yet bound
    /// to what it signs.
    evidence: Vec<Evidence>,
    content: Content,
}

#[derive(Debug, Clone)]
enum Content {
    Envelope,
    /// A message signature, with the digest the bundle claims for the
    /// message when it names one.
    Message(Option<MessageDigest>),
}

impl Parsed {
    /// True for a message signature, which must be bound to the artifact it
    /// signs before its evidence can be judged.
    pub fn signs_message(&self) -> bool {
        matches!(self.content, Content::Message(_))
    }

    /// The message digest a message-signature bundle claims, if it names one.
    pub fn message_digest(&self) -> Option<&MessageDigest> {
        match &self.content {
            Content::Message(d) => d.as_ref(),
            Content::Envelope => None,
        }
    }

    /// The evidence of a DSSE bundle, whose statement names its subjects
    /// itself; a message signature is refused, as it signs nothing until it
    /// is bound to an artifact.
    pub fn envelope_evidence(self) -> Result<Vec<Evidence>, String> {
        match self.content {
            Content::Envelope => Ok(self.evidence),
            Content::Message(_) => {
                Err("a message-signature bundle must be verified over the artifact it signs".into())
            }
        }
    }

    /// Binds a message signature to the SHA-256 digest of the signed artifact
    /// when its bytes are not at hand: the signature is then checked over that
    /// digest. Fails when the bundle names another message digest. A DSSE
    /// bundle is returned as is.
    pub fn with_digest(mut self, sha256: &[u8]) -> Result<Vec<Evidence>, String> {
        let Content::Message(claimed) = &self.content else {
            return Ok(self.evidence);
        };
        if sha256.len() != 32 {
            return Err("the signed artifact's SHA-256 digest is not 32 bytes".into());
        }
        if let Some(md) = claimed {
            if md.algorithm != "SHA2_256" {
                return Err(format!(
                    "bundle message digest algorithm {:?} cannot be checked against a SHA-256 digest",
                    md.algorithm
                ));
            }
            if md.digest != sha256 {
                return Err("bundle message digest does not match the signed artifact".into());
            }
        }
        for ev in &mut self.evidence {
            ev.signed_digest = Some(sha256.to_vec());
        }
        Ok(self.evidence)
    }

    /// Binds a message signature to the signed artifact's bytes: the
    /// signature is checked over them, and a message digest the bundle names
    /// must be theirs. A DSSE bundle is returned as is.
    pub fn with_message(mut self, message: &[u8]) -> Result<Vec<Evidence>, String> {
        let Content::Message(claimed) = &self.content else {
            return Ok(self.evidence);
        };
        if message.is_empty() {
            return Err("a message signature over an empty artifact proves nothing".into());
        }
        if let Some(md) = claimed {
            use sha2::Digest as _;
            let actual = match md.algorithm.as_str() {
                "SHA2_256" => sha2::Sha256::digest(message).to_vec(),
                "SHA2_384" => sha2::Sha384::digest(message).to_vec(),
                "SHA2_512" => sha2::Sha512::digest(message).to_vec(),
                other => {
                    return Err(format!(
                        "bundle message digest algorithm {other:?} is not supported"
                    ));
                }
            };
            if actual != md.digest {
                return Err("bundle message digest does not match the signed artifact".into());
            }
        }
        for ev in &mut self.evidence {
            ev.signed_bytes = message.to_vec();
            ev.tlog_payload = message.to_vec();
        }
        Ok(self.evidence)
    }
}

/// The verification material of a bundle, decoded.
struct Material {
    certificate: Option<Vec<u8>>,
    chain: Vec<Vec<u8>>,
    tlog: Vec<TlogEntry>,
    timestamps: Vec<Vec<u8>>,
}

/// Parses a bundle; `origin` names it in messages.
pub fn parse(origin: &str, bytes: &[u8]) -> Result<Parsed, String> {
    let b: BundleJson = serde_json::from_slice(bytes)
        .map_err(|e| format!("{origin}: not a Sigstore bundle: {e}"))?;
    // Only the versions whose rules are known: a later one may change them.
    const KNOWN: [&str; 4] = [
        "application/vnd.dev.sigstore.bundle+json;version=0.1",
        "application/vnd.dev.sigstore.bundle+json;version=0.2",
        "application/vnd.dev.sigstore.bundle+json;version=0.3",
        BUNDLE_V03_MEDIA_TYPE,
    ];
    if !KNOWN.contains(&b.media_type.as_str()) {
        return Err(format!(
            "{origin}: bundle media type {:?} is not supported",
            b.media_type
        ));
    }
    let material = material(origin, &b)?;
    match (&b.message_signature, &b.dsse_envelope) {
        (Some(ms), None) => message_signature(origin, ms, material),
        (None, Some(env)) => {
            let envelope = Envelope::from_parts(
                &env.payload_type,
                &env.payload,
                env.signatures.iter().map(|s| s.sig.as_str()),
            )
            .map_err(|e| format!("{origin}: {e}"))?;
            let mut evidence = envelope_evidence(
                origin,
                &envelope,
                material.certificate,
                material.chain,
                material.tlog,
            );
            for ev in &mut evidence {
                ev.timestamps = material.timestamps.clone();
            }
            Ok(Parsed {
                evidence,
                content: Content::Envelope,
            })
        }
        _ => Err(format!(
            "{origin}: bundle must hold exactly one of messageSignature or dsseEnvelope"
        )),
    }
}

/// Decodes certificates, log entries and timestamps.
fn material(origin: &str, b: &BundleJson) -> Result<Material, String> {
    let vm = &b.verification_material;
    let mut certs: Vec<Vec<u8>> = Vec::new();
    if let Some(c) = &vm.certificate {
        certs.push(b64(&c.raw_bytes, "certificate")?);
    }
    if let Some(chain) = &vm.x509_certificate_chain {
        for c in &chain.certificates {
            certs.push(b64(&c.raw_bytes, "certificate")?);
        }
    }
    let certificate = if certs.is_empty() {
        None
    } else {
        Some(certs.remove(0))
    };
    let tlog = vm
        .tlog_entries
        .iter()
        .map(tlog_entry)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{origin}: {e}"))?;
    // Since v0.2 a bundle's log entries must prove inclusion; a SET alone is
    // only the log's promise to include the entry.
    if !b.media_type.ends_with("version=0.1") && tlog.iter().any(|t| t.inclusion.is_none()) {
        return Err(format!(
            "{origin}: a transparency log entry carries no inclusion proof, which {} requires",
            b.media_type
        ));
    }
    let timestamps = vm
        .timestamp_verification_data
        .iter()
        .flat_map(|t| &t.rfc3161_timestamps)
        .map(|t| b64(&t.signed_timestamp, "signed timestamp"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{origin}: {e}"))?;
    Ok(Material {
        certificate,
        chain: certs,
        tlog,
        timestamps,
    })
}

/// A message signature, not yet bound to the artifact it signs.
fn message_signature(
    origin: &str,
    ms: &MessageSignatureJson,
    m: Material,
) -> Result<Parsed, String> {
    let message_digest = ms
        .message_digest
        .as_ref()
        .map(|d| {
            Ok::<_, String>(MessageDigest {
                algorithm: d.algorithm.clone(),
                digest: b64(&d.digest, "message digest")?,
            })
        })
        .transpose()?;
    Ok(Parsed {
        evidence: vec![Evidence {
            origin: origin.to_owned(),
            signed_bytes: Vec::new(),
            signed_digest: None,
            tlog_payload: Vec::new(),
            signature: b64(&ms.signature, "signature")?,
            certificate: m.certificate,
            chain: m.chain,
            tlog: m.tlog,
            timestamps: m.timestamps,
            claims: Claims::ManifestSignature,
        }],
        content: Content::Message(message_digest),
    })
}

fn tlog_entry(e: &TlogEntryJson) -> Result<TlogEntry, String> {
    let inclusion = e
        .inclusion_proof
        .as_ref()
        .map(|p| {
            Ok::<_, String>(InclusionProof {
                log_index: u64::try_from(p.log_index.get()?).map_err(|_| "negative log index")?,
                tree_size: u64::try_from(p.tree_size.get()?).map_err(|_| "negative tree size")?,
                root_hash: b64(&p.root_hash, "root hash")?,
                hashes: p
                    .hashes
                    .iter()
                    .map(|h| b64(h, "inclusion proof hash"))
                    .collect::<Result<_, _>>()?,
                checkpoint: p.checkpoint.as_ref().map(|c| c.envelope.clone()),
            })
        })
        .transpose()?;
    Ok(TlogEntry {
        body_b64: e.canonicalized_body.clone(),
        integrated_time: e
            .integrated_time
            .as_ref()
            .map(Int64::get)
            .transpose()?
            .unwrap_or(0),
        log_index: e.log_index.get()?,
        log_id: b64(&e.log_id.key_id, "log ID")?,
        set: e
            .inclusion_promise
            .as_ref()
            .map(|p| b64(&p.signed_entry_timestamp, "signed entry timestamp"))
            .transpose()?,
        inclusion,
    })
}
