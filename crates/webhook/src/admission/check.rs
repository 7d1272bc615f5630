//! The second step: look up and verify the image fields a request changes, each distinct
//! image once, concurrently, within the request's deadline.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use tagpin_resolver::{Digest, ImageReference, Keychain};
use tagpin_verifier::Verdict;
use tokio::time::Instant;

use super::Admitter;
use super::changes::Change;
use super::fields::{ImageField, pull_identity};
use super::plan::Plan;
use super::record;
use crate::resolving::{ResolveFailure, respell};

/// What happened to one image field.
pub(super) enum FieldResult {
    /// Not a valid reference.
    Invalid(String),
    /// Already carried a digest.
    Digested(ImageReference),
    /// Resolved now, to this digest at this time, by these registry endpoints.
    Resolved(ImageReference, Digest, SystemTime, Vec<String>),
    /// Could not be resolved.
    Failed(ImageReference, String),
}

/// What looking up and verifying one changed field found.
pub(super) struct Checked {
    /// Its resolution.
    pub result: FieldResult,
    /// Its verification: `None` without a verifier or without a digest.
    pub verdict: Option<Result<Verdict, String>>,
}

impl Admitter {
    /// Looks up and verifies the fields `plan` marks as changed; `None` for every other.
    pub(super) async fn check(&self, plan: &Plan, deadline: Instant) -> Vec<Option<Checked>> {
        if !plan.looks_anything_up() {
            return plan.unchecked();
        }
        let changed: Vec<&ImageField> = plan
            .fields
            .iter()
            .zip(&plan.changes)
            .filter(|(_, c)| **c == Change::Changed)
            .map(|(f, _)| f)
            .collect();
        let (secrets, service_account) = pull_identity(plan.kind, &plan.object);
        // Built once per request and only from this namespace's secrets.
        let keychain = self
            .cluster
            .keychain(&plan.namespace, &secrets, &service_account);
        let results = self.resolve_fields(&changed, &keychain, deadline).await;
        let verdicts = self.verify_fields(&results, &keychain, deadline).await;
        let mut checked = results
            .into_iter()
            .zip(verdicts)
            .map(|(result, verdict)| Checked { result, verdict });
        plan.changes
            .iter()
            .map(|c| match c {
                Change::Changed => checked.next(),
                _ => None,
            })
            .collect()
    }

    /// Resolves each distinct unpinned image once, concurrently, within the deadline.
    async fn resolve_fields(
        &self,
        fields: &[&ImageField],
        keychain: &Keychain,
        deadline: Instant,
    ) -> Vec<FieldResult> {
        let parsed: Vec<Result<ImageReference, String>> = fields
            .iter()
            .map(|f| ImageReference::parse(&f.written).map_err(|e| e.to_string()))
            .collect();
        let mut pending: BTreeMap<String, &ImageReference> = BTreeMap::new();
        for reference in parsed.iter().flatten() {
            if reference.digest().is_none() {
                pending.entry(reference.normalized()).or_insert(reference);
            }
        }
        // A failure keeps the spelling it was found for, to be told in each field's own.
        type Outcome = Result<(Digest, SystemTime, Vec<String>), (String, String)>;
        let mut outcomes: HashMap<String, Outcome> = HashMap::new();
        if !pending.is_empty() {
            let budget = self.config.deadline_seconds;
            let lookups = pending.into_iter().map(|(key, reference)| async move {
                let result =
                    tokio::time::timeout_at(deadline, self.resolver.resolve(reference, keychain))
                        .await;
                let result = match result {
                    Ok(Ok(resolution)) => Ok((
                        resolution.digest.clone(),
                        resolution.resolved_at,
                        record::resolved_by(&resolution),
                    )),
                    Ok(Err(ResolveFailure { message, .. })) => Err(message),
                    Err(_) => Err(format!(
                        "{}: not resolved within tagpin's {budget}s admission deadline",
                        reference.as_written()
                    )),
                }
                .map_err(|message| (reference.as_written().to_owned(), message));
                (key, result)
            });
            outcomes.extend(futures::future::join_all(lookups).await);
        }
        parsed
            .into_iter()
            .map(|p| match p {
                Err(e) => FieldResult::Invalid(e),
                Ok(reference) if reference.digest().is_some() => FieldResult::Digested(reference),
                Ok(reference) => match outcomes.get(&reference.normalized()) {
                    Some(Ok((digest, at, by))) => {
                        FieldResult::Resolved(reference, digest.clone(), *at, by.clone())
                    }
                    Some(Err((found_for, e))) => {
                        let e = respell(e, found_for, reference.as_written());
                        FieldResult::Failed(reference, e)
                    }
                    None => FieldResult::Failed(reference, "not resolved".to_owned()),
                },
            })
            .collect()
    }

    /// Verifies each distinct pinned digest once, concurrently, within the deadline;
    /// `None` per field when no verifier is configured or the field has no digest.
    async fn verify_fields(
        &self,
        results: &[FieldResult],
        keychain: &Keychain,
        deadline: Instant,
    ) -> Vec<Option<Result<Verdict, String>>> {
        let Some(verifier) = &self.verifier else {
            return results.iter().map(|_| None).collect();
        };
        // By spelling, so a reason quotes what each field wrote; spellings of one image
        // are verified one after another, so the second is told the first's cached verdict
        // instead of asking the registry for the same signatures again.
        type Spellings = BTreeMap<String, ImageReference>;
        let mut images: BTreeMap<(String, String), (Digest, Spellings)> = BTreeMap::new();
        for (reference, digest) in results.iter().filter_map(pinned) {
            images
                .entry((reference.name(), digest.to_string()))
                .or_insert_with(|| (digest, Spellings::new()))
                .1
                .entry(reference.as_written().to_owned())
                .or_insert(reference);
        }
        let budget = self.config.deadline_seconds;
        let checks = images.into_values().map(|(digest, spellings)| {
            let verifier = verifier.clone();
            async move {
                let mut told = Vec::new();
                for (written, reference) in spellings {
                    let result = tokio::time::timeout_at(
                        deadline,
                        verifier.verify(&reference, &digest, keychain),
                    )
                    .await
                    .unwrap_or_else(|_| {
                        Err(format!(
                            "{}: not verified within tagpin's {budget}s admission deadline",
                            reference.pinned(&digest)
                        ))
                    });
                    told.push(((written, digest.to_string()), result));
                }
                told
            }
        });
        let verdicts: HashMap<(String, String), Result<Verdict, String>> =
            futures::future::join_all(checks)
                .await
                .into_iter()
                .flatten()
                .collect();
        results
            .iter()
            .map(|r| {
                let (reference, digest) = pinned(r)?;
                verdicts
                    .get(&(reference.as_written().to_owned(), digest.to_string()))
                    .cloned()
            })
            .collect()
    }
}

/// The reference and digest a field is pinned to, when it is.
fn pinned(r: &FieldResult) -> Option<(ImageReference, Digest)> {
    match r {
        FieldResult::Digested(reference) => Some((reference.clone(), reference.digest()?.clone())),
        FieldResult::Resolved(reference, digest, ..) => Some((reference.clone(), digest.clone())),
        FieldResult::Invalid(_) | FieldResult::Failed(..) => None,
    }
}
