//! The verification policy as written in tagpin's YAML configuration.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::distinct;

/// Signature and attestation policy, embedded under `verification:` in tagpin's config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    /// What happens to an image that no rule matches; deliberately required.
    pub no_match: NoMatch,
    /// When an index fails its rule, accept it if every runnable platform
    /// manifest it lists (at least one) verifies; build attestations
    /// (`unknown/unknown`, annotated) are not platforms.
    #[serde(default)]
    pub accept_platform_signatures: bool,
    /// Groups of repositories (`registry/repository`) that count as the same
    /// image in a signed payload's docker-reference (mirrors and renames).
    #[serde(default)]
    pub equivalent_repositories: Vec<Vec<String>>,
    /// Named trust roots that authorities refer to.
    #[serde(default)]
    pub trust_roots: BTreeMap<String, TrustRootConfig>,
    /// Rules, matched by image glob: the matching glob with the most literal
    /// characters wins, the rule written first on ties.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

/// Outcome for images that no rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NoMatch {
    /// Admit without verification.
    Allow,
    /// Admit, with a warning.
    Warn,
    /// Reject.
    Deny,
}

/// Where certificate roots and transparency-log keys come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrustRootConfig {
    /// Path of a Sigstore `trusted_root.json` (read offline, never fetched).
    #[serde(default)]
    pub trusted_root: Option<String>,
    /// Inline PEM certificates of a private CA.
    #[serde(default)]
    pub ca_pem: Option<String>,
    /// Path of a PEM file with the certificates of a private CA.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Inline PEM public keys of transparency logs (Rekor) trusted for SETs.
    #[serde(default)]
    pub rekor_keys: Vec<String>,
}

/// One policy rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleConfig {
    /// Name reported in verdicts and denial messages.
    pub name: String,
    /// Image globs over `registry/repository` (`*` stays within a path
    /// segment, `**` crosses segments).
    pub images: Vec<String>,
    /// Who must have signed the digest; `None` requires no signature.
    #[serde(default)]
    pub signatures: Option<AuthoritySetConfig>,
    /// Attestations the digest must carry.
    #[serde(default)]
    pub attestations: Vec<AttestationConfig>,
    /// Per-rule override of the policy-wide `acceptPlatformSignatures`.
    #[serde(default)]
    pub accept_platform_signatures: Option<bool>,
}

/// A combination of authorities: exactly one of the three fields is set.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthoritySetConfig {
    /// Satisfied when any authority is.
    #[serde(default, deserialize_with = "distinct::optional")]
    pub any_of: Option<Vec<AuthorityConfig>>,
    /// Satisfied when every authority is, each by a signature of its own.
    #[serde(default, deserialize_with = "distinct::optional")]
    pub all_of: Option<Vec<AuthorityConfig>>,
    /// Satisfied when at least `count` authorities are.
    #[serde(default)]
    pub threshold: Option<ThresholdConfig>,
}

/// `count` of `of` authorities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ThresholdConfig {
    /// How many authorities must be satisfied, each by a signature of its own.
    pub count: usize,
    /// The candidate authorities.
    #[serde(deserialize_with = "distinct::list")]
    pub of: Vec<AuthorityConfig>,
}

/// One signer: a public key or a certificate identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorityConfig {
    /// Name used in messages; defaults to a description of the signer.
    #[serde(default)]
    pub name: Option<String>,
    /// A public key.
    #[serde(default)]
    pub key: Option<KeyConfig>,
    /// A certificate identity.
    #[serde(default)]
    pub keyless: Option<KeylessConfig>,
    /// Whether a transparency-log proof is required (the default).
    #[serde(default)]
    pub tlog: TlogMode,
    /// Trust root whose Rekor keys check the transparency-log proof of keyed
    /// signatures (keyless authorities use their own `roots`).
    #[serde(default)]
    pub trust_root: Option<String>,
    /// Annotations the same signature's payload must carry.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// A PEM public key, inline or in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyConfig {
    /// Inline PEM.
    #[serde(default)]
    pub pem: Option<String>,
    /// Path of a PEM file.
    #[serde(default)]
    pub file: Option<String>,
}

/// A certificate identity: OIDC issuer and subject, chained to a trust root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeylessConfig {
    /// Exact OIDC issuer.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Regular expression over the OIDC issuer, anchored at both ends.
    #[serde(default)]
    pub issuer_reg_exp: Option<String>,
    /// Exact subject (SAN email or URI).
    #[serde(default)]
    pub subject: Option<String>,
    /// Regular expression over the subject, anchored at both ends.
    #[serde(default)]
    pub subject_reg_exp: Option<String>,
    /// Name of the trust root (under `trustRoots`) the certificate must chain to.
    pub roots: String,
}

/// Transparency-log requirement of an authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TlogMode {
    /// A Rekor SET or inclusion proof must verify offline.
    #[default]
    Required,
    /// No transparency-log proof is checked (air-gapped keyed signing).
    Waived,
}

/// A required attestation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttestationConfig {
    /// Name used in messages; defaults to the predicate type.
    #[serde(default)]
    pub name: Option<String>,
    /// The in-toto predicate type, e.g. `https://slsa.dev/provenance/v1`.
    pub predicate_type: String,
    /// CEL expressions over `predicate` that must all evaluate to true.
    #[serde(default)]
    pub conditions: Vec<String>,
    /// Who must have signed the attestation.
    pub signed_by: AuthoritySetConfig,
}

impl AuthorityConfig {
    /// True when `other` is written as the same signer with the same
    /// annotations: the same key file or PEM, or the same keyless issuer,
    /// subject and roots. Listing a signer twice would let one signature
    /// count twice toward `allOf` or `threshold`.
    pub fn same_signer_as(&self, other: &Self) -> bool {
        let same_key = match (&self.key, &other.key) {
            (Some(a), Some(b)) => {
                (a.file.is_some() && a.file == b.file)
                    || a.pem.as_deref().map(normalize_pem).is_some_and(|p| {
                        b.pem.as_deref().map(normalize_pem).as_deref() == Some(p.as_str())
                    })
            }
            _ => false,
        };
        let same_identity = match (&self.keyless, &other.keyless) {
            (Some(a), Some(b)) => {
                a.roots == b.roots
                    && a.issuer == b.issuer
                    && a.issuer_reg_exp == b.issuer_reg_exp
                    && a.subject == b.subject
                    && a.subject_reg_exp == b.subject_reg_exp
            }
            _ => false,
        };
        (same_key || same_identity) && self.annotations == other.annotations
    }

    /// The signer as written, for messages.
    pub fn describe_signer(&self) -> String {
        match (&self.key, &self.keyless) {
            (Some(KeyConfig { file: Some(f), .. }), _) => format!("key file {f:?}"),
            (Some(_), _) => "inline key".to_owned(),
            (_, Some(k)) => {
                let issuer = k.issuer.as_ref().or(k.issuer_reg_exp.as_ref());
                let subject = k.subject.as_ref().or(k.subject_reg_exp.as_ref());
                format!(
                    "keyless {} / {}",
                    issuer.map_or("?", String::as_str),
                    subject.map_or("?", String::as_str)
                )
            }
            (None, None) => "no signer".to_owned(),
        }
    }
}

fn normalize_pem(pem: &str) -> String {
    pem.split_whitespace().collect()
}
