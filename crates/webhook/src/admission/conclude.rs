//! The last step: each field's record, the patch, and the response.

use std::collections::HashMap;

use json_patch::{Patch, PatchOperation};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse};
use serde_json::Value;
use tagpin_verifier::{Outcome as VerdictOutcome, Verdict};

use super::changes::Change;
use super::check::{Checked, FieldResult};
use super::fields::{FieldSet, ImageField};
use super::plan::{Plan, StoredRecord};
use super::record::{self, IMAGES_AUDIT_KEY, ImageRecord, NOT_VERIFIED, VERIFY_ERROR};
use super::{Admitter, Decision, Outcome, patch};
use crate::config::Mode;

/// What a request's image fields came to.
#[derive(Default)]
struct Findings {
    /// The record of every field that has one: fresh for changed fields, stored for kept ones.
    records: Vec<ImageRecord>,
    /// The verdict of each field looked at, for metrics.
    verdicts: Vec<String>,
    /// Pins and restored pins.
    image_ops: Vec<PatchOperation>,
    /// Why fields could not be pinned or verified.
    problems: Vec<String>,
    /// What to tell the writer about fields that were admitted.
    notices: Vec<String>,
    /// Whether some field was resolved now.
    resolved_any: bool,
}

impl Admitter {
    /// Answers the request `plan` was made for, given what `check` found.
    pub(super) fn conclude(
        &self,
        req: &AdmissionRequest<DynamicObject>,
        plan: Plan,
        checked: Vec<Option<Checked>>,
    ) -> Decision {
        let incoming = patch::incoming_tagpin_annotations(&plan.object);
        let findings = Findings::collect(&plan, checked, &incoming);
        let records_json = record::to_json(&findings.records);
        let mut audit = HashMap::new();
        if !findings.records.is_empty() {
            audit.insert(IMAGES_AUDIT_KEY.to_owned(), records_json.clone());
        }
        audit.insert("mode".to_owned(), plan.mode.mode.as_str().to_owned());
        if plan.mode.mode == Mode::Enforce && !findings.problems.is_empty() {
            let message = format!(
                "tagpin denied this {}: {} image(s) could not be pinned or verified: {}",
                plan.kind.as_str(),
                findings.problems.len(),
                findings.problems.join("; ")
            );
            let mut decision = self.deny(req, plan.kind_label, plan.mode.mode, message, audit);
            decision.verdicts = findings.verdicts;
            return decision;
        }
        let ops = findings.patch(&plan, !incoming.is_empty());
        self.respond(req, &plan, findings, ops, audit, &records_json)
    }

    /// The admitting response: the patch, warnings for what could not be pinned or verified.
    fn respond(
        &self,
        req: &AdmissionRequest<DynamicObject>,
        plan: &Plan,
        findings: Findings,
        ops: Vec<PatchOperation>,
        audit: HashMap<String, String>,
        records_json: &str,
    ) -> Decision {
        let mode = plan.mode.mode.as_str();
        let mut response = AdmissionResponse::from(req);
        response.audit_annotations = audit;
        let mut warnings: Vec<String> = findings
            .problems
            .iter()
            .map(|p| {
                format!("tagpin admitted an image it could not pin or verify ({mode} mode): {p}")
            })
            .collect();
        warnings.extend(findings.notices.iter().map(|n| format!("tagpin: {n}")));
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
                    let message = format!("cannot encode the patch: {e}");
                    return self.deny(req, plan.kind_label, Mode::Enforce, message, audit);
                }
            };
        }
        // At info only what changed something or warned (denials log in `deny`); unchanged
        // admissions are the bulk at warm rates, so they log at debug. Metrics count all.
        macro_rules! admitted {
            ($level:ident) => {
                tracing::$level!(
                    uid = %req.uid,
                    kind = plan.kind.as_str(),
                    namespace = %plan.namespace,
                    name = %req.name,
                    mode,
                    mode_source = plan.mode.source,
                    outcome = outcome.as_str(),
                    dry_run = req.dry_run,
                    images = %records_json,
                    "admitted"
                )
            };
        }
        if outcome == Outcome::Unchanged {
            admitted!(debug);
        } else {
            admitted!(info);
        }
        Decision {
            response,
            outcome,
            kind: plan.kind_label,
            verdicts: findings.verdicts,
        }
    }
}

