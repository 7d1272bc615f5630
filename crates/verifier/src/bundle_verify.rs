//! Verifying a standalone Sigstore bundle against an authority set: the
//! signature, its log entry and its identity, bound to a given artifact.

use tagpin_resolver::{Digest, DigestAlgorithm};

use crate::formats::bundle;
use crate::formats::evidence::Claims;
use crate::policy::AuthoritySet;
use crate::policy::judge::{self, Target};

/// What the bundle must sign.
#[derive(Debug, Clone, Copy)]
pub enum Artifact<'a> {
    /// The artifact's bytes (required for message signatures).
    Bytes(&'a [u8]),
    /// The artifact's SHA-256 digest: enough for DSSE statements, and for
    /// message signatures by keys that sign a prehashed message.
    Digest(&'a Digest),
}

/// Verifies `bundle_json` over `artifact` for `signed_by`; returns the
/// signers, or why the bundle does not verify. `now` (Unix seconds) stands in
/// for the signing time when no log entry vouches for one.
pub fn verify_bundle(
    bundle_json: &[u8],
    artifact: Artifact<'_>,
    signed_by: &AuthoritySet,
    now: i64,
) -> Result<Vec<String>, String> {
    let parsed = bundle::parse("bundle", bundle_json)?;
    let digest = match artifact {
        Artifact::Bytes(b) => Digest::sha256(b),
        Artifact::Digest(d) => d.clone(),
    };
    // A message signature is always checked over the artifact (its bytes, or
    // its digest for keys that sign a prehashed message), whether or not the
    // bundle names a message digest: never over an empty message.
    let evidence = match artifact {
        Artifact::Bytes(b) => parsed.with_message(b)?,
        Artifact::Digest(d) if parsed.signs_message() => {
            if d.algorithm() != DigestAlgorithm::Sha256 {
                return Err(format!("{d} is not a SHA-256 digest"));
            }
            let sha256 = hex::decode(d.hex()).map_err(|e| format!("{d}: {e}"))?;
            parsed.with_digest(&sha256)?
        }
        Artifact::Digest(_) => parsed.envelope_evidence()?,
    };
    let target = Target {
        name: "",
        digest: &digest,
        equivalents: &[],
        now,
    };
    judge::any_claims(signed_by, &evidence, &target, &|ev| match &ev.claims {
        Claims::Statement(s) if s.has_subject(&digest) => Ok(()),
        Claims::Statement(_) => Err(format!(
            "the statement does not name {digest} as its subject"
        )),
        Claims::ManifestSignature => Ok(()),
        Claims::ImageSignature(_) => Err("unexpected simple-signing payload".into()),
        Claims::Unreadable(why) => Err(why.clone()),
    })
}
