//! Load-time checks of a [`Policy`]: keys, regexes, CEL and trust roots are
//! parsed once so that a bad policy is rejected before it is ever enforced.

use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use super::config::{
    AttestationConfig, AuthorityConfig, AuthoritySetConfig, KeyConfig, KeylessConfig, NoMatch,
    Policy, RuleConfig, TlogMode, TrustRootConfig,
};
use crate::policy::conditions::Condition;
use crate::policy::glob::ImageGlob;
use crate::proofs::keys::PublicKey;
use crate::proofs::trust_root::TrustRoot;

/// Why a policy was rejected at load time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid verification policy: {0}")]
pub struct PolicyError(pub String);

/// A validated policy, ready to verify images.
#[derive(Debug)]
pub struct CompiledPolicy {
    pub(crate) no_match: NoMatch,
    pub(crate) equivalent_repositories: Vec<Vec<String>>,
    pub(crate) rules: Vec<Rule>,
    version: String,
}

/// A validated rule.
#[derive(Debug)]
pub struct Rule {
    pub(crate) name: String,
    pub(crate) globs: Vec<ImageGlob>,
    pub(crate) signatures: Option<AuthoritySet>,
    pub(crate) attestations: Vec<AttestationRequirement>,
    pub(crate) accept_platform_signatures: bool,
}

/// How many authorities of a set must be satisfied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combination {
    /// At least one.
    AnyOf,
    /// Every one.
    AllOf,
    /// At least this many.
    Threshold(usize),
}

/// Authorities combined by a [`Combination`].
#[derive(Debug)]
pub struct AuthoritySet {
    pub(crate) combination: Combination,
    pub(crate) authorities: Vec<Authority>,
}

/// One validated signer with its constraints.
#[derive(Debug)]
pub struct Authority {
    pub(crate) name: String,
    pub(crate) signer: Signer,
    pub(crate) tlog: TlogMode,
    /// Trust root whose Rekor keys verify the tlog proof.
    pub(crate) tlog_root: Option<Arc<TrustRoot>>,
    pub(crate) annotations: BTreeMap<String, String>,
}

/// What identifies a signer.
#[derive(Debug)]
pub enum Signer {
    /// A public key.
    Key(PublicKey),
    /// A certificate identity chained to roots.
    Identity {
        /// OIDC issuer matcher.
        issuer: Matcher,
        /// SAN matcher.
        subject: Matcher,
        /// Roots the certificate must chain to.
        roots: Arc<TrustRoot>,
    },
}

/// Exact or anchored-regex string matcher.
#[derive(Debug)]
pub enum Matcher {
    /// Equal to this string.
    Exact(String),
    /// Matched by this regex, anchored at both ends.
    Regex(regex::Regex),
}

impl Matcher {
    /// True when `s` matches.
    pub fn matches(&self, s: &str) -> bool {
        match self {
            Self::Exact(e) => e == s,
            Self::Regex(r) => r.is_match(s),
        }
    }

    /// Human-readable form for messages.
    pub fn describe(&self) -> String {
        match self {
            Self::Exact(e) => format!("{e:?}"),
            Self::Regex(r) => format!("/{}/", r.as_str()),
        }
    }
}

/// A validated attestation requirement.
#[derive(Debug)]
pub struct AttestationRequirement {
    pub(crate) name: String,
    pub(crate) predicate_type: String,
    pub(crate) conditions: Vec<Condition>,
    pub(crate) signed_by: AuthoritySet,
}

impl CompiledPolicy {
    /// Hash of the policy and every file it loaded; part of verdict cache keys.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The rule for `name` (`registry/repository`): the matching rule with the
    /// most specific glob, the first one written on ties.
    pub fn rule_for(&self, name: &str) -> Option<&Rule> {
        let mut best: Option<(&Rule, usize)> = None;
        for rule in &self.rules {
            for glob in &rule.globs {
                if glob.matches(name) {
                    let s = glob.specificity();
                    if best.is_none_or(|(_, b)| s > b) {
                        best = Some((rule, s));
                    }
                }
            }
        }
        best.map(|(r, _)| r)
    }

