//! Discovery: finding the signatures and attestations of one digest through an
//! [`ArtifactSource`](source::ArtifactSource): cosign v2 `.sig` and `.att`
//! tags and OCI 1.1 referrers.
//!
//! All registry I/O of the verifier goes through [`source::ArtifactSource`],
//! so a registry failure surfaces as [`source::SourceError`], never as
//! "unsigned". Discovery parses what it finds with [`crate::formats`] but
//! judges nothing: it may not use policy or proofs.
//!
//! Discovery is bounded by registry round trips, not by the number of artifacts: it asks
//! for everything it already knows to ask for at once (`discover`), and
//! [`fetch_once::FetchOnce`] makes sure no artifact is asked for twice in one verification.

pub(crate) mod discover;
pub(crate) mod fetch_once;
pub(crate) mod source;
