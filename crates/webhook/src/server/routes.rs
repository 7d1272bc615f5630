//! HTTP routes: `/mutate`, `/healthz`, `/readyz`, `/metrics`.

use std::convert::Infallible;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::admission::Admitter;
use crate::metrics::Metrics;
use crate::server::gate::Gate;
use crate::server::readiness::Readiness;

/// The share of a request's deadline it may spend waiting for an admission slot; the rest
/// is left for resolving and verifying its images.
const PATIENCE_SHARE: f64 = 0.1;

/// Everything the routes share.
pub struct AppState {
    /// Answers admission reviews; replaced when the config file changes.
    pub admitter: RwLock<Arc<Admitter>>,
    /// Metrics registry.
    pub metrics: Metrics,
    /// Ready once warmed up and the credential caches are loaded, until draining.
    pub ready: Readiness,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Admission slots (`server.maxConcurrentReviews`).
    pub gate: Gate,
}

impl AppState {
    /// The current admitter.
    pub fn admitter(&self) -> Arc<Admitter> {
        match self.admitter.read() {
            Ok(a) => a.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Answers later requests with `admitter`; requests in flight finish with the old one.
    pub fn replace_admitter(&self, admitter: Admitter) {
        match self.admitter.write() {
            Ok(mut a) => *a = Arc::new(admitter),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(admitter),
        }
    }
}

/// Routes one request; never fails, every problem becomes an HTTP status.
pub async fn handle(
    state: Arc<AppState>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = match (req.method(), req.uri().path()) {
        (&Method::POST, "/mutate") => mutate(&state, req).await,
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") => match state.ready.waiting_for() {
            None => text(StatusCode::OK, "ready\n"),
            Some(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("not ready: {why}\n"),
            ),
        },
        (&Method::GET, "/metrics") => match state.metrics.encode() {
            Ok(body) => Response::builder()
                .status(StatusCode::OK)
                .header(
                    header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )
                .body(Full::new(Bytes::from(body)))
                .unwrap_or_else(|_| plain_500()),
            Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n"),
        },
        (_, "/mutate" | "/healthz" | "/readyz" | "/metrics") => text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed: POST /mutate, GET /healthz, /readyz, /metrics\n",
        ),
        (_, path) => text(
            StatusCode::NOT_FOUND,
            &format!(
                "no route {path}: tagpin serves POST /mutate, GET /healthz, /readyz, /metrics\n"
            ),
        ),
    };
    Ok(response)
}

async fn mutate(state: &AppState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let limit = state.max_body_bytes;
    let too_large = || {
        state.metrics.reject("too_large");
        text(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body exceeds the limit of {limit} bytes (server.maxBodyBytes)\n"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = match read_body(req.into_body(), limit, declared).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => return too_large(),
        Err(BodyError::Read(e)) => {
            state.metrics.reject("read_error");
            return text(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the request body: {e}\n"),
            );
        }
    };
    let arrived = Instant::now();
    let admitter = state.admitter();
    let request = match crate::admission::parse_review(&body) {
        Ok(request) => request,
        Err(e) => {
            state.metrics.reject("malformed");
            tracing::warn!(error = %e, "rejected a malformed admission request");
            return text(StatusCode::BAD_REQUEST, &format!("{e}\n"));
        }
    };
    // A waiting request holds its parsed form only, not its body too.
    drop(body);
    let patience = admitter.deadline().mul_f64(PATIENCE_SHARE);
    let decision = match state.gate.enter(patience).await {
        Some(_slot) => {
            let _in_flight = state.metrics.start();
            admitter.answer(request, arrived).await
        }
        None => admitter.overloaded(request),
    };
    state
        .metrics
        .observe(decision.kind, decision.outcome.as_str(), arrived.elapsed());
    for verdict in &decision.verdicts {
        state.metrics.verdict(verdict);
    }
    match crate::admission::encode_review(decision.response.into_review()) {
        Ok(json) => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(json)))
            .unwrap_or_else(|_| plain_500()),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot encode the AdmissionReview response: {e}\n"),
        ),
    }
}

enum BodyError {
    TooLarge,
    Read(hyper::Error),
}

/// Reads at most `limit` bytes. An oversized body is read to its end (up to a hard cap) and
/// discarded, so HTTP/2 clients receive the 413 instead of a reset stream.
async fn read_body(
    mut body: Incoming,
    limit: usize,
    declared: Option<u64>,
) -> Result<Bytes, BodyError> {
    let discard_cap = limit.saturating_mul(4).max(16 * 1024 * 1024) as u64;
    if declared.is_some_and(|len| len > discard_cap) {
        return Err(BodyError::TooLarge);
    }
    let mut buf = Vec::new();
    let mut total: u64 = 0;
    let mut too_large = declared.is_some_and(|len| len > limit as u64);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyError::Read)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len() as u64;
        if total > discard_cap {
            return Err(BodyError::TooLarge);
        }
        if total > limit as u64 {
            too_large = true;
            buf = Vec::new();
        }
        if !too_large {
            buf.extend_from_slice(&data);
        }
    }
    if too_large {
        return Err(BodyError::TooLarge);
    }
    Ok(Bytes::from(buf))
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap_or_else(|_| plain_500())
}

fn plain_500() -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(b"internal error\n")));
    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    r
}
