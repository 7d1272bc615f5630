//! One registry client per (registry endpoint, credential): HTTP exchanges with
//! auth challenges, bearer tokens scoped to this credential, retries within a deadline.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use http::{HeaderMap, Method, StatusCode, header};
use reqwest::Url;

use crate::challenge::{self, Challenge};
use crate::credentials::Credential;
use crate::endpoint::{Endpoint, Scheme};
use crate::error::{ResolveError, error_chain};
use crate::stats::{RequestResult, Stats};
use std::sync::Arc;

/// Manifest media types tagpin accepts when resolving a tag.
pub const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE,
    oci_client::manifest::OCI_IMAGE_MEDIA_TYPE,
    oci_client::manifest::IMAGE_MANIFEST_LIST_MEDIA_TYPE,
    oci_client::manifest::IMAGE_MANIFEST_MEDIA_TYPE,
];

/// Largest manifest or index tagpin reads, as distribution limits them.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

const MAX_BACKOFF: Duration = Duration::from_secs(2);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Why retrying stopped before the deadline.
#[derive(Debug, Clone, Copy)]
pub enum GaveUp {
    /// The registry's `Retry-After` reaches past the deadline.
    RetryAfter(Duration),
    /// tagpin's own backoff after this many failed attempts would pass the deadline.
    Attempts(u32),
}

/// What one request is about, for error messages.
#[derive(Debug, Clone)]
pub struct RequestContext<'a> {
    /// The image as the user wrote it.
    pub image: &'a str,
    /// Repository path on this endpoint.
    pub repository: &'a str,
    /// The origin registry the image names (sent to mirrors as `ns`).
    pub origin: &'a str,
    /// When the whole lookup must be over.
    pub deadline: Instant,
    /// The deadline's length, for messages.
    pub budget: Duration,
}

/// A bearer token and when to stop using it.
#[derive(Clone)]
struct Token {
    value: String,
    expires: Instant,
}

/// How this client authenticates, learnt from the registry's first challenge.
const AUTH_UNKNOWN: u8 = 0;
const AUTH_BASIC: u8 = 1;

/// A registry client bound to one endpoint and one credential (or none).
pub struct RegistryClient {
    endpoint: Arc<Endpoint>,
    credential: Option<Credential>,
    tokens: Mutex<HashMap<String, Token>>,
    /// One token request per scope at a time: requests that need the same new token wait
    /// for it instead of asking for their own.
    token_requests: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    auth_mode: AtomicU8,
    stats: Arc<Stats>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("host", &self.endpoint.host)
            .field("credential", &self.credential)
            .finish()
    }
}

impl RegistryClient {
    /// A client for `endpoint` that authenticates with `credential`.
    pub fn new(endpoint: Arc<Endpoint>, credential: Option<Credential>, stats: Arc<Stats>) -> Self {
        Self {
            endpoint,
            credential,
            tokens: Mutex::new(HashMap::new()),
            token_requests: Mutex::new(HashMap::new()),
            auth_mode: AtomicU8::new(AUTH_UNKNOWN),
            stats,
        }
    }

    /// The endpoint's host, as used in references and config.
    pub fn host(&self) -> &str {
        &self.endpoint.host
    }

