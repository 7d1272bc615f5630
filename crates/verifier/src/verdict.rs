//! The result of verifying one image digest.

use serde::{Deserialize, Serialize};

/// What the policy decided for one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// A rule matched and every requirement was proven.
    Verified,
    /// A rule matched and a requirement was not met.
    Failed,
    /// No rule matched; the policy's `noMatch` is `allow`.
    NoRuleMatchedAllowed,
    /// No rule matched; the policy's `noMatch` is `warn`.
    NoRuleMatchedWarn,
    /// No rule matched; the policy's `noMatch` is `deny`.
    NoRuleMatchedDenied,
}

impl Outcome {
    /// True when the image may be admitted (possibly with a warning).
    pub fn admits(self) -> bool {
        matches!(
            self,
            Self::Verified | Self::NoRuleMatchedAllowed | Self::NoRuleMatchedWarn
        )
    }

    /// Short name used in annotations and CLI output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verified => "verified",
            Self::Failed => "failed",
            Self::NoRuleMatchedAllowed => "no-rule-allowed",
            Self::NoRuleMatchedWarn => "no-rule-warn",
            Self::NoRuleMatchedDenied => "no-rule-denied",
        }
    }
}

/// The verdict for one image digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    /// The decision.
    pub outcome: Outcome,
    /// Name of the rule applied; empty when no rule matched.
    pub rule: String,
    /// Signers that satisfied the rule: `sha256:<hex>` key fingerprints or
    /// `issuer/subject` certificate identities.
    pub signers: Vec<String>,
    /// Predicate types of the attestations verified.
    pub attestations: Vec<String>,
    /// Why the image failed, or the warning; names image, digest and rule once told with
    /// [`Verdict::for_image`] (as every verdict the verifier returns is), not while cached.
    pub reason: Option<String>,
}

impl Verdict {
    /// This verdict told about `image` as its request wrote it: the reason, when there is
    /// one, starts with the image, the digest and the rule.
    pub fn for_image(
        mut self,
        image: &tagpin_resolver::ImageReference,
        digest: &tagpin_resolver::Digest,
    ) -> Self {
        if let Some(reason) = self.reason.take() {
            let subject = subject(image.as_written(), digest);
            self.reason = Some(if self.rule.is_empty() {
                format!("{subject}: {reason}")
            } else {
                format!("{subject} (rule {:?}): {reason}", self.rule)
            });
        }
        self
    }
}

/// `image@digest`, or `image` alone when it is written with that digest already.
pub(crate) fn subject(image: &str, digest: &tagpin_resolver::Digest) -> String {
    let digest = digest.to_string();
    match image.rsplit_once('@') {
        Some((_, written)) if written == digest => image.to_owned(),
        _ => format!("{image}@{digest}"),
    }
}
