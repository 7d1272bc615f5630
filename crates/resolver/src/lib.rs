//! Image references, registry access and tag-to-digest resolution for tagpin.
//!
//! The resolver answers one question: which digest does the registry serve for
//! this tag right now, asked with these credentials. Everything else in tagpin
//! (verification, pinning, annotations) is keyed by that digest.

pub mod artifacts;
pub mod cache;
pub mod challenge;
pub mod client;
pub mod config;
pub mod credentials;
pub mod digest;
pub mod endpoint;
pub mod error;
pub mod reference;
pub mod resolve;
pub mod stats;

pub use artifacts::FetchedManifest;
pub use config::{CacheSettings, RegistrySettings, ResolverConfig, TimeoutSettings};
pub use credentials::{Credential, CredentialError, DockerConfig, Keychain};
pub use digest::{Digest, DigestAlgorithm, DigestError};
pub use error::ResolveError;
pub use reference::{ImageReference, ReferenceError};
pub use resolve::{Resolution, Resolver};
pub use stats::ResolverStats;