    /// The host this client talks to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Sends one registry API request (`/v2/<path>`) with auth, retries and the deadline,
    /// each attempt in one of the host's `maxConcurrentRequests` slots.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        accept: &[&str],
        ctx: &RequestContext<'_>,
    ) -> Result<reqwest::Response, ResolveError> {
        let scope = format!("repository:{}:pull", ctx.repository);
        let mut backoff = FIRST_BACKOFF;
        let mut authenticated_once = false;
        let mut attempts = 0u32;
        self.learn_challenge(ctx).await?;
        self.authenticate_up_front(&scope, ctx).await?;
        loop {
            let url = self.url(path, ctx)?;
            let slot = tokio::time::timeout(self.remaining(ctx)?, self.endpoint.slot())
                .await
                .map_err(|_| self.timed_out(ctx))?;
            let mut req = self
                .endpoint
                .http
                .request(method.clone(), url)
                .timeout(self.remaining(ctx)?);
            if !accept.is_empty() {
                req = req.header(header::ACCEPT, accept.join(", "));
            }
            if let Some(auth) = self.authorization(&scope) {
                req = req.header(header::AUTHORIZATION, auth);
            }
            let res = match req.send().await {
                Ok(res) => res,
                Err(e) => {
                    let err = self.transport_error(&e, ctx);
                    if self.endpoint.fall_back_to_http(&e) {
                        continue;
                    }
                    return Err(err);
                }
            };
            let status = res.status();
            if status == StatusCode::UNAUTHORIZED && !authenticated_once {
                authenticated_once = true;
                self.stats.record(RequestResult::Unauthorized);
                drop(slot);
                self.answer_challenge(res.headers(), &scope, ctx).await?;
                continue;
            }
            if status == StatusCode::TOO_MANY_REQUESTS || is_retryable_5xx(status) {
                self.stats
                    .record(if status == StatusCode::TOO_MANY_REQUESTS {
                        RequestResult::RateLimited
                    } else {
                        RequestResult::ServerError
                    });
                attempts += 1;
                let asked = retry_after(res.headers());
                let wait = asked.unwrap_or(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                if Instant::now() + wait >= ctx.deadline {
                    let gave_up = match asked {
                        Some(wait) => GaveUp::RetryAfter(wait),
                        None => GaveUp::Attempts(attempts),
                    };
                    return Err(self.status_error(res, ctx, Some(gave_up)).await);
                }
                drop(slot);
                tokio::time::sleep(wait).await;
                continue;
            }
            self.stats.record(RequestResult::from_status(status));
            return Ok(res);
        }
    }

    /// Turns a non-success answer into an error that names the cause.
    pub async fn status_error(
        &self,
        res: reqwest::Response,
        ctx: &RequestContext<'_>,
        gave_up: Option<GaveUp>,
    ) -> ResolveError {
        let status = res.status();
        let registry = self.host().to_owned();
        let image = ctx.image.to_owned();
        match status {
            StatusCode::NOT_FOUND => ResolveError::NotFound { image, registry },
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ResolveError::Unauthorized {
                image,
                registry,
                detail: match &self.credential {
                    Some(Credential::Basic { username, .. }) => {
                        format!("credentials of user {username:?} were refused")
                    }
                    Some(Credential::IdentityToken(_)) => "identity token was refused".into(),
                    None => "no credentials configured for it".into(),
                },
            },
            _ => {
                let body = read_limited(res, 64 * 1024).await.unwrap_or_default();
                let mut cause = registry_message(&body)
                    .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
                match gave_up {
                    Some(GaveUp::RetryAfter(wait)) => {
                        cause = format!(
                            "{cause}; the registry asked to retry after {:.1}s, past the deadline",
                            wait.as_secs_f64()
                        );
                    }
                    Some(GaveUp::Attempts(n)) => {
                        cause = format!(
                            "{cause}; gave up after {n} attempt(s), the next retry would pass the deadline"
                        );
                    }
                    None => {}
                }
                ResolveError::Registry {
                    image,
                    registry,
                    status: status.as_u16(),
                    cause,
                }
            }
        }
    }

    /// Asks `/v2/` once per host which authentication the registry wants, so a lookup
    /// costs one manifest request instead of an unauthenticated one plus a retry, and a
    /// new credential only its token.
    async fn learn_challenge(&self, ctx: &RequestContext<'_>) -> Result<(), ResolveError> {
        self.endpoint
            .challenge
            .get_or_try_init(|| async {
                loop {
                    let url = self.url("", ctx)?;
                    let req = self.endpoint.http.get(url).timeout(self.remaining(ctx)?);
                    match req.send().await {
                        Ok(res) if res.status() == StatusCode::UNAUTHORIZED => {
                            return Ok(res
                                .headers()
                                .get_all(header::WWW_AUTHENTICATE)
                                .iter()
                                .filter_map(|v| v.to_str().ok())
                                .find_map(challenge::parse));
                        }
                        Ok(_) => return Ok(None),
                        Err(e) => {
                            let err = self.transport_error(&e, ctx);
                            if !self.endpoint.fall_back_to_http(&e) {
                                return Err(err);
                            }
                        }
                    }
                }
            })
            .await
            .map(|_| ())
    }

    async fn authenticate_up_front(
        &self,
        scope: &str,
        ctx: &RequestContext<'_>,
    ) -> Result<(), ResolveError> {
        match self.endpoint.challenge.get().cloned().flatten() {
            Some(Challenge::Basic) => {
                if matches!(self.credential, Some(Credential::Basic { .. })) {
                    self.auth_mode.store(AUTH_BASIC, Ordering::Relaxed);
                }
                Ok(())
            }
            Some(Challenge::Bearer { realm, service, .. })
                if self.cached_token(scope).is_none() =>
            {
                let gate = self.token_request(scope);
                let _asking = gate.lock().await;
                // Another request may have fetched it while this one waited.
                if self.cached_token(scope).is_some() {
                    return Ok(());
                }
                let token = self
                    .fetch_token(&realm, service.as_deref(), scope, ctx)
                    .await?;
                self.store_token(scope, token);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The lock that one token request for `scope` holds.
    fn token_request(&self, scope: &str) -> Arc<tokio::sync::Mutex<()>> {
        let Ok(mut requests) = self.token_requests.lock() else {
            return Arc::default();
        };
        // Locks nobody holds or waits on are dropped, so the map stays as small as the
        // number of token requests in flight.
        requests.retain(|_, lock| Arc::strong_count(lock) > 1);
        requests.entry(scope.to_owned()).or_default().clone()
    }

    fn store_token(&self, scope: &str, token: Token) {
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.retain(|_, t| t.expires > Instant::now());
            tokens.insert(scope.to_owned(), token);
        }
    }

    fn url(&self, path: &str, ctx: &RequestContext<'_>) -> Result<Url, ResolveError> {
        let scheme = match self.endpoint.scheme() {
            Scheme::Https => "https",
            Scheme::Http => "http",
        };
        let mut url = Url::parse(&format!("{scheme}://{}/v2/{path}", self.endpoint.host))
            .map_err(|e| ResolveError::Config(format!("registry {}: {e}", self.endpoint.host)))?;
        if crate::endpoint::api_host(ctx.origin) != self.endpoint.host {
            url.query_pairs_mut().append_pair("ns", ctx.origin);
        }
        Ok(url)
    }

    fn remaining(&self, ctx: &RequestContext<'_>) -> Result<Duration, ResolveError> {
        ctx.deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| self.timed_out(ctx))
    }

    fn timed_out(&self, ctx: &RequestContext<'_>) -> ResolveError {
        ResolveError::TimedOut {
            image: ctx.image.to_owned(),
            registry: self.host().to_owned(),
            seconds: ctx.budget.as_secs_f64(),
        }
    }

    fn authorization(&self, scope: &str) -> Option<String> {
        if let Some(token) = self.cached_token(scope) {
            return Some(format!("Bearer {token}"));
        }
        match (&self.credential, self.auth_mode.load(Ordering::Relaxed)) {
            (Some(Credential::Basic { username, password }), AUTH_BASIC) => {
                Some(basic_header(username, password))
            }
            _ => None,
        }
    }

    fn cached_token(&self, scope: &str) -> Option<String> {
        let tokens = self.tokens.lock().ok()?;
        tokens
            .get(scope)
            .filter(|t| t.expires > Instant::now())
            .map(|t| t.value.clone())
    }

    async fn answer_challenge(
        &self,
        headers: &HeaderMap,
        scope: &str,
        ctx: &RequestContext<'_>,
    ) -> Result<(), ResolveError> {
        let challenge = headers
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(challenge::parse);
        let unauthorized = |detail: &str| ResolveError::Unauthorized {
            image: ctx.image.to_owned(),
            registry: self.host().to_owned(),
            detail: detail.to_owned(),
        };
        match challenge {
            Some(Challenge::Basic) => match &self.credential {
                Some(Credential::Basic { .. }) => {
                    self.auth_mode.store(AUTH_BASIC, Ordering::Relaxed);
                    Ok(())
                }
                _ => Err(unauthorized(
                    "it requires a user name and password and none is configured for it",
                )),
            },
            Some(Challenge::Bearer {
                realm,
                service,
                scope: _,
            }) => {
                let token = self
                    .fetch_token(&realm, service.as_deref(), scope, ctx)
                    .await?;
                if let Ok(mut tokens) = self.tokens.lock() {
                    tokens.retain(|_, t| t.expires > Instant::now());
                    tokens.insert(scope.to_owned(), token);
                }
                Ok(())
            }
            None => Err(unauthorized(
                "it sent no authentication challenge tagpin understands",
            )),
        }
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        ctx: &RequestContext<'_>,
    ) -> Result<Token, ResolveError> {
        let invalid = |cause: String| ResolveError::invalid_response(ctx.image, self.host(), cause);
        let mut url = Url::parse(realm)
            .map_err(|e| invalid(format!("token realm {realm:?} is not a URL: {e}")))?;
        // Credentials go to the token endpoint only over TLS, unless the registry itself is plain HTTP.
        let may_send_credentials =
            url.scheme() == "https" || self.endpoint.scheme() == Scheme::Http;
        let mut req = match (&self.credential, may_send_credentials) {
            (Some(Credential::IdentityToken(refresh)), true) => {
                let mut form =
                    Url::parse("http://form.invalid/").map_err(|e| invalid(e.to_string()))?;
                form.query_pairs_mut()
                    .append_pair("grant_type", "refresh_token")
                    .append_pair("refresh_token", refresh)
                    .append_pair("client_id", "tagpin")
                    .append_pair("scope", scope);
                if let Some(service) = service {
                    form.query_pairs_mut().append_pair("service", service);
                }
                self.endpoint
                    .http
                    .post(url)
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(form.query().unwrap_or_default().to_owned())
            }
            (cred, _) => {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(service) = service {
                        q.append_pair("service", service);
                    }
                    q.append_pair("scope", scope);
                }
                let req = self.endpoint.http.get(url);
                match (cred, may_send_credentials) {
                    (Some(Credential::Basic { username, password }), true) => {
                        req.header(header::AUTHORIZATION, basic_header(username, password))
                    }
                    _ => req,
                }
            }
        };
        req = req.timeout(self.remaining(ctx)?);
        let res = req
            .send()
            .await
            .map_err(|e| self.transport_error(&e, ctx))?;
        self.stats.record(RequestResult::Token);
        if !res.status().is_success() {
            return Err(self.status_error(res, ctx, None).await.into_token_error());
        }
        let body = read_limited(res, 256 * 1024)
            .await
            .map_err(|e| invalid(format!("reading the token answer: {e}")))?;
        #[derive(serde::Deserialize)]
        struct Answer {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let answer: Answer = serde_json::from_slice(&body)
            .map_err(|e| invalid(format!("token answer is not JSON: {e}")))?;
        let value = answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| invalid("token answer has no token".into()))?;
        // Renew a little early so a token never expires mid-request.
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(60).clamp(10, 86_400));
        Ok(Token {
            value,
            expires: Instant::now() + lifetime.mul_f64(0.9),
        })
    }

    /// Classifies a transport failure: deadline, untrusted TLS, or unreachable.
    pub fn transport_error(&self, e: &reqwest::Error, ctx: &RequestContext<'_>) -> ResolveError {
        self.stats.record(RequestResult::Transport);
        let image = ctx.image.to_owned();
        let registry = self.host().to_owned();
        if e.is_timeout() || Instant::now() >= ctx.deadline {
            return self.timed_out(ctx);
        }
        if let Some(cause) = crate::endpoint::tls_certificate_error(e) {
            return ResolveError::TlsUntrusted {
                image,
                registry,
                cause,
            };
        }
        if e.is_redirect() {
            return ResolveError::InvalidResponse {
                image,
                registry,
                cause: "too many redirects".into(),
            };
        }
        ResolveError::Unreachable {
            image,
            registry,
            cause: crate::endpoint::transport_cause(e),
        }
    }
}

