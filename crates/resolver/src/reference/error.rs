//! Why a string is not an image reference tagpin accepts.

use crate::digest::DigestError;

/// Why a string is not an image reference tagpin accepts.
///
/// Every message names the rejected input so a user reading an admission
/// denial or a CLI error can find the offending image in their manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The input is the empty string.
    #[error("invalid image reference \"\": the reference is empty")]
    Empty,
    /// The input contains whitespace or control characters.
    #[error(
        "invalid image reference {input:?}: contains whitespace or control characters (remove them)"
    )]
    Whitespace {
        /// The rejected input.
        input: String,
    },
    /// The input starts with a URL scheme such as `https://`.
    #[error(
        "invalid image reference {input:?}: remove the {scheme:?} prefix, image references name the registry host without a URL scheme"
    )]
    Scheme {
        /// The rejected input.
        input: String,
        /// The scheme prefix found, including `://`.
        scheme: String,
    },
    /// The input is a bare 64-character hex string, i.e. an image ID.
    #[error(
        "invalid image reference {input:?}: cannot specify 64-byte hexadecimal strings (an image ID is not a pullable reference, write name@sha256:<hex>)"
    )]
    ImageId {
        /// The rejected input.
        input: String,
    },
    /// The registry host part is malformed.
    #[error("invalid image reference {input:?}: invalid registry host {host:?}: {reason}")]
    InvalidHost {
        /// The rejected input.
        input: String,
        /// The host part as written (before the first `/`).
        host: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No repository name precedes the tag or digest.
    #[error("invalid image reference {input:?}: the repository name is empty")]
    EmptyRepository {
        /// The rejected input.
        input: String,
    },
    /// The repository path contains uppercase letters.
    #[error("invalid image reference {input:?}: repository name must be lowercase")]
    UppercaseRepository {
        /// The rejected input.
        input: String,
    },
    /// A `/`-separated repository path component is malformed.
    #[error(
        "invalid image reference {input:?}: invalid repository path component {component:?}: {reason}"
    )]
    InvalidPathComponent {
        /// The rejected input.
        input: String,
        /// The offending component (empty for `//` or a leading/trailing `/`).
        component: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The normalized repository name exceeds 255 characters.
    #[error(
        "invalid image reference {input:?}: repository name is {len} characters long, the limit is {max}"
    )]
    NameTooLong {
        /// The rejected input.
        input: String,
        /// Length of the normalized repository name (without the registry).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A `:` is not followed by a tag.
    #[error("invalid image reference {input:?}: the tag after ':' is empty")]
    EmptyTag {
        /// The rejected input.
        input: String,
    },
    /// The tag contains characters outside `[A-Za-z0-9_.-]` or starts with `.`/`-`.
    #[error(
        "invalid image reference {input:?}: invalid tag {tag:?}: a tag uses letters, digits, '_', '.' and '-' and must not start with '.' or '-'"
    )]
    InvalidTag {
        /// The rejected input.
        input: String,
        /// The tag as written.
        tag: String,
    },
    /// The tag exceeds 128 characters.
    #[error("invalid image reference {input:?}: tag is {len} characters long, the limit is {max}")]
    TagTooLong {
        /// The rejected input.
        input: String,
        /// Length of the tag.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An `@` is not followed by a digest.
    #[error(
        "invalid image reference {input:?}: the digest after '@' is empty (expected sha256:<64 hex> or sha512:<128 hex>)"
    )]
    EmptyDigest {
        /// The rejected input.
        input: String,
    },
    /// The part after `@` is not a valid digest.
    #[error("invalid image reference {input:?}: {source}")]
    InvalidDigest {
        /// The rejected input.
        input: String,
        /// Why the digest was rejected.
        #[source]
        source: DigestError,
    },
}
