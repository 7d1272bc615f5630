//! Image references, registry access and tag-to-digest resolution for tagpin.
//!
//! The resolver answers one question: which digest does the registry serve for
//! this tag right now, asked with these credentials. Everything else in tagpin
//! (verification, pinning, annotations) is keyed by that digest.
//!
//! ```no_run
//! use tagpin_resolver::{ImageReference, Keychain, Resolver, ResolverConfig};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! // One resolver per process: it pools registry clients and caches answers.
//! let resolver = Resolver::new(ResolverConfig::default())?;
//! let image = ImageReference::parse("registry.example/team/app:1.4")?;
//! let resolution = resolver.resolve(&image, &Keychain::anonymous()).await?;
//! // `registry.example/team/app:1.4@sha256:…`, what tagpin writes into the pod.
//! println!("{} is {}", resolution.image, resolution.pinned);
//! # Ok(())
//! # }
//! ```

mod artifacts;
mod cache;
mod challenge;
mod client;
mod config;
mod credentials;
mod digest;
mod endpoint;
mod error;
mod reference;
mod resolve;
mod stats;

pub use artifacts::FetchedManifest;
pub use challenge::parse as parse_challenge;
pub use config::{CacheSettings, RegistrySettings, ResolverConfig, TimeoutSettings};
pub use credentials::{Credential, CredentialError, DockerConfig, Keychain};
pub use digest::{Digest, DigestAlgorithm, DigestError};
pub use error::ResolveError;
pub use reference::{ImageReference, ReferenceError};
pub use resolve::{Resolution, Resolver};
pub use stats::ResolverStats;
