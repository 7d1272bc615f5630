//! The steps of [`ImageReference::parse`](super::ImageReference::parse), in order.

use super::{DEFAULT_REGISTRY, OFFICIAL_NAMESPACE, ReferenceError, host, path, tag};
use crate::digest::Digest;

/// The pieces of a reference as written, before validation.
pub(super) struct Pieces<'a> {
    /// Everything before the tag and digest: `[host/]path`.
    pub name: &'a str,
    /// The text after the tag's `:`, if any.
    pub tag: Option<&'a str>,
    /// The text after `@`, if any.
    pub digest: Option<&'a str>,
}

/// Rejects inputs that are not references at all: empty, whitespace, URLs, image IDs.
pub(super) fn reject_non_references(input: &str) -> Result<(), ReferenceError> {
    if input.is_empty() {
        return Err(ReferenceError::Empty);
    }
    let owned = || input.to_owned();
    if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ReferenceError::Whitespace { input: owned() });
    }
    if let Some(pos) = input.find("://") {
        return Err(ReferenceError::Scheme {
            input: owned(),
            scheme: input[..pos + 3].to_owned(),
        });
    }
    if input.len() == 64
        && input
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(ReferenceError::ImageId { input: owned() });
    }
    Ok(())
}

/// Splits `input` into name, tag and digest.
///
/// A digest cannot contain '@', and a tag cannot contain '/', so the first '@'
/// ends the name and a ':' after the last '/' starts the tag.
pub(super) fn split(input: &str) -> Result<Pieces<'_>, ReferenceError> {
    let (name_and_tag, digest) = match input.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (input, None),
    };
    let (name, tag) = match name_and_tag.rfind(':') {
        Some(i) if !name_and_tag[i..].contains('/') => {
            (&name_and_tag[..i], Some(&name_and_tag[i + 1..]))
        }
        _ => (name_and_tag, None),
    };
    if name.is_empty() {
        return Err(ReferenceError::EmptyRepository {
            input: input.to_owned(),
        });
    }
    Ok(Pieces { name, tag, digest })
}

/// Separates the registry host from the repository path and normalizes the host
/// (see [`host::normalize`]); a name without a host is on the default registry.
pub(super) fn registry_and_path<'a>(
    input: &str,
    name: &'a str,
) -> Result<(String, &'a str), ReferenceError> {
    match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            host::validate(first).map_err(|reason| ReferenceError::InvalidHost {
                input: input.to_owned(),
                host: first.to_owned(),
                reason,
            })?;
            Ok((host::normalize(first), rest))
        }
        _ => Ok((DEFAULT_REGISTRY.to_owned(), name)),
    }
}

/// Validates the path and returns the repository name, with `library/` added
/// for single-component names on the default registry.
pub(super) fn repository(
    input: &str,
    registry: &str,
    written_path: &str,
) -> Result<String, ReferenceError> {
    let owned = || input.to_owned();
    if written_path.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(ReferenceError::UppercaseRepository { input: owned() });
    }
    path::validate(written_path).map_err(|e| ReferenceError::InvalidPathComponent {
        input: owned(),
        component: e.component.to_owned(),
        reason: e.reason,
    })?;
    let repository = if registry == DEFAULT_REGISTRY && !written_path.contains('/') {
        format!("{OFFICIAL_NAMESPACE}{written_path}")
    } else {
        written_path.to_owned()
    };
    if repository.len() > path::MAX_REPOSITORY_LEN {
        return Err(ReferenceError::NameTooLong {
            input: owned(),
            len: repository.len(),
            max: path::MAX_REPOSITORY_LEN,
        });
    }
    Ok(repository)
}

/// Validates the tag, when there is one.
pub(super) fn check_tag(input: &str, written: Option<&str>) -> Result<(), ReferenceError> {
    let Some(written) = written else {
        return Ok(());
    };
    if written.is_empty() {
        return Err(ReferenceError::EmptyTag {
            input: input.to_owned(),
        });
    }
    tag::validate(written).map_err(|e| match e {
        tag::TagError::Invalid => ReferenceError::InvalidTag {
            input: input.to_owned(),
            tag: written.to_owned(),
        },
        tag::TagError::TooLong => ReferenceError::TagTooLong {
            input: input.to_owned(),
            len: written.len(),
            max: tag::MAX_TAG_LEN,
        },
    })
}

/// Parses the digest, when there is one.
pub(super) fn digest(input: &str, written: Option<&str>) -> Result<Option<Digest>, ReferenceError> {
    match written {
        None => Ok(None),
        Some("") => Err(ReferenceError::EmptyDigest {
            input: input.to_owned(),
        }),
        Some(d) => d
            .parse::<Digest>()
            .map(Some)
            .map_err(|source| ReferenceError::InvalidDigest {
                input: input.to_owned(),
                source,
            }),
    }
}
