//! The first step of a request: leave it alone, or say which of its image fields to pin.
//!
//! Requests tagpin leaves alone still never carry a `tagpin.dev/` annotation tagpin did
//! not write: see [`Admitter::leave`].

use std::collections::HashMap;

use json_patch::Patch;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use serde_json::{Value, json};

use super::changes::{Change, Stored, classify};
use super::check::Checked;
use super::fields::{FieldSet, ImageField, image_fields};
use super::record::{self, ANNOTATION_PREFIX, IMAGES_ANNOTATION, ImageRecord};
use super::{Admitter, Decision, Outcome, patch, review};
use crate::config::{MODE_LABEL, Mode, ModeDecision, PinnedKind};

/// What tagpin is going to do with one request it does not leave alone.
pub(super) struct Plan {
    /// The kind of the object.
    pub kind: PinnedKind,
    /// Its metric label.
    pub kind_label: &'static str,
    /// The fields this request may change.
    pub set: FieldSet,
    /// The request's namespace.
    pub namespace: String,
    /// Its mode, and which setting decided it.
    pub mode: ModeDecision,
    /// The object as written.
    pub object: Value,
    /// Every image field of the object.
    pub fields: Vec<ImageField>,
    /// What the request does to each of `fields`.
    pub changes: Vec<Change>,
    /// tagpin's record on the stored object (UPDATE only).
    pub stored: StoredRecord,
}

impl Plan {
    /// True when some field needs a registry: it changed.
    pub fn looks_anything_up(&self) -> bool {
        self.changes.contains(&Change::Changed)
    }

    /// The check results of a plan that looks nothing up.
    pub fn unchecked(&self) -> Vec<Option<Checked>> {
        self.fields.iter().map(|_| None).collect()
    }
}

/// The `tagpin.dev/images` annotation of the stored object.
#[derive(Debug, Default)]
pub(super) struct StoredRecord {
    /// Its value as stored.
    pub value: Option<String>,
    /// Its entries (none when it does not parse).
    pub records: Vec<ImageRecord>,
}

impl StoredRecord {
    fn of(old: Option<&DynamicObject>) -> Self {
        let value = old
            .and_then(|o| o.metadata.annotations.as_ref())
            .and_then(|a| a.get(IMAGES_ANNOTATION))
            .cloned();
        let records = value.as_deref().map(record::from_json).unwrap_or_default();
        Self { value, records }
    }

    /// The stored entry of the field that keeps `stored`, now at `path`; none when the
    /// stored object has no entry that describes that image (see `ImageRecord::describes`).
    pub fn entry_for(&self, stored: &Stored, path: &str) -> Option<ImageRecord> {
        self.records
            .iter()
            .find(|r| r.describes(&stored.path, &stored.written))
            .map(|r| ImageRecord {
                path: path.to_owned(),
                ..r.clone()
            })
    }

    /// The annotation value that leaves `records` on the object: the stored text when they
    /// are what is stored (so unrelated updates never rewrite it), none when empty.
    pub fn value_for(&self, records: &[ImageRecord]) -> Option<String> {
        if records.is_empty() {
            return None;
        }
        match &self.value {
            Some(value) if self.records == records => Some(value.clone()),
            _ => Some(record::to_json(records)),
        }
    }
}

/// True when the request writes the object itself (not a subresource, not a deletion).
fn writes_the_object(req: &AdmissionRequest<DynamicObject>) -> bool {
    matches!(req.operation, Operation::Create | Operation::Update)
        && matches!(req.sub_resource.as_deref(), None | Some(""))
}

/// True when the object, or the stored object, carries a `tagpin.dev/` annotation.
fn carries_tagpin_annotations(req: &AdmissionRequest<DynamicObject>) -> bool {
    [req.object.as_ref(), req.old_object.as_ref()]
        .into_iter()
        .flatten()
        .filter_map(|o| o.metadata.annotations.as_ref())
        .any(|a| a.keys().any(|k| k.starts_with(ANNOTATION_PREFIX)))
}

