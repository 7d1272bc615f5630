//! An OCI registry in memory that counts round trips: plain HTTP on loopback, every answer
//! held for one fixed delay, and a record of when each request arrived and was answered.
//!
//! Run it on a runtime with paused time (`#[tokio::test(start_paused = true)]`): the delay is
//! then virtual and the clock only moves when every task waits, so requests a client sends
//! together arrive at the same instant whatever the machine's load, and
//! [`sequential_rounds`] counts how many round trips the client waited for one after
//! another, not how long they took.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::registry::{OCI_INDEX, sha256};

/// How the registry wants clients to authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Anonymous pulls.
    Anonymous,
    /// Bearer tokens per repository from its own `/token` endpoint, given to anyone.
    Bearer,
}

/// One request and its answer.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// The path and query.
    pub path: String,
    /// The status answered.
    pub status: u16,
    /// When the request's headers arrived.
    pub started: Instant,
    /// When the answer was sent.
    pub ended: Instant,
}

impl Exchange {
    /// `METHOD path -> status`, for failure messages.
    pub fn describe(&self) -> String {
        format!("{} {} -> {}", self.method, self.path, self.status)
    }
}

#[derive(Default)]
struct Content {
    /// `(repository, tag or digest)` → (media type, bytes).
    manifests: HashMap<(String, String), (String, Vec<u8>)>,
    /// `(repository, digest)` → bytes.
    blobs: HashMap<(String, String), Vec<u8>>,
    /// `(repository, subject digest)` → referrer descriptors, for the referrers API.
    referrers: HashMap<(String, String), Vec<Value>>,
}

struct State {
    addr: String,
    auth: Auth,
    referrers_api: bool,
    delay: Duration,
    content: Mutex<Content>,
    log: Mutex<Vec<Exchange>>,
}

/// A running recording registry.
#[derive(Clone)]
pub struct RecordingRegistry {
    /// `127.0.0.1:<port>`.
    pub addr: String,
    state: Arc<State>,
}

impl RecordingRegistry {
    /// Starts a registry holding each answer for `delay`; with `referrers_api` it serves the
    /// OCI 1.1 referrers API, without it referrers are listed under the `sha256-<hex>` tag
    /// schema, as distribution 2.8 keeps them.
    pub async fn start(auth: Auth, referrers_api: bool, delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("bound address").to_string();
        let state = Arc::new(State {
            addr: addr.clone(),
            auth,
            referrers_api,
            delay,
            content: Mutex::default(),
            log: Mutex::default(),
        });
        let serving = state.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let state = serving.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| answer(state.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(conn), service)
                        .await;
                });
            }
        });
        Self { addr, state }
    }

    /// Stores a blob in `repository`; returns its digest.
    pub fn put_blob(&self, repository: &str, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        self.content()
            .blobs
            .insert((repository.to_owned(), digest.clone()), bytes.to_vec());
        digest
    }

    /// Stores a manifest of `media_type` by digest and, with `tag`, by tag; returns its digest.
    pub fn put_manifest(
        &self,
        repository: &str,
        tag: Option<&str>,
        media_type: &str,
        bytes: &[u8],
    ) -> String {
        let digest = sha256(bytes);
        let mut content = self.content();
        let entry = (media_type.to_owned(), bytes.to_vec());
        if let Some(tag) = tag {
            content
                .manifests
                .insert((repository.to_owned(), tag.to_owned()), entry.clone());
        }
        content
            .manifests
            .insert((repository.to_owned(), digest.clone()), entry);
        digest
    }

    /// Stores the JSON `manifest` as a referrer of `subject` (its `subject` field is set
    /// here), listed the way this registry lists referrers; returns its digest.
    pub fn put_referrer(&self, repository: &str, subject: &str, mut manifest: Value) -> String {
        let subject_size = self
            .content()
            .manifests
            .get(&(repository.to_owned(), subject.to_owned()))
            .map_or(0, |(_, b)| b.len());
        manifest["subject"] = json!({
            "mediaType": crate::registry::OCI_MANIFEST,
            "digest": subject,
            "size": subject_size,
        });
        let bytes = serde_json::to_vec(&manifest).expect("manifest serializes");
        let media_type = manifest["mediaType"]
            .as_str()
            .unwrap_or(crate::registry::OCI_MANIFEST)
            .to_owned();
        let digest = self.put_manifest(repository, None, &media_type, &bytes);
        let artifact_type = manifest["artifactType"]
            .as_str()
            .or(manifest["config"]["mediaType"].as_str())
            .unwrap_or_default();
        let mut descriptor = json!({
            "mediaType": media_type,
            "digest": digest,
            "size": bytes.len(),
            "artifactType": artifact_type,
        });
        if let Some(annotations) = manifest.get("annotations") {
            descriptor["annotations"] = annotations.clone();
        }
        let listed = {
            let mut content = self.content();
            let list = content
                .referrers
                .entry((repository.to_owned(), subject.to_owned()))
                .or_default();
            list.push(descriptor);
            list.clone()
        };
        if !self.state.referrers_api {
            let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": listed});
            let tag = subject.replacen(':', "-", 1);
            let bytes = serde_json::to_vec(&index).expect("index serializes");
            self.put_manifest(repository, Some(&tag), OCI_INDEX, &bytes);
        }
        digest
    }

    /// The requests answered since the last call, in the order they arrived.
    pub fn take(&self) -> Vec<Exchange> {
        let mut log = self.state.log.lock().expect("log lock");
        let mut taken = std::mem::take(&mut *log);
        taken.sort_by_key(|e| e.started);
        taken
    }

    fn content(&self) -> std::sync::MutexGuard<'_, Content> {
        self.state.content.lock().expect("content lock")
    }
}