    /// The rule with this name.
    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.name == name)
    }

    /// What happens to images no rule matches.
    pub fn no_match(&self) -> NoMatch {
        self.no_match
    }
}

impl Rule {
    /// The rule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The signatures the rule requires, if any.
    pub fn signatures(&self) -> Option<&AuthoritySet> {
        self.signatures.as_ref()
    }
}

struct Loader<'a> {
    policy: &'a Policy,
    roots: BTreeMap<String, Arc<TrustRoot>>,
    hasher: Sha256,
}

fn read_file(path: &str, what: &str, hasher: &mut Sha256) -> Result<Vec<u8>, PolicyError> {
    let bytes = std::fs::read(path)
        .map_err(|e| PolicyError(format!("cannot read {what} {path:?}: {e}")))?;
    hasher.update(path.as_bytes());
    hasher.update(&bytes);
    Ok(bytes)
}

impl Policy {
    /// Parses keys, regexes, CEL conditions and trust roots, reading the files
    /// the policy names; any problem is reported here, never at admission time.
    pub fn compile(&self) -> Result<CompiledPolicy, PolicyError> {
        let mut hasher = Sha256::new();
        let canonical = serde_json::to_vec(self)
            .map_err(|e| PolicyError(format!("policy cannot be serialised: {e}")))?;
        hasher.update(&canonical);
        let mut loader = Loader {
            policy: self,
            roots: BTreeMap::new(),
            hasher,
        };
        for (name, cfg) in &self.trust_roots {
            let root = load_trust_root(name, cfg, &mut loader.hasher)?;
            loader.roots.insert(name.clone(), Arc::new(root));
        }
        let mut rules = Vec::new();
        let mut names = std::collections::BTreeSet::new();
        for rule in &self.rules {
            if !names.insert(rule.name.as_str()) {
                return Err(PolicyError(format!(
                    "rule name {:?} is used twice",
                    rule.name
                )));
            }
            rules.push(
                loader
                    .rule(rule)
                    .map_err(|e| PolicyError(format!("rule {:?}: {}", rule.name, e.0)))?,
            );
        }
        for group in &self.equivalent_repositories {
            if group.len() < 2 {
                return Err(PolicyError(
                    "each equivalentRepositories group needs at least two repositories".into(),
                ));
            }
        }
        Ok(CompiledPolicy {
            no_match: self.no_match,
            equivalent_repositories: self.equivalent_repositories.clone(),
            rules,
            version: hex::encode(loader.hasher.finalize()),
        })
    }

    /// Checks the policy without keeping the compiled form.
    pub fn validate(&self) -> Result<(), PolicyError> {
        self.compile().map(|_| ())
    }
}

fn load_trust_root(
    name: &str,
    cfg: &TrustRootConfig,
    hasher: &mut Sha256,
) -> Result<TrustRoot, PolicyError> {
    let err = |m: String| PolicyError(format!("trust root {name:?}: {m}"));
    let mut root = TrustRoot::default();
    if let Some(path) = &cfg.trusted_root {
        let bytes = read_file(path, "trusted_root.json", hasher)?;
        root =
            TrustRoot::from_trusted_root_json(&bytes).map_err(|e| err(format!("{path}: {e}")))?;
    }
    if let Some(pem) = &cfg.ca_pem {
        root.add_ca_pem(pem).map_err(|e| err(e.0))?;
    }
    if let Some(path) = &cfg.ca_file {
        let bytes = read_file(path, "CA file", hasher)?;
        root.add_ca_pem(&String::from_utf8_lossy(&bytes))
            .map_err(|e| err(format!("{path}: {e}")))?;
    }
    for pem in &cfg.rekor_keys {
        root.add_rekor_key_pem(pem).map_err(|e| err(e.0))?;
    }
    if root.authorities.is_empty() && root.tlog_keys.is_empty() {
        return Err(err(
            "set trustedRoot, caPem, caFile or rekorKeys; it trusts nothing".into(),
        ));
    }
    Ok(root)
}

