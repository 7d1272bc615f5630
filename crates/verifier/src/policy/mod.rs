//! Verification policy: the YAML form ([`Policy`]), its validated, compiled
//! form ([`CompiledPolicy`]: image globs, CEL conditions, keys and trust roots
//! loaded once), the repository equivalences, and the judging of evidence
//! against a rule's authorities.
//!
//! Policy decides, it does not fetch: no registry I/O (compiling reads the
//! key, CA and trust root files it names, once). It uses [`crate::proofs`] to
//! check evidence and [`crate::formats`] for what evidence is, never discovery.

mod compile;
pub(crate) mod conditions;
mod config;
mod distinct;
pub(crate) mod glob;
pub(crate) mod judge;
pub(crate) mod repository;

pub use compile::{
    AttestationRequirement, Authority, AuthoritySet, Combination, CompiledPolicy, Matcher,
    PolicyError, Rule, Signer,
};
pub use config::{NoMatch, Policy, TlogMode};
