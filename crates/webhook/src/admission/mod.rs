//! AdmissionReview in, AdmissionReview out: pin every image, record it, apply the namespace's mode.

pub(crate) mod fields;
mod patch;
pub mod record;
mod review;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use json_patch::{Patch, PatchOperation};
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::{DynamicObject, Status};
use serde_json::Value;
use tagpin_resolver::{Digest, ImageReference, Keychain};
use tagpin_verifier::{Outcome as VerdictOutcome, Verdict};
use tokio::time::Instant;

use crate::config::{Config, MODE_LABEL, Mode, ModeDecision, PinnedKind};
use crate::credentials::ClusterState;
use crate::resolving::{ImageResolver, ResolveFailure};
use crate::verification::ImageVerifier;
use fields::{FieldSet, ImageField, image_fields, pull_identity};
use record::{IMAGES_AUDIT_KEY, ImageRecord, NOT_VERIFIED, VERIFY_ERROR};
pub use review::{encode_review, parse_review};

/// How one admission request ended, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Not tagpin's business: other kind, operation, subresource, or mode `off`.
    Skipped,
    /// Looked at, nothing to change.
    Unchanged,
    /// Admitted with a patch.
    Patched,
    /// Admitted in warn mode with at least one image left unpinned.
    Warned,
    /// Denied in enforce mode.
    Denied,
    /// Answered without looking at its images because every admission slot was busy:
    /// denied in enforce mode, admitted with a warning in warn mode.
    Overloaded,
}

impl Outcome {
    /// The outcome's metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Skipped => "skipped",
            Self::Unchanged => "unchanged",
            Self::Patched => "patched",
            Self::Warned => "warned",
            Self::Denied => "denied",
            Self::Overloaded => "overloaded",
        }
    }
}

/// The answer to one admission request.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The response to send.
    pub response: AdmissionResponse,
    /// How it ended.
    pub outcome: Outcome,
    /// The kind of the object, for metrics (`other` for kinds tagpin does not pin).
    pub kind: &'static str,
    /// The verdict of each image field looked at, for metrics.
    pub verdicts: Vec<String>,
}

/// Why a request body is not an AdmissionReview tagpin can answer.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The body is not JSON of an AdmissionReview.
    #[error("request body is not a valid admission.k8s.io/v1 AdmissionReview: {0}")]
    Malformed(String),
    /// The AdmissionReview carries no request.
    #[error("the AdmissionReview has no request to answer")]
    NoRequest,
    /// Another API version.
    #[error("unsupported AdmissionReview apiVersion {0:?}; tagpin answers admission.k8s.io/v1")]
    Version(String),
    /// Another kind of object than an AdmissionReview.
    #[error("expected kind AdmissionReview, not {0:?}")]
    Kind(String),
}

/// Answers admission requests.
pub struct Admitter {
    config: Arc<Config>,
    resolver: Arc<dyn ImageResolver>,
    cluster: Arc<dyn ClusterState>,
    verifier: Option<Arc<dyn ImageVerifier>>,
}

/// What tagpin is going to do with one request it does not leave alone.
struct Plan {
    kind: PinnedKind,
    kind_label: &'static str,
    set: FieldSet,
    namespace: String,
    mode: ModeDecision,
    object: Value,
}

/// What happened to one image field.
enum FieldResult {
    /// Not a valid reference.
    Invalid(String),
    /// Already carried a digest.
    Digested(ImageReference),
    /// Resolved now, to this digest at this time.
    Resolved(ImageReference, Digest, SystemTime),
    /// Could not be resolved.
    Failed(ImageReference, String),
}

impl Admitter {
    /// An admitter with its policy, resolver and view of the cluster.
    pub fn new(
        config: Arc<Config>,
        resolver: Arc<dyn ImageResolver>,
        cluster: Arc<dyn ClusterState>,
    ) -> Self {
        Self {
            config,
            resolver,
            cluster,
            verifier: None,
        }
    }

    /// Verifies every pinned digest with `verifier` before admitting it.
    #[must_use]
    pub fn with_verifier(mut self, verifier: Arc<dyn ImageVerifier>) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// The internal admission deadline of each request.
    pub fn deadline(&self) -> std::time::Duration {
        self.config.deadline()
    }

