//! Rate limits per caller (a source address, a username), kept in memory by each instance.

use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};

use governor::{DefaultKeyedRateLimiter, Quota};

/// How often one caller may do something: `burst` at once, then `per_minute` a minute.
/// `per_minute` 0 turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Allowed at once, after a quiet period.
    pub burst: u32,
    /// Allowed each minute after the burst is spent.
    pub per_minute: u32,
}

impl RateLimit {
    /// No limit.
    pub const OFF: RateLimit = RateLimit {
        burst: 0,
        per_minute: 0,
    };
}

/// A [`RateLimit`] applied to each key on its own.
pub struct KeyedRateLimit<K: Hash + Eq + Clone> {
    limit: RateLimit,
    limiter: Option<DefaultKeyedRateLimiter<K>>,
    /// Past this many keys, keys back at their full allowance are dropped; then it is set to
    /// twice the keys left (at least [`MIN_KEYS_BEFORE_CLEANUP`]), so cleanup costs O(1) per
    /// call on average even when most keys are recent.
    cleanup_at: AtomicUsize,
}

/// Keys kept before the first cleanup.
const MIN_KEYS_BEFORE_CLEANUP: usize = 10_000;

impl<K: Hash + Eq + Clone> std::fmt::Debug for KeyedRateLimit<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedRateLimit")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone> KeyedRateLimit<K> {
    /// A limiter enforcing `limit` per key.
    pub fn new(limit: RateLimit) -> Self {
        let limiter = NonZeroU32::new(limit.per_minute).map(|per_minute| {
            let burst = NonZeroU32::new(limit.burst).unwrap_or(NonZeroU32::MIN);
            DefaultKeyedRateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst))
        });
        KeyedRateLimit {
            limit,
            limiter,
            cleanup_at: AtomicUsize::new(MIN_KEYS_BEFORE_CLEANUP),
        }
    }

    /// The limit enforced.
    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// True when `key` may go ahead now, which uses up one of its allowance.
    pub fn allow(&self, key: &K) -> bool {
        match &self.limiter {
            None => true,
            Some(limiter) => {
                let allowed = limiter.check_key(key).is_ok();
                // Keys back at their full allowance carry no information: drop them now
                // and then, so memory follows the callers active in the last minutes.
                if limiter.len() > self.cleanup_at.load(Ordering::Relaxed) {
                    limiter.retain_recent();
                    let next = (limiter.len() * 2).max(MIN_KEYS_BEFORE_CLEANUP);
                    self.cleanup_at.store(next, Ordering::Relaxed);
                }
                allowed
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_gets_its_burst_then_waits() {
        let limit = KeyedRateLimit::new(RateLimit {
            burst: 3,
            per_minute: 1,
        });
        for _ in 0..3 {
            assert!(limit.allow(&"a"));
        }
        assert!(!limit.allow(&"a"), "the burst is spent");
        assert!(limit.allow(&"b"), "another key is not affected");
    }

    #[test]
    fn many_recent_keys_are_kept_and_cleanup_stays_cheap() {
        let limit = KeyedRateLimit::new(RateLimit {
            burst: 3,
            per_minute: 1,
        });
        for key in 0..50_000u32 {
            assert!(limit.allow(&key));
        }
        // Every key is recent (it used part of its burst), so none may be forgotten, and the
        // cleanup threshold has moved past the key count instead of scanning on every call.
        assert_eq!(limit.limiter.as_ref().unwrap().len(), 50_000);
        assert!(limit.cleanup_at.load(Ordering::Relaxed) >= 50_000);
        for _ in 0..2 {
            assert!(limit.allow(&7));
        }
        assert!(!limit.allow(&7));
    }

    #[test]
    fn off_allows_everything() {
        let limit = KeyedRateLimit::new(RateLimit::OFF);
        assert!((0..10_000).all(|_| limit.allow(&1u32)));
    }
}