impl Findings {
    /// Records every field of `plan`: changed fields from what `checked` found, kept and
    /// restored ones from the stored record, frozen ones not at all.
    fn collect(plan: &Plan, checked: Vec<Option<Checked>>, incoming: &[(String, Value)]) -> Self {
        let previous: Vec<ImageRecord> = incoming
            .iter()
            .filter(|(k, _)| k == record::IMAGES_ANNOTATION)
            .filter_map(|(_, v)| v.as_str())
            .flat_map(record::from_json)
            .collect();
        let mut findings = Self::default();
        for ((field, change), checked) in plan.fields.iter().zip(&plan.changes).zip(checked) {
            let path = field.pointer.to_string();
            match (change, checked) {
                (Change::Changed, Some(checked)) => {
                    let rec = findings.checked(field, checked, &previous, &plan.stored);
                    findings.verdicts.push(rec.verdict.clone());
                    findings.records.push(rec);
                }
                (Change::Changed, None) => {
                    // Never admitted unchecked, whatever path led here.
                    findings.problems.push(format!("{path}: not looked up"));
                }
                (Change::Restored(stored), _) => {
                    let op = patch::replace_image(field.pointer.clone(), &stored.written);
                    findings.image_ops.push(op);
                    findings
                        .records
                        .extend(plan.stored.entry_for(stored, &path));
                }
                (Change::Kept(stored), _) => {
                    findings
                        .records
                        .extend(plan.stored.entry_for(stored, &path));
                }
                (Change::Frozen, _) => {}
            }
        }
        findings
    }

    /// The record of a changed field, noting its pin, problems and notices.
    fn checked(
        &mut self,
        field: &ImageField,
        checked: Checked,
        previous: &[ImageRecord],
        stored: &StoredRecord,
    ) -> ImageRecord {
        let path = field.pointer.to_string();
        let mut rec = ImageRecord {
            path: path.clone(),
            original: field.written.clone(),
            image: None,
            digest: None,
            resolved_at: None,
            resolved_by: Vec::new(),
            verdict: NOT_VERIFIED.to_owned(),
            rule: None,
            signers: Vec::new(),
            attestations: Vec::new(),
            error: None,
        };
        if let Some(reason) = self.verdict(&mut rec, field, checked.verdict) {
            self.problems.push(format!("{path}: {reason}"));
            rec.error = Some(reason);
        }
        match checked.result {
            FieldResult::Invalid(error) => {
                self.problems.push(format!("{path}: {error}"));
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
                    rec.resolved_by = prev.resolved_by.clone();
                }
                rec.digest = Some(digest);
            }
            FieldResult::Resolved(reference, digest, resolved_at, resolved_by) => {
                rec.resolved_by = resolved_by;
                let pinned = reference.pinned(&digest);
                rec.image = Some(reference.normalized());
                let digest = digest.to_string();
                // A re-pin to the digest already recorded keeps its resolution time.
                rec.resolved_at = stored
                    .records
                    .iter()
                    .find(|p| p.is_same_resolution(&path, &field.written, &digest))
                    .and_then(|p| p.resolved_at.clone())
                    .or_else(|| Some(record::rfc3339(resolved_at)));
                rec.digest = Some(digest);
                self.image_ops
                    .push(patch::replace_image(field.pointer.clone(), &pinned));
                self.resolved_any = true;
            }
            FieldResult::Failed(reference, error) => {
                rec.image = Some(reference.normalized());
                self.problems.push(format!("{path}: {error}"));
                rec.error = Some(error);
            }
        }
        rec
    }

    /// Writes `verdict` into `rec`; the reason it does not admit the image, if it does not.
    fn verdict(
        &mut self,
        rec: &mut ImageRecord,
        field: &ImageField,
        verdict: Option<Result<Verdict, String>>,
    ) -> Option<String> {
        match verdict? {
            Ok(v) => {
                rec.verdict = v.outcome.as_str().to_owned();
                rec.rule = Some(v.rule.clone()).filter(|r| !r.is_empty());
                rec.signers = v.signers;
                rec.attestations = v.attestations;
                let reason = v
                    .reason
                    .unwrap_or_else(|| format!("{} failed verification", field.written));
                if !v.outcome.admits() {
                    return Some(reason);
                }
                if v.outcome == VerdictOutcome::NoRuleMatchedWarn {
                    self.notices.push(format!("{}: {reason}", rec.path));
                }
                None
            }
            Err(e) => {
                rec.verdict = VERIFY_ERROR.to_owned();
                Some(e)
            }
        }
    }

    /// The patch: pins, restored pins, and the `tagpin.dev/images` annotation.
    fn patch(&self, plan: &Plan, incoming_annotations: bool) -> Vec<PatchOperation> {
        let mut ops = self.image_ops.clone();
        // The ephemeral-containers subresource only accepts changes to ephemeral containers,
        // so the annotation is written by the other requests only.
        if plan.set != FieldSet::EphemeralOnly {
            // Objects whose images all arrived with digests, with no record stored and
            // none written, get none: reinvocation and re-applies stay free of patches.
            let write = self.resolved_any
                || !self.problems.is_empty()
                || incoming_annotations
                || plan.stored.value.is_some();
            let desired = if write {
                plan.stored.value_for(&self.records)
            } else {
                None
            };
            ops.extend(patch::annotation_ops(&plan.object, desired.as_deref()));
        }
        ops
    }
}