impl ResolveError {
    fn into_token_error(self) -> Self {
        match self {
            Self::NotFound { image, registry } => Self::Unauthorized {
                image,
                registry,
                detail: "its token endpoint answered 404".into(),
            },
            other => other,
        }
    }
}

fn basic_header(username: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
    )
}

fn is_retryable_5xx(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

/// `Retry-After` as a delay: seconds, or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate_parse(v)?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

fn httpdate_parse(v: &str) -> Option<std::time::SystemTime> {
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
    let parts: Vec<&str> = v.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" {
        return None;
    }
    let day: u64 = parts[1].parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[2])? as u64
        + 1;
    let year: u64 = parts[3].parse().ok()?;
    let hms: Vec<u64> = parts[4]
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if hms.len() != 3 {
        return None;
    }
    let days = days_from_civil(year, month, day)?;
    let secs = days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2];
    Some(std::time::UNIX_EPOCH + Duration::from_secs(secs))
}

fn days_from_civil(y: u64, m: u64, d: u64) -> Option<u64> {
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || y < 1970 {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y } as i64;
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    u64::try_from(era * 146_097 + doe - 719_468).ok()
}

/// Reads a body up to `limit` bytes; longer bodies are an error, never truncated.
pub async fn read_limited(mut res: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    if res.content_length().is_some_and(|n| n > limit as u64) {
        return Err(format!("body is larger than {limit} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| error_chain(&e))? {
        if body.len() + chunk.len() > limit {
            return Err(format!("body is larger than {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The first message of a distribution error body, if it is one.
fn registry_message(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorEntry {
        code: Option<String>,
        message: Option<String>,
    }
    let parsed: Errors = serde_json::from_slice(body).ok()?;
    let first = parsed.errors.into_iter().next()?;
    let msg = match (first.code, first.message) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c,
        (None, Some(m)) => m,
        (None, None) => return None,
    };
    Some(msg.chars().take(300).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            header::RETRY_AFTER,
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        assert_eq!(
            httpdate_parse("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(std::time::UNIX_EPOCH + Duration::from_secs(784_111_777))
        );
        h.insert(header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn distribution_error_messages() {
        assert_eq!(
            registry_message(br#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#),
            Some("TOOMANYREQUESTS: slow down".into())
        );
        assert_eq!(registry_message(b"<html>"), None);
    }
}
