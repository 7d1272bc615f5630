//! Counters the webhook exports as metrics: registry requests by result, cache hits and misses.

use std::sync::atomic::{AtomicU64, Ordering};

use http::StatusCode;

/// How one registry request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestResult {
    /// 2xx.
    Ok,
    /// 404.
    NotFound,
    /// 401 or 403.
    Unauthorized,
    /// 429.
    RateLimited,
    /// 5xx.
    ServerError,
    /// Any other status.
    OtherStatus,
    /// No HTTP answer: connect, TLS, timeout.
    Transport,
    /// A bearer token request.
    Token,
}

impl RequestResult {
    const ALL: [Self; 8] = [
        Self::Ok,
        Self::NotFound,
        Self::Unauthorized,
        Self::RateLimited,
        Self::ServerError,
        Self::OtherStatus,
        Self::Transport,
        Self::Token,
    ];

    /// The metric label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::NotFound => "not_found",
            Self::Unauthorized => "unauthorized",
            Self::RateLimited => "rate_limited",
            Self::ServerError => "server_error",
            Self::OtherStatus => "other_status",
            Self::Transport => "transport_error",
            Self::Token => "token",
        }
    }

    /// Classifies a final HTTP status.
    pub fn from_status(s: StatusCode) -> Self {
        match s.as_u16() {
            200..=299 => Self::Ok,
            404 => Self::NotFound,
            401 | 403 => Self::Unauthorized,
            429 => Self::RateLimited,
            500..=599 => Self::ServerError,
            _ => Self::OtherStatus,
        }
    }
}

/// Monotonic counters, shared by every client of one resolver.
#[derive(Debug, Default)]
pub struct Stats {
    requests: [AtomicU64; 8],
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolverStats {
    /// Answers served from the tag-to-digest cache.
    pub cache_hits: u64,
    /// Lookups that went to the registry (coalesced waiters count as hits).
    pub cache_misses: u64,
    /// Registry requests by result label.
    pub registry_requests: Vec<(&'static str, u64)>,
}

impl Stats {
    /// Counts one registry request.
    pub fn record(&self, r: RequestResult) {
        let i = RequestResult::ALL.iter().position(|x| *x == r).unwrap_or(0);
        self.requests[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a cache hit.
    pub fn hit(&self) {
        self.cache_hits.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a cache miss.
    pub fn miss(&self) {
        self.cache_misses.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> ResolverStats {
        ResolverStats {
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            cache_misses: self.cache_misses.load(Ordering::Relaxed),
            registry_requests: RequestResult::ALL
                .iter()
                .zip(&self.requests)
                .map(|(r, n)| (r.label(), n.load(Ordering::Relaxed)))
                .collect(),
        }
    }
}
