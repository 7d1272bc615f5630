//! Verification of one image digest against tagpin's signature and attestation policy.
//!
//! The verifier never trusts a tag: it is handed a digest, finds the cosign
//! signatures and in-toto attestations attached to that digest (cosign v2 tag
//! layout and OCI 1.1 referrers with Sigstore bundles), and proves by policy who
//! signed it. Registry access goes through [`ArtifactSource`], so a registry
//! failure is reported as such and never mistaken for a missing signature.
//!
//! Use: deserialize a [`Policy`] (the `verification:` section of tagpin's
//! config), [`Policy::compile`] it once (this reads key, CA and
//! `trusted_root.json` files and rejects bad regexes, CEL and keys), then call
//! [`verify_uncached`] or [`Verifier::verify`] with an [`ArtifactSource`], the
//! image as written and the digest that will be pinned. The [`Verdict`] names
//! the rule, the signers (`sha256:<hex>` key fingerprints or `issuer/subject`
//! identities) and the attestation types verified; its `reason` names image,
//! digest, rule and what was missing or wrong.
//!
//! ```no_run
//! use tagpin_resolver::{Digest, ImageReference};
//! use tagpin_verifier::{ArtifactSource, Outcome, Policy, Verifier};
//!
//! async fn is_signed(source: impl ArtifactSource) -> Result<bool, Box<dyn std::error::Error>> {
//!     let policy: Policy = serde_norway::from_str(
//!         r#"
//! noMatch: deny
//! rules:
//!   - name: team
//!     images: ["registry.example/team/*"]
//!     signatures:
//!       anyOf:
//!         - key: {file: "/etc/tagpin/cosign.pub"}
//! "#,
//!     )?;
//!     // Once per configuration: reads the key file, rejects bad globs and CEL.
//!     let policy = policy.compile()?;
//!     let verifier = Verifier::new(source);
//!     let image = ImageReference::parse("registry.example/team/app:1.4")?;
//!     // The digest the resolver found for the tag: verdicts are never about tags.
//!     let digest: Digest =
//!         "sha256:0f3a4e0a1c5d2b6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6".parse()?;
//!     let verdict = verifier.verify(&policy, &image, &digest).await?;
//!     Ok(verdict.outcome == Outcome::Verified)
//! }
//! ```
//!
//! The code is laid out by layer, each using only the layers below it: the
//! entry points (`verifier`, `bundle_verify`, `verdict`, `cache`) over
//! `discovery/` (finding artifacts through an [`ArtifactSource`]) and
//! `policy/` (what must be proven), over `formats/` (parsing artifacts), over
//! `proofs/` (offline cryptographic checks).

pub(crate) mod bundle_verify;
pub(crate) mod cache;
pub(crate) mod discovery;
pub(crate) mod formats;
pub(crate) mod policy;
pub(crate) mod proofs;
pub(crate) mod verdict;
pub(crate) mod verifier;

pub use bundle_verify::{Artifact, verify_bundle};
pub use cache::{CacheTtl, VerdictCache};
pub use discovery::source::{ArtifactSource, Fetched, SourceError};
pub use formats::bundle::parse as parse_bundle;
pub use formats::cosign_v2::Manifest;
pub use formats::dsse::Envelope;
pub use formats::intoto::Statement;
pub use formats::simple_signing::SimpleSigning;
pub use policy::{CompiledPolicy, NoMatch, Policy, PolicyError};
pub use proofs::certificate::signing_certificate;
pub use proofs::keys::PublicKey;
pub use proofs::sct::verify as verify_scts;
pub use proofs::timestamp::verify as verify_timestamp;
pub use proofs::trust_root::TrustRoot;
pub use verdict::{Outcome, Verdict};
pub use verifier::{Verifier, VerifyError, judge_uncached, verify_uncached};

#[cfg(test)]
mod tests {
    /// The compiled policy is shared across admission requests.
    #[test]
    fn compiled_policy_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<crate::CompiledPolicy>();
        check::<crate::Verdict>();
    }
}