impl Admitter {
    /// What tagpin does with `req`, or the final answer when it leaves it alone. The
    /// object moves out of `req` into the plan.
    pub(super) fn plan(
        &self,
        req: &mut AdmissionRequest<DynamicObject>,
    ) -> Result<Plan, Box<Decision>> {
        let kind = PinnedKind::from_group_kind(&req.kind.group, &req.kind.kind);
        let kind_label = kind.map(PinnedKind::as_str).unwrap_or("other");
        let Some(kind) = kind.filter(|k| self.config.pins(*k)) else {
            return Err(self.leave(req, kind, kind_label, "kind not pinned"));
        };
        let set = match (&req.operation, kind, req.sub_resource.as_deref()) {
            (Operation::Create, _, None | Some("")) => FieldSet::All,
            (Operation::Update, PinnedKind::Pod, Some("ephemeralcontainers")) => {
                FieldSet::EphemeralOnly
            }
            // Of a Pod's images, an update may change only its containers' and init
            // containers' (the kubelet then restarts them on the new image).
            (Operation::Update, PinnedKind::Pod, None | Some("")) => FieldSet::PodUpdate,
            (Operation::Update, _, None | Some("")) => FieldSet::All,
            (Operation::Delete | Operation::Connect, _, _) => {
                return Err(self.skip(req, kind_label, "delete or connect"));
            }
            _ => return Err(self.skip(req, kind_label, "subresource")),
        };
        let namespace = req.namespace.clone().unwrap_or_default();
        let label = self.cluster.namespace_label(&namespace, MODE_LABEL);
        let mode = self.config.mode_for(&namespace, label.as_deref());
        if mode.mode == Mode::Off {
            return Err(self.leave(req, Some(kind), kind_label, mode.source));
        }
        let Some(object) = req.object.take() else {
            return Err(self.skip(req, kind_label, "no object"));
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
        if let Some(owner) = self.pinned_controller(Some(kind), &object) {
            // The owner's template is pinned; changing the child's template would make it
            // differ from its owner's and the owner's controller would replace it forever.
            return Err(self.skip(req, kind_label, &format!("controlled by a {owner}")));
        }
        let fields = image_fields(kind, &object);
        let old = match req.operation {
            Operation::Update => req.old_object.as_ref(),
            _ => None,
        };
        // Pod specs sit in the object's data, never in its metadata.
        let old_fields = old.map(|o| image_fields(kind, &o.data));
        let changes = classify(&fields, old_fields.as_deref(), set);
        Ok(Plan {
            kind,
            kind_label,
            set,
            namespace,
            mode,
            object,
            fields,
            changes,
            stored: StoredRecord::of(old),
        })
    }

    /// Admits `req` untouched.
    fn skip(
        &self,
        req: &AdmissionRequest<DynamicObject>,
        kind_label: &'static str,
        why: &str,
    ) -> Box<Decision> {
        tracing::debug!(uid = %req.uid, reason = why, "admitted untouched");
        Box::new(Decision {
            response: AdmissionResponse::from(req),
            outcome: Outcome::Skipped,
            kind: kind_label,
            verdicts: Vec::new(),
        })
    }

    /// Admits `req` without looking at its images (a kind tagpin does not pin, a namespace
    /// in mode `off`), but keeps `tagpin.dev/` annotations tagpin's: none may be added, and
    /// an update keeps only the stored entries of images it leaves as they were.
    fn leave(
        &self,
        req: &AdmissionRequest<DynamicObject>,
        kind: Option<PinnedKind>,
        kind_label: &'static str,
        why: &str,
    ) -> Box<Decision> {
        let mut decision = self.skip(req, kind_label, why);
        if !writes_the_object(req) || !carries_tagpin_annotations(req) {
            return decision;
        }
        let ops = self.annotation_guard(req, kind);
        if ops.is_empty() {
            return decision;
        }
        tracing::info!(uid = %req.uid, kind = kind_label, reason = why, "admitted without tagpin.dev/ annotations tagpin did not write");
        let response = std::mem::replace(&mut decision.response, AdmissionResponse::from(req));
        match response.with_patch(Patch(ops)) {
            Ok(patched) => {
                decision.response = patched;
                decision.outcome = Outcome::Patched;
                decision
            }
            Err(e) => Box::new(self.deny(
                req,
                kind_label,
                Mode::Enforce,
                format!("cannot encode the patch: {e}"),
                HashMap::new(),
            )),
        }
    }

    /// The patch that leaves on an object tagpin does not pin only the stored record's
    /// entries of images left as they were.
    fn annotation_guard(
        &self,
        req: &AdmissionRequest<DynamicObject>,
        kind: Option<PinnedKind>,
    ) -> Vec<json_patch::PatchOperation> {
        let Some(object) = req.object.as_ref() else {
            return Vec::new();
        };
        // Only the metadata is read or patched here.
        let Ok(metadata) = serde_json::to_value(&object.metadata) else {
            return Vec::new();
        };
        let meta = json!({ "metadata": metadata });
        if self.pinned_controller(kind, &meta).is_some() {
            // The owner's controller copies the owner's record onto it (a Deployment's onto
            // its ReplicaSets); removing it would start a tug of war with that controller.
            return Vec::new();
        }
        let old = match req.operation {
            Operation::Update => req.old_object.as_ref(),
            _ => None,
        };
        let stored = StoredRecord::of(old);
        let records: Vec<ImageRecord> = match (kind, old) {
            (Some(kind), Some(old)) => {
                let fields = image_fields(kind, &object.data);
                let old_fields = image_fields(kind, &old.data);
                let changes = classify(&fields, Some(&old_fields), FieldSet::All);
                fields
                    .iter()
                    .zip(&changes)
                    .filter_map(|(f, c)| match c {
                        Change::Kept(s) => stored.entry_for(s, &f.pointer.to_string()),
                        _ => None,
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        patch::annotation_ops(&meta, stored.value_for(&records).as_deref())
    }

    /// The kind of the object's controller, when tagpin pins that kind's template itself.
    fn pinned_controller(&self, kind: Option<PinnedKind>, object: &Value) -> Option<&'static str> {
        super::fields::pinned_controller(&self.config, kind, object)
    }
}
