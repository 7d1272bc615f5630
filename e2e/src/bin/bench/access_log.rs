//! Counting the registry's manifest requests of one scenario from its access log.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// The registry's access log, read from a remembered offset.
#[derive(Debug, Clone)]
pub struct AccessLog {
    path: PathBuf,
}

/// Manifest requests for the bench's repositories in one stretch of the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ManifestCounts {
    /// `HEAD` of a manifest by tag.
    pub head: u64,
    /// `GET` of a manifest by tag.
    pub get: u64,
    /// `GET` or `HEAD` of a manifest by digest (`sha256:...`).
    pub by_digest: u64,
    /// Requests for cosign signature or attestation tags (`sha256-<hex>.sig`, `.att`).
    pub signature: u64,
    /// Manifest requests answered 401 (credentials not sent up front).
    pub unauthorized: u64,
}

impl ManifestCounts {
    /// Manifest requests by tag, the ones the tag-to-digest cache should save.
    pub fn by_tag(&self) -> u64 {
        self.head + self.get
    }

    /// The JSON form written to results.json.
    pub fn to_json(self) -> Value {
        json!({
            "head_by_tag": self.head,
            "get_by_tag": self.get,
            "by_digest": self.by_digest,
            "signature_tags": self.signature,
            "unauthorized": self.unauthorized,
        })
    }
}

impl AccessLog {
    /// The log at `path`.
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
        }
    }

    /// The current end of the log: counting later starts here.
    pub fn offset(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// Whether the log holds `marker` after `offset`.
    pub fn contains_since(&self, offset: u64, marker: &str) -> bool {
        self.read_since(offset).contains(marker)
    }

    fn read_since(&self, offset: u64) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.path)
            && f.seek(SeekFrom::Start(offset)).is_ok()
        {
            let mut bytes = Vec::new();
            let _ = f.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    }

    /// Manifest requests since `offset` for repositories starting with `prefix`.
    pub fn count_since(&self, offset: u64, prefix: &str) -> ManifestCounts {
        count(&self.read_since(offset), prefix)
    }

    /// Every request since `offset` (manifests, blobs, referrers) for repositories starting
    /// with `prefix`.
    pub fn requests_since(&self, offset: u64, prefix: &str) -> u64 {
        let needle = format!(" /v2/{prefix}");
        self.read_since(offset)
            .lines()
            .filter(|l| l.contains(&needle))
            .count() as u64
    }
}

/// Counts manifest requests in combined-format lines such as
/// `... "HEAD /v2/<repo>/manifests/<ref> HTTP/2.0" 200 ...`.
fn count(text: &str, prefix: &str) -> ManifestCounts {
    let mut c = ManifestCounts::default();
    for line in text.lines() {
        let Some((_, request)) = line.split_once('"') else {
            continue;
        };
        let Some((request, after)) = request.split_once('"') else {
            continue;
        };
        let mut parts = request.split(' ');
        let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
            continue;
        };
        let path = path.split('?').next().unwrap_or(path);
        let Some(repo_ref) = path.strip_prefix("/v2/") else {
            continue;
        };
        if !repo_ref.starts_with(prefix) {
            continue;
        }
        let Some((_, reference)) = repo_ref.rsplit_once("/manifests/") else {
            continue;
        };
        let status = after.split_whitespace().next().unwrap_or("");
        if status == "401" {
            c.unauthorized += 1;
            continue;
        }
        if reference.starts_with("sha256-") {
            c.signature += 1;
        } else if reference.starts_with("sha256:") {
            c.by_digest += 1;
        } else if method == "HEAD" {
            c.head += 1;
        } else if method == "GET" {
            c.get += 1;
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_kind() {
        let log = r#"127.0.0.1 - - [x] "HEAD /v2/bench-1/app/manifests/t1 HTTP/2.0" 200 0 "" ""
127.0.0.1 - - [x] "GET /v2/bench-1/app/manifests/t1 HTTP/2.0" 200 10 "" ""
127.0.0.1 - - [x] "HEAD /v2/bench-1/app/manifests/t2 HTTP/1.1" 401 0 "" ""
127.0.0.1 - - [x] "GET /v2/bench-1/app/manifests/sha256-ab.sig HTTP/2.0" 200 10 "" ""
127.0.0.1 - - [x] "GET /v2/bench-1/app/manifests/sha256:ab HTTP/2.0" 200 10 "" ""
127.0.0.1 - - [x] "HEAD /v2/other/app/manifests/t1 HTTP/2.0" 200 0 "" ""
127.0.0.1 - - [x] "GET /v2/bench-1/app/blobs/sha256:ab HTTP/2.0" 200 0 "" ""
"#;
        let c = count(log, "bench-1/");
        assert_eq!(
            c,
            ManifestCounts {
                head: 1,
                get: 1,
                by_digest: 1,
                signature: 1,
                unauthorized: 1
            }
        );
    }
}
