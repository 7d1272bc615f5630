//! The verifier's entry point: one image digest against the policy.

use std::time::{SystemTime, UNIX_EPOCH};

use futures::future::join_all;
use tagpin_resolver::{Digest, ImageReference};

use crate::cache::VerdictCache;
use crate::discovery::discover::{self, Discovery};
use crate::discovery::fetch_once::FetchOnce;
use crate::discovery::source::{ArtifactSource, SourceError};
use crate::formats::cosign_v2::{Descriptor, Manifest};
use crate::policy::judge::{self, Target};
use crate::policy::{CompiledPolicy, NoMatch, Rule};
use crate::verdict::{Outcome, Verdict, subject};

/// Why verification could not reach a verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The registry failed while signatures were being looked up; this is
    /// not "unsigned" and must not be treated as such.
    #[error(
        "cannot verify {}: registry error while fetching signatures: {source}",
        subject(image, digest)
    )]
    Registry {
        /// The image as written.
        image: String,
        /// The digest being verified.
        digest: Digest,
        /// The registry failure.
        source: SourceError,
    },
}

/// Verifies digests through an [`ArtifactSource`], caching verdicts.
#[derive(Debug)]
pub struct Verifier<S> {
    source: S,
    cache: VerdictCache,
}

impl<S: ArtifactSource> Verifier<S> {
    /// A verifier reading through `source` with the default cache.
    pub fn new(source: S) -> Self {
        Self::with_cache(source, VerdictCache::default())
    }

    /// A verifier with a custom cache.
    pub fn with_cache(source: S, cache: VerdictCache) -> Self {
        Self { source, cache }
    }

