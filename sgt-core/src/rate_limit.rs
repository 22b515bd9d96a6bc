//! Rate limits per caller (a source address, a username), kept in memory by each instance.

use std::hash::Hash;
use std::num::NonZeroU32;

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
}

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
        KeyedRateLimit { limit, limiter }
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
                if limiter.len() > 10_000 {
                    limiter.retain_recent();
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
    fn off_allows_everything() {
        let limit = KeyedRateLimit::new(RateLimit::OFF);
        assert!((0..10_000).all(|_| limit.allow(&1u32)));
    }
}
