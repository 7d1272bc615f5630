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
    /// The verdict of a rule whose requirements were all proven. Every
    /// verified verdict is built here, so none can name no signer: a rule
    /// "met" by nobody proves nothing and fails instead.
    pub fn verified(rule: &str, signers: Vec<String>, attestations: Vec<String>) -> Self {
        if signers.is_empty() {
            return Self::failed(
                rule,
                "no signer was verified, and a verdict without a signer proves nothing".into(),
            );
        }
        Self {
            outcome: Outcome::Verified,
            rule: rule.to_owned(),
            signers,
            attestations,
            reason: None,
        }
    }

    /// The verdict of a rule with a requirement not met, and why.
    pub fn failed(rule: &str, reason: String) -> Self {
        Self {
            outcome: Outcome::Failed,
            rule: rule.to_owned(),
            signers: Vec::new(),
            attestations: Vec::new(),
            reason: Some(reason),
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verdict_without_signers_is_never_verified() {
        let v = Verdict::verified(
            "r",
            Vec::new(),
            vec!["https://slsa.dev/provenance/v1".into()],
        );
        assert_eq!(v.outcome, Outcome::Failed);
        assert!(v.attestations.is_empty());
        assert!(v.reason.is_some_and(|r| r.contains("no signer")));
        let v = Verdict::verified("r", vec!["sha256:ab".into()], Vec::new());
        assert_eq!(v.outcome, Outcome::Verified);
    }
}
