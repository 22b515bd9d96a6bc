//! The memory all request bodies may take at once.
//!
//! The per-request limits bound one body; this bounds them together. Without it, 4,096
//! requests in flight, each with a 64 KiB gzip body that inflates to the 64 MiB log limit,
//! would ask for 256 GiB. The server charges each request's declared `Content-Length` before
//! its body is read, and decoders charge the bytes they inflate; a request that would pass
//! the budget is answered 503 with an `error` body, which osquery treats as a failure: it
//! keeps its data and retries.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget is counted in units of this many bytes.
const UNIT: u64 = 1024;

/// A share of the budget, given back when dropped.
pub(crate) type BodyShare = OwnedSemaphorePermit;

/// The bytes of request bodies (received or inflated) that may be held at once. Cloning
/// shares the budget.
#[derive(Debug, Clone)]
pub(crate) struct BodyBudget(Arc<Semaphore>);

impl BodyBudget {
    /// A budget of `bytes` (rounded up to whole KiB).
    pub(crate) fn new(bytes: u64) -> Self {
        let units = usize::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        BodyBudget(Arc::new(Semaphore::new(units)))
    }

    /// Takes `bytes` from the budget until the share is dropped; `None` when the budget has
    /// not that much left.
    pub(crate) fn try_take(&self, bytes: u64) -> Option<BodyShare> {
        let units = u32::try_from(bytes.div_ceil(UNIT)).ok()?;
        Arc::clone(&self.0).try_acquire_many_owned(units).ok()
    }

    /// Takes `bytes` more into `held`, the share a request holds so far; false when the
    /// budget has not that much left.
    pub(crate) fn try_add(&self, held: &mut Option<BodyShare>, bytes: u64) -> bool {
        let Some(share) = self.try_take(bytes) else {
            return false;
        };
        match held {
            Some(held) => held.merge(share),
            None => *held = Some(share),
        }
        true
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
}