    /// Parses an AdmissionReview body and answers it with the response AdmissionReview.
    pub async fn review(
        &self,
        body: &[u8],
    ) -> Result<(AdmissionReview<DynamicObject>, Decision), ReviewError> {
        let request = parse_review(body)?;
        let decision = self.answer(request, Instant::now()).await;
        Ok((decision.response.clone().into_review(), decision))
    }

    /// Answers `req`, which arrived at `arrived`: the deadline counts from its arrival, so
    /// time spent waiting for a slot is not added to it. The request is taken by value so
    /// that its object is read in place rather than copied.
    pub async fn answer(&self, req: AdmissionRequest<DynamicObject>, arrived: Instant) -> Decision {
        // Every log line of this request, the resolver's included, carries its uid.
        let span = tracing::info_span!("admission", uid = %req.uid);
        tracing::Instrument::instrument(self.admit_since(req, arrived), span).await
    }

    /// The answer when tagpin has no capacity left for `req`: requests it would not touch
    /// are admitted as usual, the rest are denied in enforce mode and admitted with a
    /// warning in warn mode, never queued past their deadline.
    pub fn overloaded(&self, mut req: AdmissionRequest<DynamicObject>) -> Decision {
        let plan = match self.plan(&mut req) {
            Ok(plan) => plan,
            Err(decision) => return *decision,
        };
        let req = &req;
        let cause =
            "tagpin is overloaded: every admission slot (server.maxConcurrentReviews) is busy";
        let mut audit = HashMap::new();
        let mode = plan.mode.mode;
        audit.insert("mode".to_owned(), mode.as_str().to_owned());
        audit.insert("overloaded".to_owned(), "true".to_owned());
        if mode == Mode::Enforce {
            let message = format!(
                "tagpin denied this {}: {cause}; retry shortly",
                plan.kind.as_str()
            );
            let mut decision = self.deny(req, plan.kind_label, mode, message, audit);
            decision.outcome = Outcome::Overloaded;
            return decision;
        }
        tracing::warn!(uid = %req.uid, kind = plan.kind_label, mode = mode.as_str(), "admitted unpinned: overloaded");
        let mut response = AdmissionResponse::from(req);
        response.audit_annotations = audit;
        response.warnings = Some(vec![format!(
            "tagpin admitted this {} without pinning its images ({} mode): {cause}",
            plan.kind.as_str(),
            mode.as_str()
        )]);
        Decision {
            response,
            outcome: Outcome::Overloaded,
            kind: plan.kind_label,
            verdicts: Vec::new(),
        }
    }

    /// Answers one admission request.
    pub async fn admit(&self, req: AdmissionRequest<DynamicObject>) -> Decision {
        self.admit_since(req, Instant::now()).await
    }

