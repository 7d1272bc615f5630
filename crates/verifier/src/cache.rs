//! Verdicts cached by (digest, policy version), never by tag: a moved tag
//! resolves to a new digest and can never inherit an old verdict.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tagpin_resolver::Digest;

use crate::verdict::{Outcome, Verdict};

/// How long verdicts are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheTtl {
    /// Lifetime of verified (and no-rule) verdicts.
    pub success: Duration,
    /// Lifetime of failed verdicts; kept short so a fix is seen quickly.
    pub failure: Duration,
}

impl Default for CacheTtl {
    fn default() -> Self {
        Self {
            success: Duration::from_secs(300),
            failure: Duration::from_secs(10),
        }
    }
}

/// Cache key: the verified digest, the image's repository (rules and
/// docker-reference checks depend on it) and the policy version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    digest: Digest,
    name: String,
    policy: String,
}

/// A bounded in-memory verdict cache.
#[derive(Debug)]
pub struct VerdictCache {
    ttl: CacheTtl,
    capacity: usize,
    entries: Mutex<HashMap<Key, (Instant, Verdict)>>,
}

impl VerdictCache {
    /// A cache holding at most `capacity` verdicts.
    pub fn new(ttl: CacheTtl, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The cached verdict, if still fresh.
    pub fn get(&self, digest: &Digest, name: &str, policy: &str) -> Option<Verdict> {
        let key = Key {
            digest: digest.clone(),
            name: name.to_owned(),
            policy: policy.to_owned(),
        };
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(&key) {
            Some((expires, v)) if *expires > Instant::now() => Some(v.clone()),
            Some(_) => {
                entries.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Stores a verdict with the TTL its outcome deserves.
    pub fn put(&self, digest: &Digest, name: &str, policy: &str, verdict: &Verdict) {
        let ttl = if verdict.outcome == Outcome::Failed {
            self.ttl.failure
        } else {
            self.ttl.success
        };
        if ttl.is_zero() || self.capacity == 0 {
            return;
        }
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity {
            entries.retain(|_, (expires, _)| *expires > now);
            if entries.len() >= self.capacity {
                // Dropping everything is crude but bounded; verdicts are cheap to recompute.
                entries.clear();
            }
        }
        entries.insert(
            Key {
                digest: digest.clone(),
                name: name.to_owned(),
                policy: policy.to_owned(),
            },
            (now + ttl, verdict.clone()),
        );
    }
}

impl Default for VerdictCache {
    fn default() -> Self {
        Self::new(CacheTtl::default(), 10_000)
    }
}
