//! One signature found for a digest, normalised across the cosign v2 tag
//! layout and Sigstore bundles, with what it claims to sign.

use std::collections::BTreeMap;

use crate::formats::intoto::Statement;
use crate::formats::simple_signing::SimpleSigning;
use crate::proofs::rekor::TlogEntry;

/// The predicate type cosign v3 uses for image signatures carried in DSSE.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";

/// What a signature claims to be about.
#[derive(Debug, Clone, PartialEq)]
pub enum Claims {
    /// A cosign simple-signing payload.
    ImageSignature(SimpleSigning),
    /// An in-toto statement (attestations, and cosign v3 image signatures).
    Statement(Statement),
    /// A message signature whose message digest is the image digest itself.
    ManifestSignature,
    /// The payload could not be read; the reason says why.
    Unreadable(String),
}

/// One signature with its certificate material, log entries and claims.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// Where it was found, for messages (e.g. `sha256-<hex>.sig layer 0`).
    pub origin: String,
    /// The exact bytes the signature is over (payload, or DSSE PAE).
    pub signed_bytes: Vec<u8>,
    /// The SHA-256 of what the signature is over, when only that is known
    /// (a message signature checked against an artifact's digest); then
    /// `signed_bytes` is empty.
    pub signed_digest: Option<Vec<u8>>,
    /// The payload a transparency-log entry hashes.
    pub tlog_payload: Vec<u8>,
    /// The raw signature.
    pub signature: Vec<u8>,
    /// The signing certificate (DER), if any.
    pub certificate: Option<Vec<u8>>,
    /// Further certificates shipped with the signature (DER), untrusted.
    pub chain: Vec<Vec<u8>>,
    /// Transparency-log entries shipped with the signature.
    pub tlog: Vec<TlogEntry>,
    /// RFC 3161 signed timestamps over the signature (DER), unverified.
    pub timestamps: Vec<Vec<u8>>,
    /// What the signature says it signs.
    pub claims: Claims,
}

impl Evidence {
    /// Annotations a signer attached to the signed payload.
    pub fn annotations(&self) -> BTreeMap<String, String> {
        match &self.claims {
            Claims::ImageSignature(s) => s.annotations.clone(),
            _ => BTreeMap::new(),
        }
    }
}

/// Every signature and attestation found for one digest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Found {
    /// Image signatures.
    pub signatures: Vec<Evidence>,
    /// Attestations (DSSE in-toto statements).
    pub attestations: Vec<Evidence>,
}