    /// What tagpin does with `req`, or the final answer when it leaves it alone. The
    /// object moves out of `req` into the plan.
    fn plan(&self, req: &mut AdmissionRequest<DynamicObject>) -> Result<Plan, Box<Decision>> {
        let kind = PinnedKind::from_group_kind(&req.kind.group, &req.kind.kind);
        let kind_label = kind.map(PinnedKind::as_str).unwrap_or("other");
        let skip = |req: &AdmissionRequest<DynamicObject>, why: &str| {
            tracing::debug!(uid = %req.uid, reason = why, "admitted untouched");
            Box::new(Decision {
                response: AdmissionResponse::from(req),
                outcome: Outcome::Skipped,
                kind: kind_label,
                verdicts: Vec::new(),
            })
        };
        let Some(kind) = kind.filter(|k| self.config.pins(*k)) else {
            return Err(skip(req, "kind not pinned"));
        };
        let set = match (&req.operation, kind, req.sub_resource.as_deref()) {
            (Operation::Create, _, None | Some("")) => FieldSet::All,
            (Operation::Update, PinnedKind::Pod, Some("ephemeralcontainers")) => {
                FieldSet::EphemeralOnly
            }
            // Pod specs are immutable apart from ephemeral containers and images, and pods
            // carry what their creation pinned; other pod updates (labels, finalizers) must
            // never be blocked by a registry outage.
            (Operation::Update, PinnedKind::Pod, _) => return Err(skip(req, "pod update")),
            (Operation::Update, _, None | Some("")) => FieldSet::All,
            (Operation::Delete | Operation::Connect, _, _) => {
                return Err(skip(req, "delete or connect"));
            }
            _ => return Err(skip(req, "subresource")),
        };
        let namespace = req.namespace.clone().unwrap_or_default();
        let label = self.cluster.namespace_label(&namespace, MODE_LABEL);
        let mode = self.config.mode_for(&namespace, label.as_deref());
        if mode.mode == Mode::Off {
            return Err(skip(req, mode.source));
        }
        let Some(object) = req.object.take() else {
            return Err(skip(req, "no object"));
        };
        let object = match review::into_value(object) {
            Ok(v) => v,
            Err(e) => {
                return Err(Box::new(self.deny(
                    req,
                    kind_label,
                    mode.mode,
                    format!("cannot read the object: {e}"),
                    HashMap::new(),
                )));
            }
        };
        if let Some(owner) = self.pinned_controller(kind, &object) {
            // The owner's template is pinned; changing the child's template would make it
            // differ from its owner's and the owner's controller would replace it forever.
            return Err(skip(req, &format!("controlled by a {owner}")));
        }
        Ok(Plan {
            kind,
            kind_label,
            set,
            namespace,
            mode,
            object,
        })
    }

