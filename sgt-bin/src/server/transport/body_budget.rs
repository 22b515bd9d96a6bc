//! The memory all request bodies may take at once.
//!
//! The per-request limits bound one body; this bounds them together. Without it, 4,096
//! requests in flight, each with a 64 KiB gzip body that inflates to the 64 MiB log limit,
//! would ask for 256 GiB. The server charges each request's declared `Content-Length` before
//! its body is read, and decoders charge the bytes they inflate; a request that would pass
//! the budget is answered 503 with an `error` body, which osquery treats as a failure: it
//! keeps its data and retries.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget is counted in units of this many bytes.
const UNIT: u64 = 1024;

/// A share (or a request's shares together) at least this large marks the budget as having held a large body, after which
/// freed memory is worth giving back to the system once the budget is idle again.
const LARGE_SHARE_BYTES: u64 = 1024 * 1024;

/// A share of the budget, given back when dropped.
pub(crate) type BodyShare = OwnedSemaphorePermit;

/// The bytes of request bodies (received or inflated) that may be held at once. Cloning
/// shares the budget.
#[derive(Debug, Clone)]
pub(crate) struct BodyBudget {
    free: Arc<Semaphore>,
    units: usize,
    held_large_share: Arc<AtomicBool>,
}

impl BodyBudget {
    /// A budget of `bytes` (rounded up to whole KiB).
    pub(crate) fn new(bytes: u64) -> Self {
        let units = usize::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        BodyBudget {
            free: Arc::new(Semaphore::new(units)),
            units,
            held_large_share: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Takes `bytes` from the budget until the share is dropped; `None` when the budget has
    /// not that much left.
    pub(crate) fn try_take(&self, bytes: u64) -> Option<BodyShare> {
        let units = u32::try_from(bytes.div_ceil(UNIT)).ok()?;
        let share = Arc::clone(&self.free).try_acquire_many_owned(units).ok()?;
        if bytes >= LARGE_SHARE_BYTES {
            self.held_large_share.store(true, Ordering::Relaxed);
        }
        Some(share)
    }

    /// True once per quiet spell: when no body holds any of the budget now and a large one
    /// did since the last time this answered true.
    pub(crate) fn idle_after_large_bodies(&self) -> bool {
        self.free.available_permits() == self.units
            && self.held_large_share.swap(false, Ordering::Relaxed)
    }

    /// Takes `bytes` more into `held`, the share a request holds so far; false when the
    /// budget has not that much left.
    pub(crate) fn try_add(&self, held: &mut Option<BodyShare>, bytes: u64) -> bool {
        let Some(share) = self.try_take(bytes) else {
            return false;
        };
        let held = match held {
            Some(held) => {
                held.merge(share);
                held
            }
            None => held.insert(share),
        };
        if held.num_permits() as u64 * UNIT >= LARGE_SHARE_BYTES {
            self.held_large_share.store(true, Ordering::Relaxed);
        }
        true
    }
}

/// Asks the allocator to give the memory it holds free back to the system. glibc keeps what
/// threads freed in their arenas, so after a burst of large bodies the process stays hundreds
/// of MiB above its working set; `malloc_trim(0)` returns the free pages of every arena. It
/// locks each arena in turn, so it is called only when the body budget is idle. Elsewhere
/// (musl, macOS) it does nothing: those allocators return large blocks themselves.
pub(crate) fn give_freed_memory_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: malloc_trim takes no pointers and no caller-side invariants; glibc locks each
    // arena while it trims it.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_come_back_when_dropped() {
        let budget = BodyBudget::new(10 * 1024);
        let first = budget.try_take(6 * 1024).expect("fits");
        assert!(budget.try_take(5 * 1024).is_none(), "only 4 KiB left");
        let second = budget.try_take(4 * 1024).expect("fits exactly");
        assert!(budget.try_take(1).is_none());
        drop(first);
        assert!(budget.try_take(6 * 1024).is_some());
        drop(second);
        assert!(budget.try_take(0).is_some());
        assert!(budget.try_take(u64::MAX).is_none());
    }

    #[test]
    fn added_shares_are_held_and_given_back_together() {
        let budget = BodyBudget::new(10 * 1024);
        let mut held = None;
        assert!(budget.try_add(&mut held, 4 * 1024));
        assert!(budget.try_add(&mut held, 4 * 1024));
        assert!(!budget.try_add(&mut held, 4 * 1024), "only 2 KiB left");
        drop(held);
        assert!(budget.try_take(10 * 1024).is_some());
    }

    #[test]
    fn idle_after_large_bodies_once_per_quiet_spell() {
        let budget = BodyBudget::new(4 * LARGE_SHARE_BYTES);
        let small = budget.try_take(1024).expect("fits");
        drop(small);
        assert!(
            !budget.idle_after_large_bodies(),
            "only small bodies so far"
        );
        let large = budget.try_take(LARGE_SHARE_BYTES).expect("fits");
        assert!(!budget.idle_after_large_bodies(), "still held");
        drop(large);
        assert!(budget.idle_after_large_bodies());
        assert!(!budget.idle_after_large_bodies(), "once per spell");

        // Small pieces that add up to a large body count as one.
        let mut held = None;
        for _ in 0..1024 {
            assert!(budget.try_add(&mut held, 1024));
        }
        drop(held);
        assert!(budget.idle_after_large_bodies());
    }
}