impl Loader<'_> {
    fn rule(&mut self, rule: &RuleConfig) -> Result<Rule, PolicyError> {
        if rule.images.is_empty() {
            return Err(PolicyError("lists no images".into()));
        }
        let globs = rule
            .images
            .iter()
            .map(|g| ImageGlob::new(g).map_err(PolicyError))
            .collect::<Result<Vec<_>, _>>()?;
        let signatures = rule
            .signatures
            .as_ref()
            .map(|s| self.authority_set(s, "signatures"))
            .transpose()?;
        let attestations = rule
            .attestations
            .iter()
            .map(|a| self.attestation(a))
            .collect::<Result<Vec<_>, _>>()?;
        if signatures.is_none() && attestations.is_empty() {
            return Err(PolicyError(
                "requires neither signatures nor attestations; use noMatch or a rule with requirements"
                    .into(),
            ));
        }
        Ok(Rule {
            name: rule.name.clone(),
            globs,
            signatures,
            attestations,
            accept_platform_signatures: rule
                .accept_platform_signatures
                .unwrap_or(self.policy.accept_platform_signatures),
        })
    }

    fn attestation(
        &mut self,
        a: &AttestationConfig,
    ) -> Result<AttestationRequirement, PolicyError> {
        let name = a.name.clone().unwrap_or_else(|| a.predicate_type.clone());
        let at = |m: String| PolicyError(format!("attestation {name:?}: {m}"));
        if a.predicate_type.trim().is_empty() {
            return Err(at("predicateType is empty".into()));
        }
        let conditions = a
            .conditions
            .iter()
            .map(|c| Condition::compile(c).map_err(&at))
            .collect::<Result<Vec<_>, _>>()?;
        let signed_by = self
            .authority_set(&a.signed_by, "signedBy")
            .map_err(|e| at(e.0))?;
        Ok(AttestationRequirement {
            name,
            predicate_type: a.predicate_type.clone(),
            conditions,
            signed_by,
        })
    }

    fn authority_set(
        &mut self,
        s: &AuthoritySetConfig,
        field: &str,
    ) -> Result<AuthoritySet, PolicyError> {
        let (combination, list) = match (&s.any_of, &s.all_of, &s.threshold) {
            (Some(l), None, None) => (Combination::AnyOf, l),
            (None, Some(l), None) => (Combination::AllOf, l),
            (None, None, Some(t)) => {
                if t.count == 0 || t.count > t.of.len() {
                    return Err(PolicyError(format!(
                        "{field}: threshold count {} must be between 1 and the {} authorities listed",
                        t.count,
                        t.of.len()
                    )));
                }
                (Combination::Threshold(t.count), &t.of)
            }
            _ => {
                return Err(PolicyError(format!(
                    "{field}: set exactly one of anyOf, allOf or threshold"
                )));
            }
        };
        if list.is_empty() {
            return Err(PolicyError(format!("{field}: lists no authorities")));
        }
        let authorities = list
            .iter()
            .enumerate()
            .map(|(i, a)| {
                self.authority(a)
                    .map_err(|e| PolicyError(format!("{field}: authority #{} : {}", i + 1, e.0)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        check_distinct(&authorities).map_err(|e| PolicyError(format!("{field}: {e}")))?;
        Ok(AuthoritySet {
            combination,
            authorities,
        })
    }

    fn root(&self, name: &str) -> Result<Arc<TrustRoot>, PolicyError> {
        self.roots.get(name).cloned().ok_or_else(|| {
            PolicyError(format!(
                "trust root {name:?} is not defined under trustRoots"
            ))
        })
    }

    fn authority(&mut self, a: &AuthorityConfig) -> Result<Authority, PolicyError> {
        let (signer, default_name) = match (&a.key, &a.keyless) {
            (Some(k), None) => {
                let key = self.key(k)?;
                let fp = key.fingerprint();
                (Signer::Key(key), format!("key {fp}"))
            }
            (None, Some(k)) => self.identity(k)?,
            _ => {
                return Err(PolicyError("set exactly one of key or keyless".into()));
            }
        };
        let tlog_root = match (&signer, &a.trust_root) {
            (_, Some(name)) => Some(self.root(name)?),
            (Signer::Identity { roots, .. }, None) => Some(roots.clone()),
            (Signer::Key(_), None) => None,
        };
        if a.tlog == TlogMode::Required && tlog_root.as_ref().is_none_or(|r| r.tlog_keys.is_empty())
        {
            return Err(PolicyError(
                "a transparency-log proof is required but no Rekor keys are configured for it: \
                 set trustRoot (or keyless roots) to a trust root with tlogs/rekorKeys, or tlog: waived"
                    .into(),
            ));
        }
        Ok(Authority {
            name: a.name.clone().unwrap_or(default_name),
            signer,
            tlog: a.tlog,
            tlog_root,
            annotations: a.annotations.clone(),
        })
    }

    fn key(&mut self, k: &KeyConfig) -> Result<PublicKey, PolicyError> {
        let pem = match (&k.pem, &k.file) {
            (Some(p), None) => p.clone(),
            (None, Some(path)) => {
                String::from_utf8_lossy(&read_file(path, "public key file", &mut self.hasher)?)
                    .into_owned()
            }
            _ => return Err(PolicyError("key: set exactly one of pem or file".into())),
        };
        PublicKey::from_pem(&pem).map_err(|e| PolicyError(format!("key: {e}")))
    }

    fn identity(&mut self, k: &KeylessConfig) -> Result<(Signer, String), PolicyError> {
        let issuer = matcher("issuer", &k.issuer, &k.issuer_reg_exp)?;
        let subject = matcher("subject", &k.subject, &k.subject_reg_exp)?;
        let roots = self.root(&k.roots)?;
        if roots.authorities.is_empty() {
            return Err(PolicyError(format!(
                "keyless: trust root {:?} has no certificate authorities",
                k.roots
            )));
        }
        let name = format!("{}/{}", issuer.describe(), subject.describe());
        Ok((
            Signer::Identity {
                issuer,
                subject,
                roots,
            },
            name,
        ))
    }
}

/// Refuses one signer listed twice with the same annotations, however it is
/// written (a key inline and from a file): one signature would satisfy both,
/// and `allOf` or `threshold` would count it twice.
fn check_distinct(authorities: &[Authority]) -> Result<(), String> {
    for (j, b) in authorities.iter().enumerate() {
        if let Some(i) = authorities[..j].iter().position(|a| a.same_signer_as(b)) {
            return Err(format!(
                "authorities #{} and #{} are the same signer ({}) with the same annotations; \
                 one signature would count for both, so list each signer once",
                i + 1,
                j + 1,
                b.name
            ));
        }
    }
    Ok(())
}

impl Authority {
    fn same_signer_as(&self, other: &Self) -> bool {
        let same = match (&self.signer, &other.signer) {
            (Signer::Key(a), Signer::Key(b)) => a == b,
            (
                Signer::Identity {
                    issuer: ia,
                    subject: sa,
                    roots: ra,
                },
                Signer::Identity {
                    issuer: ib,
                    subject: sb,
                    roots: rb,
                },
            ) => {
                ia.describe() == ib.describe()
                    && sa.describe() == sb.describe()
                    && Arc::ptr_eq(ra, rb)
            }
            _ => false,
        };
        same && self.annotations == other.annotations
    }
}

fn matcher(
    field: &str,
    exact: &Option<String>,
    regex: &Option<String>,
) -> Result<Matcher, PolicyError> {
    match (exact, regex) {
        (Some(e), None) => Ok(Matcher::Exact(e.clone())),
        (None, Some(r)) => regex::Regex::new(&format!("^(?:{r})$"))
            .map(Matcher::Regex)
            .map_err(|e| PolicyError(format!("keyless: {field}RegExp {r:?} is invalid: {e}"))),
        _ => Err(PolicyError(format!(
            "keyless: set exactly one of {field} or {field}RegExp (both issuer and subject are checked)"
        ))),
    }
}
