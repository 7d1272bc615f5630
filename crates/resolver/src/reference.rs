//! Image references as the kubelet and the container runtime read them.
//!
//! tagpin must resolve exactly the image the node would pull, so parsing
//! follows the normalized-name rules of the reference grammar strictly:
//! `docker.io` is the default registry, single-component names on it live in
//! `library/`, and the first path component is a registry host only when it
//! contains `.` or `:` or is `localhost`. Anything the grammar rejects is
//! rejected here with a message naming the input, never repaired.
//!
//! The registry host is normalized so that one registry has one name wherever
//! tagpin compares names (policy rules, configuration, credentials, caches,
//! the annotation's `image`): lowercase, without the default port 443, and
//! Docker Hub's aliases `index.docker.io` and `registry-1.docker.io` as
//! `docker.io`. What the user wrote is kept in [`ImageReference::as_written`]
//! and is what a pin appends the digest to.

mod error;
mod host;
mod parse;
mod path;
mod tag;
#[cfg(test)]
mod tests;

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use crate::digest::Digest;

pub use error::ReferenceError;
pub use host::normalize as normalize_host;

/// Registry used when the reference names none.
const DEFAULT_REGISTRY: &str = "docker.io";
/// Other names of the default registry, normalized to [`DEFAULT_REGISTRY`]: its
/// historical name and the host that serves its registry API.
const DEFAULT_REGISTRY_ALIASES: [&str; 2] = ["index.docker.io", "registry-1.docker.io"];
/// Namespace of single-component repositories on the default registry.
const OFFICIAL_NAMESPACE: &str = "library/";
/// Tag pulled when the reference has neither tag nor digest.
const DEFAULT_TAG: &str = "latest";

/// A parsed, validated image reference such as `nginx:1.25` or
/// `127.0.0.1:5443/team/app:1.0@sha256:...`.
///
/// Two references are equal when they name the same thing after
/// normalization (`nginx` equals `docker.io/library/nginx:latest`);
/// [`as_written`](Self::as_written) keeps the original spelling.
#[derive(Clone, Debug)]
pub struct ImageReference {
    as_written: String,
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl ImageReference {
    /// Parses `input` strictly; see the module documentation for the rules.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        parse::reject_non_references(input)?;
        let pieces = parse::split(input)?;
        let (registry, written_path) = parse::registry_and_path(input, pieces.name)?;
        let repository = parse::repository(input, &registry, written_path)?;
        parse::check_tag(input, pieces.tag)?;
        let digest = parse::digest(input, pieces.digest)?;
        Ok(Self {
            as_written: input.to_owned(),
            registry,
            repository,
            tag: pieces.tag.map(str::to_owned),
            digest,
        })
    }

    /// The exact string this reference was parsed from.
    pub fn as_written(&self) -> &str {
        &self.as_written
    }

    /// The normalized registry host with port, e.g. `docker.io` or `[::1]:5000`: lowercase,
    /// without the default port 443, Docker Hub's aliases as `docker.io`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path without the registry, e.g. `library/nginx`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// `registry/repository`, e.g. `docker.io/library/nginx`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The tag the user wrote, if any (no implicit `latest`).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest the user wrote, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The tag the user wrote, or `latest` when there is none.
    pub fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or(DEFAULT_TAG)
    }

    /// `registry/repository[:tag][@digest]`, adding `:latest` only when the
    /// reference has neither tag nor digest.
    pub fn normalized(&self) -> String {
        let mut out = self.name();
        if let Some(tag) = self.effective_tag() {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(&digest.to_string());
        }
        out
    }

    /// This reference with `digest` set (replacing any digest it had); its
    /// [`as_written`](Self::as_written) becomes the pinned spelling.
    pub fn with_digest(&self, digest: Digest) -> ImageReference {
        let base = self.written_without_digest();
        Self {
            as_written: format!("{base}@{digest}"),
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: self.tag.clone(),
            digest: Some(digest),
        }
    }

    /// What the user wrote with `@digest` appended (`nginx:1.25@sha256:...`),
    /// or the input unchanged when it already carries a digest.
    pub fn pinned(&self, digest: &Digest) -> String {
        if self.digest.is_some() {
            self.as_written.clone()
        } else {
            format!("{}@{digest}", self.as_written)
        }
    }

    /// True when the registry host is `localhost`, in 127.0.0.0/8 or `::1`.
    pub fn is_loopback(&self) -> bool {
        host::is_loopback(self.host_without_port())
    }

    /// The registry host without port or IPv6 brackets, e.g. `127.0.0.1` or `::1`.
    pub fn host_without_port(&self) -> &str {
        let registry = self.registry.as_str();
        if let Some(rest) = registry.strip_prefix('[') {
            // Validated at parse time: a bracketed host always has its ']'.
            rest.split_once(']').map_or(rest, |(addr, _)| addr)
        } else {
            registry.split_once(':').map_or(registry, |(host, _)| host)
        }
    }

    /// The tag that is part of the normalized form: the written one, or
    /// `latest` when there is neither tag nor digest.
    fn effective_tag(&self) -> Option<&str> {
        match (&self.tag, &self.digest) {
            (Some(tag), _) => Some(tag),
            (None, None) => Some(DEFAULT_TAG),
            (None, Some(_)) => None,
        }
    }

    /// The written input up to (not including) its `@digest`, if any.
    fn written_without_digest(&self) -> &str {
        self.as_written
            .split_once('@')
            .map_or(self.as_written.as_str(), |(name, _)| name)
    }

    /// The fields that decide equality: the parts of the normalized form.
    fn key(&self) -> (&str, &str, Option<&str>, Option<&Digest>) {
        (
            &self.registry,
            &self.repository,
            self.effective_tag(),
            self.digest.as_ref(),
        )
    }
}

impl PartialEq for ImageReference {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for ImageReference {}

impl Hash for ImageReference {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl FromStr for ImageReference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.normalized())
    }
}

impl serde::Serialize for ImageReference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_written)
    }
}

impl<'de> serde::Deserialize<'de> for ImageReference {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
