//! AdmissionReview in, AdmissionReview out: pin every image, record it, apply the namespace's mode.
//!
//! A request goes through named steps: `plan` (leave it alone, or which image fields it
//! changes), `check` (look up and verify those), and `conclude` (records, patch, response).

mod changes;
mod check;
mod conclude;
pub(crate) mod fields;
mod patch;
mod plan;
pub mod record;
mod review;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::core::{DynamicObject, Status};
use tokio::time::Instant;

use crate::config::{Config, Mode};
use crate::credentials::ClusterState;
use crate::resolving::ImageResolver;
use crate::verification::ImageVerifier;
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

    /// The answer when tagpin has no capacity left for `req`: requests it would not touch,
    /// and updates that change no image (nothing to look up), are answered as usual; the
    /// rest are denied in enforce mode and admitted with a warning in warn mode, never
    /// queued past their deadline.
    pub fn overloaded(&self, mut req: AdmissionRequest<DynamicObject>) -> Decision {
        let plan = match self.plan(&mut req) {
            Ok(plan) => plan,
            Err(decision) => return *decision,
        };
        if !plan.looks_anything_up() {
            let checked = plan.unchecked();
            return self.conclude(&req, plan, checked);
        }
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

    /// Answers `req` with a deadline counted from `started`: plan, then look up and verify
    /// the image fields the request changes, then conclude.
    async fn admit_since(
        &self,
        mut req: AdmissionRequest<DynamicObject>,
        started: Instant,
    ) -> Decision {
        let plan = match self.plan(&mut req) {
            Ok(plan) => plan,
            Err(decision) => return *decision,
        };
        let deadline = started + self.config.deadline();
        let checked = self.check(&plan, deadline).await;
        self.conclude(&req, plan, checked)
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
}