    /// Answers `req` with a deadline counted from `started`.
    async fn admit_since(
        &self,
        mut req: AdmissionRequest<DynamicObject>,
        started: Instant,
    ) -> Decision {
        let Plan {
            kind,
            kind_label,
            set,
            namespace,
            mode,
            object,
        } = match self.plan(&mut req) {
            Ok(plan) => plan,
            Err(decision) => return *decision,
        };
        let req = &req;
        let deadline = started + self.config.deadline();
        let fields = image_fields(kind, &object, set);
        let (secrets, service_account) = pull_identity(kind, &object);
        // Built once per request and only from this namespace's secrets.
        let keychain = if fields.is_empty() {
            Keychain::anonymous()
        } else {
            self.cluster
                .keychain(&namespace, &secrets, &service_account)
        };
        let results = self.resolve_fields(&fields, &keychain, deadline).await;
        let verdicts = self.verify_fields(&results, &keychain, deadline).await;

        let incoming = patch::incoming_tagpin_annotations(&object);
        let previous: Vec<ImageRecord> = incoming
            .iter()
            .filter(|(k, _)| k == record::IMAGES_ANNOTATION)
            .filter_map(|(_, v)| v.as_str())
            .flat_map(record::from_json)
            .collect();
        // What tagpin recorded on the stored object: a re-applied tag that still resolves to
        // the same digest keeps its resolution time, so re-syncs do not rewrite the annotation.
        let stored: Vec<ImageRecord> = match req.operation {
            Operation::Update => req
                .old_object
                .as_ref()
                .and_then(|old| old.metadata.annotations.as_ref())
                .and_then(|a| a.get(record::IMAGES_ANNOTATION))
                .map(|v| record::from_json(v))
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let mut records = Vec::with_capacity(fields.len());
        let mut ops: Vec<PatchOperation> = Vec::new();
        let mut problems: Vec<String> = Vec::new();
        let mut notices: Vec<String> = Vec::new();
        let mut resolved_any = false;
        for ((field, result), verdict) in fields.iter().zip(results).zip(verdicts) {
            let path = field.pointer.to_string();
            let mut rec = ImageRecord {
                path: path.clone(),
                original: field.written.clone(),
                image: None,
                digest: None,
                resolved_at: None,
                verdict: NOT_VERIFIED.to_owned(),
                rule: None,
                signers: Vec::new(),
                attestations: Vec::new(),
                error: None,
            };
            let mut verification_problem = None;
            match verdict {
                None => {}
                Some(Ok(v)) => {
                    rec.verdict = v.outcome.as_str().to_owned();
                    rec.rule = Some(v.rule.clone()).filter(|r| !r.is_empty());
                    rec.signers = v.signers.clone();
                    rec.attestations = v.attestations.clone();
                    let reason = v
                        .reason
                        .clone()
                        .unwrap_or_else(|| format!("{} failed verification", field.written));
                    if !v.outcome.admits() {
                        verification_problem = Some(reason);
                    } else if v.outcome == VerdictOutcome::NoRuleMatchedWarn {
                        notices.push(format!("{path}: {reason}"));
                    }
                }
                Some(Err(e)) => {
                    rec.verdict = VERIFY_ERROR.to_owned();
                    verification_problem = Some(e);
                }
            }
            if let Some(reason) = verification_problem {
                problems.push(format!("{path}: {reason}"));
                rec.error = Some(reason);
            }
            match result {
                FieldResult::Invalid(error) => {
                    problems.push(format!("{path}: {error}"));
                    rec.error = Some(error);
                }
                FieldResult::Digested(reference) => {
                    let digest = reference
                        .digest()
                        .map(ToString::to_string)
                        .unwrap_or_default();
                    rec.image = Some(reference.normalized());
                    if let Some(prev) = previous
                        .iter()
                        .find(|p| ImageRecord::is_earlier_pin_of(p, &path, &field.written, &digest))
                    {
                        rec.original = prev.original.clone();
                        rec.image = prev.image.clone();
                        rec.resolved_at = prev.resolved_at.clone();
                    }
                    rec.digest = Some(digest);
                }
                FieldResult::Resolved(reference, digest, resolved_at) => {
                    let pinned = reference.pinned(&digest);
                    rec.image = Some(reference.normalized());
                    let digest = digest.to_string();
                    rec.digest = Some(digest.clone());
                    rec.resolved_at = stored
                        .iter()
                        .find(|p| p.is_same_resolution(&path, &field.written, &digest))
                        .and_then(|p| p.resolved_at.clone())
                        .or_else(|| Some(record::rfc3339(resolved_at)));
                    ops.push(patch::replace_image(field.pointer.clone(), &pinned));
                    resolved_any = true;
                }
                FieldResult::Failed(reference, error) => {
                    rec.image = Some(reference.normalized());
                    problems.push(format!("{path}: {error}"));
                    rec.error = Some(error);
                }
            }
            records.push(rec);
        }

        let records_json = record::to_json(&records);
        let mut audit = HashMap::new();
        if !records.is_empty() {
            audit.insert(IMAGES_AUDIT_KEY.to_owned(), records_json.clone());
        }
        audit.insert("mode".to_owned(), mode.mode.as_str().to_owned());

        if mode.mode == Mode::Enforce && !problems.is_empty() {
            let message = format!(
                "tagpin denied this {}: {} image(s) could not be pinned or verified: {}",
                kind.as_str(),
                problems.len(),
                problems.join("; ")
            );
            let mut decision = self.deny(req, kind_label, mode.mode, message, audit);
            decision.verdicts = records.iter().map(|r| r.verdict.clone()).collect();
            return decision;
        }

        // The ephemeral-containers subresource only accepts changes to ephemeral containers,
        // so the annotation is written on creation only.
        if set == FieldSet::All {
            let write = resolved_any || !problems.is_empty() || !incoming.is_empty();
            let desired = (write && !records.is_empty()).then_some(records_json.as_str());
            ops.extend(patch::annotation_ops(&object, desired));
        }

        let mut response = AdmissionResponse::from(req);
        response.audit_annotations = audit;
        let mut warnings: Vec<String> = problems
            .iter()
            .map(|p| {
                format!(
                    "tagpin admitted an image it could not pin or verify ({} mode): {p}",
                    mode.mode.as_str()
                )
            })
            .collect();
        warnings.extend(notices.iter().map(|n| format!("tagpin: {n}")));
        let outcome = if !warnings.is_empty() {
            response.warnings = Some(warnings);
            Outcome::Warned
        } else if ops.is_empty() {
            Outcome::Unchanged
        } else {
            Outcome::Patched
        };
        if !ops.is_empty() {
            let audit = response.audit_annotations.clone();
            response = match response.with_patch(Patch(ops)) {
                Ok(r) => r,
                Err(e) => {
                    return self.deny(
                        req,
                        kind_label,
                        Mode::Enforce,
                        format!("cannot encode the patch: {e}"),
                        audit,
                    );
                }
            };
        }
        tracing::info!(
            uid = %req.uid,
            kind = kind.as_str(),
            namespace = %namespace,
            name = %req.name,
            mode = mode.mode.as_str(),
            mode_source = mode.source,
            outcome = outcome.as_str(),
            dry_run = req.dry_run,
            images = %records_json,
            "admitted"
        );
        Decision {
            response,
            outcome,
            kind: kind_label,
            verdicts: records.into_iter().map(|r| r.verdict).collect(),
        }
    }

    fn deny(
        &self,
        req: &AdmissionRequest<DynamicObject>,
        kind: &'static str,
        mode: Mode,
        message: String,
        audit: HashMap<String, String>,
    ) -> Decision {
        tracing::warn!(uid = %req.uid, kind, mode = mode.as_str(), dry_run = req.dry_run, %message, "denied");
        let mut response = AdmissionResponse::from(req).deny(&message);
        response.result = Status::failure(&message, "Forbidden").with_code(403);
        response.audit_annotations = audit;
        Decision {
            response,
            outcome: Outcome::Denied,
            kind,
            verdicts: Vec::new(),
        }
    }

    /// The kind of the object's controller, when tagpin pins that kind's template itself.
    fn pinned_controller(&self, kind: PinnedKind, object: &Value) -> Option<&'static str> {
        fields::pinned_controller(&self.config, kind, object)
    }