/// How many round trips `exchanges` waited for one after another: the length of the
/// longest chain of requests where each one started only after the one before was answered.
pub fn sequential_rounds(exchanges: &[Exchange]) -> usize {
    depths(exchanges).into_iter().max().unwrap_or(0)
}

/// `exchanges` grouped by their place in the longest chain: the first group needed no
/// earlier answer, the second needed one from the first, and so on.
pub fn waves(exchanges: &[Exchange]) -> Vec<Vec<String>> {
    let depths = depths(exchanges);
    let mut waves = vec![Vec::new(); depths.iter().copied().max().unwrap_or(0)];
    for (e, d) in exchanges.iter().zip(depths) {
        waves[d - 1].push(e.describe());
    }
    waves
}

fn depths(exchanges: &[Exchange]) -> Vec<usize> {
    let mut depths: Vec<usize> = Vec::with_capacity(exchanges.len());
    for e in exchanges {
        let before = exchanges
            .iter()
            .zip(&depths)
            .filter(|(q, _)| q.ended <= e.started)
            .map(|(_, d)| *d)
            .max()
            .unwrap_or(0);
        depths.push(before + 1);
    }
    depths
}

async fn answer(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    let response = route(&state, &req, &path);
    tokio::time::sleep(state.delay).await;
    state.log.lock().expect("log lock").push(Exchange {
        method: method.to_string(),
        path,
        status: response.status().as_u16(),
        started,
        ended: Instant::now(),
    });
    Ok(response)
}

fn route(state: &State, req: &Request<Incoming>, path: &str) -> Response<Full<Bytes>> {
    if let Some(query) = path.strip_prefix("/token?") {
        return token(query);
    }
    let Some(rest) = path.split('?').next().and_then(|p| p.strip_prefix("/v2/")) else {
        return status(StatusCode::NOT_FOUND);
    };
    let repository = ["/manifests/", "/blobs/", "/referrers/"]
        .iter()
        .find_map(|sep| rest.rsplit_once(sep).map(|(r, _)| r));
    if state.auth == Auth::Bearer && !authorized(req, repository) {
        let scope = repository
            .map(|r| format!(",scope=\"repository:{r}:pull\""))
            .unwrap_or_default();
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header(
                header::WWW_AUTHENTICATE,
                format!(
                    "Bearer realm=\"http://{}/token\",service=\"recording\"{scope}",
                    state.addr
                ),
            )
            .body(Full::new(Bytes::new()))
            .unwrap_or_else(|_| status(StatusCode::INTERNAL_SERVER_ERROR));
    }
    if rest.is_empty() {
        return status(StatusCode::OK);
    }
    let content = state.content.lock().expect("content lock");
    if let Some((repository, reference)) = rest.rsplit_once("/manifests/") {
        return match content
            .manifests
            .get(&(repository.to_owned(), reference.to_owned()))
        {
            Some((media_type, bytes)) => body(media_type, bytes),
            None => status(StatusCode::NOT_FOUND),
        };
    }
    if let Some((repository, digest)) = rest.rsplit_once("/blobs/") {
        return match content
            .blobs
            .get(&(repository.to_owned(), digest.to_owned()))
        {
            Some(bytes) => body("application/octet-stream", bytes),
            None => status(StatusCode::NOT_FOUND),
        };
    }
    if let Some((repository, digest)) = rest.rsplit_once("/referrers/") {
        if !state.referrers_api {
            return status(StatusCode::NOT_FOUND);
        }
        let listed = content
            .referrers
            .get(&(repository.to_owned(), digest.to_owned()))
            .cloned()
            .unwrap_or_default();
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": listed});
        let bytes = serde_json::to_vec(&index).unwrap_or_default();
        return body(OCI_INDEX, &bytes);
    }
    status(StatusCode::NOT_FOUND)
}

/// A token is the scope it was asked for: any client may pull anything.
fn token(query: &str) -> Response<Full<Bytes>> {
    let scope = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("scope="))
        .unwrap_or_default()
        .replace("%3A", ":")
        .replace("%2F", "/");
    let answer = json!({"token": format!("t:{scope}"), "expires_in": 300});
    body(
        "application/json",
        &serde_json::to_vec(&answer).unwrap_or_default(),
    )
}

fn authorized(req: &Request<Incoming>, repository: Option<&str>) -> bool {
    let sent = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match (repository, sent) {
        (Some(r), Some(sent)) => sent == format!("Bearer t:repository:{r}:pull"),
        (None, Some(sent)) => sent.starts_with("Bearer t:"),
        (_, None) => false,
    }
}

/// A 200 with `bytes`; hyper leaves the body out of answers to HEAD.
fn body(media_type: &str, bytes: &[u8]) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, media_type)
        .header("Docker-Content-Digest", sha256(bytes))
        .body(Full::new(Bytes::copy_from_slice(bytes)))
        .unwrap_or_else(|_| status(StatusCode::INTERNAL_SERVER_ERROR))
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = code;
    r
}
