//! The `tagpin.dev/images` annotation: what tagpin did with each image field.

use serde::{Deserialize, Serialize};

/// Prefix of every annotation tagpin owns; incoming ones are never trusted.
pub const ANNOTATION_PREFIX: &str = "tagpin.dev/";
/// The annotation listing every image field, its original reference and its digest.
pub const IMAGES_ANNOTATION: &str = "tagpin.dev/images";
/// The audit annotation key (the API server prefixes it with the webhook's name).
pub const IMAGES_AUDIT_KEY: &str = "images";

/// Verdict recorded when no verification policy is configured.
pub const NOT_VERIFIED: &str = "not-verified";
/// Verdict recorded when verification could not reach a verdict (e.g. the registry failed).
pub const VERIFY_ERROR: &str = "error";

/// One image field as recorded in the annotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRecord {
    /// JSON pointer to the field in the object.
    pub path: String,
    /// The reference as the user wrote it, before pinning.
    pub original: String,
    /// The normalized reference (`registry/repository[:tag][@digest]`), when it parses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The digest the field is pinned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// When tagpin asked the registry (RFC 3339), absent for references that already had a digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    /// The registry endpoints whose answer the digest rests on: the one that answered the
    /// tag lookup (a mirror or the origin), then the origin when it confirmed a mirror's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolved_by: Vec<String>,
    /// The verification verdict of the digest (`not-verified` without a policy).
    pub verdict: String,
    /// The policy rule applied, when one matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Who signed the digest: key fingerprints or `issuer/subject` certificate identities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signers: Vec<String>,
    /// Predicate types of the attestations verified.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestations: Vec<String>,
    /// Why the field was denied, or admitted with a warning in warn mode: unpinned when it
    /// could not be resolved, pinned when only its verification failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ImageRecord {
    /// True when `previous` describes this same field as pinned earlier, so its description
    /// (original reference, normalized image, resolution time) can be kept.
    ///
    /// Only descriptive facts are carried over, and only when they agree with the image
    /// the field actually holds, so a forged record never changes which digest is recorded.
    pub fn is_earlier_pin_of(
        previous: &ImageRecord,
        path: &str,
        written: &str,
        digest: &str,
    ) -> bool {
        let consistent_original = tagpin_resolver::ImageReference::parse(&previous.original)
            .is_ok_and(|r| {
                r.digest().is_none() && previous.image.as_deref() == Some(r.normalized().as_str())
            });
        previous.path == path
            && previous.error.is_none()
            && consistent_original
            && previous.digest.as_deref() == Some(digest)
            && format!("{}@{}", previous.original, digest) == written
    }
}

impl ImageRecord {
    /// True when this earlier record says tagpin resolved `written` at `path` to `digest`,
    /// with a resolution time that looks like one tagpin writes.
    pub fn is_same_resolution(&self, path: &str, written: &str, digest: &str) -> bool {
        self.path == path
            && self.original == written
            && self.digest.as_deref() == Some(digest)
            && self.error.is_none()
            && self.resolved_at.as_deref().is_some_and(looks_like_a_time)
    }

    /// True when this stored record describes the field at `path` holding `written`: the
    /// record tagpin wrote for it, kept while the field keeps that image. A record of
    /// another image, or with a digest the field does not carry, describes nothing.
    pub fn describes(&self, path: &str, written: &str) -> bool {
        let image_matches = match &self.digest {
            Some(digest) => {
                written.ends_with(&format!("@{digest}"))
                    && (self.original == written
                        || format!("{}@{digest}", self.original) == written)
            }
            None => self.original == written,
        };
        self.path == path
            && image_matches
            && self.resolved_at.as_deref().is_none_or(looks_like_a_time)
    }
}

/// An RFC 3339 UTC time as tagpin writes it, nothing else.
fn looks_like_a_time(t: &str) -> bool {
    (20..=40).contains(&t.len())
        && t.ends_with('Z')
        && t.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | ':' | 'T' | 'Z' | '.'))
}

/// The endpoints `resolution` rests on, for [`ImageRecord::resolved_by`].
pub fn resolved_by(resolution: &tagpin_resolver::Resolution) -> Vec<String> {
    std::iter::once(resolution.source.clone())
        .chain(resolution.confirmed_by.clone())
        .collect()
}

/// Serializes records as compact JSON.
pub fn to_json(records: &[ImageRecord]) -> String {
    // Serializing plain strings cannot fail; fall back to an empty list to stay total.
    serde_json::to_string(records).unwrap_or_else(|_| "[]".to_owned())
}

/// Parses an incoming annotation value; anything unparsable counts as no records.
pub fn from_json(value: &str) -> Vec<ImageRecord> {
    serde_json::from_str(value).unwrap_or_default()
}

/// Current time in RFC 3339 (UTC).
pub fn rfc3339(time: std::time::SystemTime) -> String {
    k8s_openapi::jiff::Timestamp::try_from(time)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_camel_case_and_omits_absent_fields() {
        let r = ImageRecord {
            path: "/spec/containers/0/image".into(),
            original: "nginx:1.25".into(),
            image: Some("docker.io/library/nginx:1.25".into()),
            digest: Some(format!("sha256:{}", "a".repeat(64))),
            resolved_at: Some("2026-01-01T00:00:00Z".into()),
            resolved_by: vec!["127.0.0.1:5080".into(), "127.0.0.1:5443".into()],
            verdict: NOT_VERIFIED.into(),
            rule: None,
            signers: Vec::new(),
            attestations: Vec::new(),
            error: None,
        };
        let json = to_json(std::slice::from_ref(&r));
        assert!(
            json.contains(r#""resolvedAt":"2026-01-01T00:00:00Z""#),
            "{json}"
        );
        assert!(!json.contains("error"), "{json}");
        assert!(
            json.contains(r#""resolvedBy":["127.0.0.1:5080","127.0.0.1:5443"]"#),
            "{json}"
        );
        assert_eq!(from_json(&json), vec![r]);
        assert!(from_json("not json").is_empty());
    }

    #[test]
    fn a_record_describes_only_the_image_it_was_written_for() {
        let d = format!("sha256:{}", "a".repeat(64));
        let written = format!(
            r#"[{{"path":"/spec/containers/0/image","original":"app:1","image":"docker.io/library/app:1","digest":"{d}","resolvedAt":"2026-01-01T00:00:00Z","verdict":"not-verified"}}]"#
        );
        let r = from_json(&written).remove(0);
        let pinned = format!("app:1@{d}");
        assert!(r.describes("/spec/containers/0/image", &pinned));
        assert!(!r.describes("/spec/containers/1/image", &pinned));
        assert!(!r.describes("/spec/containers/0/image", "app:1"));
        assert!(!r.describes("/spec/containers/0/image", &format!("app:2@{d}")));
        let written_with_digest = ImageRecord {
            original: pinned.clone(),
            ..r.clone()
        };
        assert!(written_with_digest.describes("/spec/containers/0/image", &pinned));
        let unresolved = ImageRecord {
            digest: None,
            resolved_at: None,
            error: Some("unreachable".into()),
            ..r.clone()
        };
        assert!(unresolved.describes("/spec/containers/0/image", "app:1"));
        assert!(!unresolved.describes("/spec/containers/0/image", &pinned));
        let odd_time = ImageRecord {
            resolved_at: Some("yesterday, honest".into()),
            ..r
        };
        assert!(!odd_time.describes("/spec/containers/0/image", &pinned));
    }

    #[test]
    fn formats_rfc3339_utc() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(86_400);
        assert_eq!(rfc3339(t), "1970-01-02T00:00:00Z");
    }
}