    /// Resolves each distinct unpinned image once, concurrently, within the deadline.
    async fn resolve_fields(
        &self,
        fields: &[ImageField],
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
        let mut outcomes: HashMap<String, Result<(Digest, SystemTime), String>> = HashMap::new();
        if !pending.is_empty() {
            let budget = self.config.deadline_seconds;
            let lookups = pending.into_iter().map(|(key, reference)| async move {
                let result =
                    tokio::time::timeout_at(deadline, self.resolver.resolve(reference, keychain))
                        .await;
                let result = match result {
                    Ok(Ok(resolution)) => Ok((resolution.digest, resolution.resolved_at)),
                    Ok(Err(ResolveFailure { message, .. })) => Err(message),
                    Err(_) => Err(format!(
                        "{}: not resolved within tagpin's {budget}s admission deadline",
                        reference.as_written()
                    )),
                };
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
                    Some(Ok((digest, at))) => FieldResult::Resolved(reference, digest.clone(), *at),
                    Some(Err(e)) => FieldResult::Failed(reference, e.clone()),
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
        let pinned = |r: &FieldResult| -> Option<(ImageReference, Digest)> {
            match r {
                FieldResult::Digested(reference) => {
                    Some((reference.clone(), reference.digest()?.clone()))
                }
                FieldResult::Resolved(reference, digest, _) => {
                    Some((reference.clone(), digest.clone()))
                }
                FieldResult::Invalid(_) | FieldResult::Failed(..) => None,
            }
        };
        let mut distinct: BTreeMap<(String, String), (ImageReference, Digest)> = BTreeMap::new();
        for (reference, digest) in results.iter().filter_map(pinned) {
            distinct
                .entry((reference.name(), digest.to_string()))
                .or_insert((reference, digest));
        }
        let budget = self.config.deadline_seconds;
        let checks = distinct.into_iter().map(|(key, (reference, digest))| {
            let verifier = verifier.clone();
            async move {
                let result = tokio::time::timeout_at(
                    deadline,
                    verifier.verify(&reference, &digest, keychain),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(format!(
                        "{}@{digest}: not verified within tagpin's {budget}s admission deadline",
                        reference.as_written()
                    ))
                });
                (key, result)
            }
        });
        let verdicts: HashMap<(String, String), Result<Verdict, String>> =
            futures::future::join_all(checks)
                .await
                .into_iter()
                .collect();
        results
            .iter()
            .map(|r| {
                let (reference, digest) = pinned(r)?;
                verdicts
                    .get(&(reference.name(), digest.to_string()))
                    .cloned()
            })
            .collect()
    }
}
