//! Counting requests in a registry's access log.

use std::path::Path;
use std::time::{Duration, Instant};

/// Lines of the access log at `path` for `method` on manifest `reference` of `repository`.
pub fn count_manifest_requests(
    path: &Path,
    method: &str,
    repository: &str,
    reference: &str,
) -> usize {
    let needle = format!("\"{method} /v2/{repository}/manifests/{reference}");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            l.find(&needle).is_some_and(|i| {
                let rest = &l[i + needle.len()..];
                rest.starts_with(' ') || rest.starts_with('?')
            })
        })
        .count()
}

/// Waits until the access log holds a line containing `marker`: every request answered
/// before the marker request is then in the log too.
pub fn wait_for_line(path: &Path, marker: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        if std::fs::read_to_string(path)
            .unwrap_or_default()
            .contains(marker)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{marker:?} did not appear in {} within {timeout:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