    /// The artifact source.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// Verifies `digest` (the digest that will be pinned) of `image` against
    /// `policy`. Registry failures are errors, never an "unsigned" verdict.
    pub async fn verify(
        &self,
        policy: &CompiledPolicy,
        image: &ImageReference,
        digest: &Digest,
    ) -> Result<Verdict, VerifyError> {
        let name = image.name();
        if let Some(v) = self.cache.get(digest, &name, policy.version()) {
            return Ok(v.for_image(image, digest));
        }
        let verdict = judge_uncached(&self.source, policy, image, digest).await?;
        self.cache.put(digest, &name, policy.version(), &verdict);
        Ok(verdict.for_image(image, digest))
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Verifies without the cache; see [`Verifier::verify`].
pub async fn verify_uncached<S: ArtifactSource>(
    source: &S,
    policy: &CompiledPolicy,
    image: &ImageReference,
    digest: &Digest,
) -> Result<Verdict, VerifyError> {
    let verdict = judge_uncached(source, policy, image, digest).await?;
    Ok(verdict.for_image(image, digest))
}

/// Like [`verify_uncached`], with a reason that does not name the image as written, so
/// one verdict can be cached for every spelling of the image and told to each request
/// in its own with [`Verdict::for_image`].
///
/// Each artifact is asked of `source` once, however many signatures and platforms need it.
pub async fn judge_uncached<S: ArtifactSource>(
    source: &S,
    policy: &CompiledPolicy,
    image: &ImageReference,
    digest: &Digest,
) -> Result<Verdict, VerifyError> {
    judge(&FetchOnce::new(source), policy, image, digest).await
}

/// See [`judge_uncached`]; `source` shares its answers.
async fn judge<S: ArtifactSource>(
    source: &FetchOnce<S>,
    policy: &CompiledPolicy,
    image: &ImageReference,
    digest: &Digest,
) -> Result<Verdict, VerifyError> {
    let name = image.name();
    let registry_error = |e: SourceError| VerifyError::Registry {
        image: image.as_written().to_owned(),
        digest: digest.clone(),
        source: e,
    };
    let Some(rule) = policy.rule_for(&name) else {
        let (outcome, reason) = match policy.no_match() {
            NoMatch::Allow => (Outcome::NoRuleMatchedAllowed, None),
            NoMatch::Warn => (
                Outcome::NoRuleMatchedWarn,
                Some(format!(
                    "no verification rule matches {name}; admitted without verification"
                )),
            ),
            NoMatch::Deny => (
                Outcome::NoRuleMatchedDenied,
                Some(format!(
                    "no verification rule matches {name} and unmatched images are denied"
                )),
            ),
        };
        return Ok(Verdict {
            outcome,
            rule: String::new(),
            signers: Vec::new(),
            attestations: Vec::new(),
            reason,
        });
    };
    // A rule that accepts platform signatures reads the index beside the discovery, so
    // the platforms can be looked up as soon as the index itself turns out unsigned.
    let (found, index) = if rule.accept_platform_signatures {
        let (found, index) = futures::join!(
            discover::discover(source, image, digest),
            read_index(source, image, digest)
        );
        (found, Some(index))
    } else {
        (discover::discover(source, image, digest).await, None)
    };
    let found = found.map_err(registry_error)?;
    let mut verdict = evaluate(rule, policy, &name, digest, &found);
    if verdict.outcome == Outcome::Failed
        && let Some(index) = index
    {
        let index = index.map_err(registry_error)?;
        match platform_verdict(source, policy, rule, image, index)
            .await
            .map_err(registry_error)?
        {
            PlatformVerdict::NotAnIndex => {}
            PlatformVerdict::Verified(v) => verdict = v,
            PlatformVerdict::Failed(why) => {
                let reason = verdict.reason.take().unwrap_or_default();
                verdict.reason = Some(format!("{reason}; and per platform: {why}"));
            }
        }
    }
    Ok(verdict)
}

/// Applies a rule to what was found for one digest.
fn evaluate(
    rule: &Rule,
    policy: &CompiledPolicy,
    name: &str,
    digest: &Digest,
    discovery: &Discovery,
) -> Verdict {
    let target = Target {
        name,
        digest,
        equivalents: &policy.equivalent_repositories,
        now: now(),
    };
    let mut signers = Vec::new();
    let mut problems = Vec::new();
    if let Some(set) = &rule.signatures {
        match judge::signatures(set, &discovery.found.signatures, &target) {
            Ok(s) => signers = s,
            Err(e) => problems.push(format!("signatures: {e}")),
        }
    }
    let mut attestations = Vec::new();
    for req in &rule.attestations {
        match judge::attestation(req, &discovery.found.attestations, &target) {
            Ok(s) => {
                if !attestations.contains(&req.predicate_type) {
                    attestations.push(req.predicate_type.clone());
                }
                for signer in s {
                    if !signers.contains(&signer) {
                        signers.push(signer);
                    }
                }
            }
            Err(e) => problems.push(e),
        }
    }
    if problems.is_empty() {
        Verdict::verified(rule.name(), signers, attestations)
    } else {
        if !discovery.notes.is_empty() {
            problems.push(format!("skipped artifacts: {}", discovery.notes.join("; ")));
        }
        Verdict::failed(rule.name(), problems.join("; "))
    }
}

const INDEX_MEDIA_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// What verifying an index through its platform manifests gave.
enum PlatformVerdict {
    /// The digest is not an image index.
    NotAnIndex,
    /// Every runnable platform verified.
    Verified(Verdict),
    /// A platform failed, or none is runnable; why.
    Failed(String),
}

/// Reads `digest` as an image index; `None` when it is not one.
async fn read_index<S: ArtifactSource>(
    source: &S,
    image: &ImageReference,
    digest: &Digest,
) -> Result<Option<Manifest>, SourceError> {
    let Some(fetched) = source.manifest(image, &digest.to_string()).await? else {
        return Ok(None);
    };
    let Ok(index) = Manifest::parse(&fetched.bytes) else {
        return Ok(None);
    };
    let is_index = INDEX_MEDIA_TYPES.contains(&fetched.media_type.as_str())
        || index
            .media_type
            .as_deref()
            .is_some_and(|m| INDEX_MEDIA_TYPES.contains(&m));
    Ok(is_index.then_some(index))
}

/// A build attestation stored as an index entry (BuildKit): no platform runs
/// it. Both marks are required: an entry that names a real platform is
/// verified whatever it is annotated with.
fn is_build_attestation(entry: &Descriptor) -> bool {
    let annotated = entry
        .annotations
        .get("vnd.docker.reference.type")
        .is_some_and(|t| t == "attestation-manifest");
    let unknown = entry
        .platform
        .as_ref()
        .is_some_and(|p| p.os == "unknown" && p.architecture == "unknown");
    annotated && unknown
}

/// When the digest is an index (`index` is `Some`), verifies every runnable platform
/// manifest instead: the index passes only when each of them verifies, and at least one
/// exists. The platforms are looked up at once and judged in the index's order.
async fn platform_verdict<S: ArtifactSource>(
    source: &FetchOnce<S>,
    policy: &CompiledPolicy,
    rule: &Rule,
    image: &ImageReference,
    index: Option<Manifest>,
) -> Result<PlatformVerdict, SourceError> {
    let Some(index) = index else {
        return Ok(PlatformVerdict::NotAnIndex);
    };
    let name = image.name();
    let children: Vec<Result<Digest, String>> = index
        .manifests
        .iter()
        .filter(|c| !is_build_attestation(c))
        .map(|c| {
            c.digest
                .parse::<Digest>()
                .map_err(|e| format!("index entry {:?} is not a digest: {e}", c.digest))
        })
        .collect();
    let found = join_all(children.iter().map(|child| async move {
        match child {
            Ok(d) => discover::discover(source, image, d).await,
            Err(_) => Ok(Discovery::default()),
        }
    }))
    .await;
    let mut signers: Vec<String> = Vec::new();
    let mut attestations: Vec<String> = Vec::new();
    let mut platforms = 0;
    for (child, found) in children.iter().zip(found) {
        let child_digest = match child {
            Ok(d) => d,
            Err(e) => return Ok(PlatformVerdict::Failed(e.clone())),
        };
        let v = evaluate(rule, policy, &name, child_digest, &found?);
        if v.outcome != Outcome::Verified {
            let why = v.reason.unwrap_or_default();
            return Ok(PlatformVerdict::Failed(format!(
                "platform manifest {child_digest}: {why}"
            )));
        }
        platforms += 1;
        for s in v.signers {
            if !signers.contains(&s) {
                signers.push(s);
            }
        }
        for a in v.attestations {
            if !attestations.contains(&a) {
                attestations.push(a);
            }
        }
    }
    if platforms == 0 {
        return Ok(PlatformVerdict::Failed(
            "the index lists no runnable platform manifest to verify".into(),
        ));
    }
    Ok(PlatformVerdict::Verified(Verdict::verified(
        rule.name(),
        signers,
        attestations,
    )))
}
