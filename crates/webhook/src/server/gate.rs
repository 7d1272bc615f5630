//! Bounds how many admission reviews run at once, and how many may wait for a slot.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Admission slots: `limit` reviews run at once, up to `limit` more wait a short while.
#[derive(Debug)]
pub struct Gate {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
}

/// Decrements the waiting count when a waiter stops waiting, however it stops.
struct Waiter<'a>(&'a AtomicUsize);

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Gate {
    /// A gate of `limit` concurrent reviews and as many waiting ones.
    pub fn new(limit: usize) -> Self {
        let limit = limit.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            slots: Arc::new(Semaphore::new(limit)),
            waiting: AtomicUsize::new(0),
            max_waiting: limit,
        }
    }

    /// A slot, waiting at most `patience` for one; `None` when tagpin is overloaded, at once
    /// when too many requests are already waiting (so waiters and their bodies stay bounded).
    pub async fn enter(&self, patience: Duration) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Some(permit);
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        let _waiter = Waiter(&self.waiting);
        tokio::time::timeout(patience, self.slots.clone().acquire_owned())
            .await
            .ok()?
            .ok()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn excess_waits_briefly_and_the_queue_is_capped() {
        let gate = Arc::new(Gate::new(1));
        let held = gate.enter(Duration::ZERO).await.unwrap();
        // One waiter fits in the queue and gets the slot once it is released.
        let waiter = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.enter(Duration::from_secs(30)).await.is_some() })
        };
        tokio::time::timeout(Duration::from_secs(10), async {
            while gate.waiting.load(Ordering::SeqCst) == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        // The queue is full: the next one is refused without waiting its patience out.
        let started = std::time::Instant::now();
        assert!(gate.enter(Duration::from_secs(30)).await.is_none());
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(held);
        assert!(waiter.await.unwrap());
        assert_eq!(gate.waiting.load(Ordering::SeqCst), 0);
        // A free slot and an impatient waiter behind a held one.
        let held = gate.enter(Duration::ZERO).await.unwrap();
        assert!(gate.enter(Duration::from_millis(20)).await.is_none());
        drop(held);
        assert!(gate.enter(Duration::ZERO).await.is_some());
    }
}
