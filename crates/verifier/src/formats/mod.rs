//! Artifact formats: the bytes a registry serves for a signature or an
//! attestation, parsed into [`evidence::Evidence`] (what was signed, by which
//! key or certificate, with which log entries).
//!
//! - cosign v2 tag layout (`.sig`/`.att` manifests and their annotations),
//! - Sigstore bundles v0.1 to v0.3,
//! - DSSE envelopes, in-toto statements, simple-signing payloads.
//!
//! Parsing only: nothing here decides whether a signature is valid or
//! acceptable. Formats may use the data types of [`crate::proofs`] (a log
//! entry travels inside a bundle) but never policy or discovery, and do no I/O.

pub(crate) mod bundle;
pub(crate) mod cosign_v2;
pub(crate) mod dsse;
pub(crate) mod evidence;
pub(crate) mod intoto;
pub(crate) mod simple_signing;
