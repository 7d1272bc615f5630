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

pub mod bundle;
pub mod bundle_verify;
pub mod cache;
pub mod certificate;
pub mod conditions;
pub mod cosign_v2;
mod der_walk;
pub mod discover;
pub mod dsse;
pub mod evidence;
pub mod glob;
pub mod intoto;
pub mod judge;
pub mod keys;
pub mod policy;
pub mod rekor;
pub mod repository;
pub mod sct;
pub mod simple_signing;
pub mod source;
pub mod timestamp;
pub mod trust_root;
pub mod verdict;
pub mod verifier;

pub use cache::{CacheTtl, VerdictCache};
pub use policy::{CompiledPolicy, NoMatch, Policy, PolicyError};
pub use source::{ArtifactSource, Fetched, SourceError};
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
