//! Offline proofs: the cryptographic checks a signature's evidence must pass,
//! each against a trust root and without any network access.
//!
//! - public keys and their fingerprints, signing certificates and their chains,
//! - signed certificate timestamps (certificate transparency),
//! - Rekor entries: signed entry timestamps, inclusion proofs, checkpoints,
//! - RFC 3161 timestamps, trusted roots (`trusted_root.json`, private CAs),
//! - the DER walking and X.509 decoding these share.
//!
//! Proofs are the bottom layer: they do no I/O and know nothing of policy,
//! artifact formats or discovery; they answer "is this proof valid for this
//! root", never "is it enough".

pub(crate) mod certificate;
pub(crate) mod der_walk;
pub(crate) mod keys;
pub(crate) mod rekor;
pub(crate) mod sct;
pub(crate) mod timestamp;
pub(crate) mod trust_root;
pub(crate) mod x509;
