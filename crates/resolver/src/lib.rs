//! Image references, registry access and tag-to-digest resolution for tagpin.
//!
//! The resolver answers one question: which digest does the registry serve for
//! this tag right now, asked with these credentials. Everything else in tagpin
//! (verification, pinning, annotations) is keyed by that digest.

pub mod digest;
pub mod reference;

pub use digest::{Digest, DigestAlgorithm, DigestError};
pub use reference::{ImageReference, ReferenceError};
