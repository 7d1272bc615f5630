//! When `/readyz` says ready: once the cluster caches are loaded and the one-time work of the
//! first request has been done ahead of it, until the server starts draining.

use std::sync::atomic::{AtomicBool, Ordering};

/// The conditions of readiness, each set once.
#[derive(Debug, Default)]
pub struct Readiness {
    caches_loaded: AtomicBool,
    warmed_up: AtomicBool,
    draining: AtomicBool,
}

impl Readiness {
    /// Records that the namespace and pull-secret caches are loaded (or that there are
    /// none to wait for); true when that made the server ready.
    pub fn caches_loaded(&self) -> bool {
        self.set(&self.caches_loaded)
    }

    /// Records that the warm-up is done; true when that made the server ready.
    pub fn warmed_up(&self) -> bool {
        self.set(&self.warmed_up)
    }

    /// Records that the server is shutting down: never ready again.
    pub fn draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// True while requests may be sent here.
    pub fn is_ready(&self) -> bool {
        self.waiting_for().is_none()
    }

    /// What readiness still waits for, in words for `/readyz`.
    pub fn waiting_for(&self) -> Option<&'static str> {
        if self.draining.load(Ordering::SeqCst) {
            Some("the server is shutting down")
        } else if !self.warmed_up.load(Ordering::SeqCst) {
            Some("warming up (TLS, crypto, registry clients)")
        } else if !self.caches_loaded.load(Ordering::SeqCst) {
            Some("namespace and pull-secret caches are still loading")
        } else {
            None
        }
    }

    fn set(&self, flag: &AtomicBool) -> bool {
        let was_ready = self.is_ready();
        flag.store(true, Ordering::SeqCst);
        !was_ready && self.is_ready()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_once_warmed_up_and_loaded_until_draining() {
        let r = Readiness::default();
        assert!(!r.is_ready());
        assert!(!r.caches_loaded(), "caches alone do not make it ready");
        assert_eq!(
            r.waiting_for(),
            Some("warming up (TLS, crypto, registry clients)")
        );
        assert!(r.warmed_up(), "the warm-up completes readiness");
        assert!(r.is_ready());
        assert!(!r.warmed_up(), "already ready");
        r.draining();
        assert!(!r.is_ready());

        let r = Readiness::default();
        assert!(!r.warmed_up(), "a warm-up alone does not make it ready");
        assert!(r.caches_loaded());
    }
}
