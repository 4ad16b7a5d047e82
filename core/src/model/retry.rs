//! When to send a failed model request again, and how long to wait first.

use std::time::Duration;

use crate::vocab::ModelError;

/// Jittered exponential backoff that honours the server's Retry-After.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt; 0 disables retrying.
    pub max_retries: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0-based) after `error`, or `None` when the error
    /// must not be retried or the retries are used up. `jitter` is uniform in [0, 1).
    pub fn next_delay(&self, retry: u32, error: &ModelError, jitter: f64) -> Option<Duration> {
        if !error.class.retryable() || retry >= self.max_retries {
            return None;
        }
        if let Some(wait) = error.retry_after {
            // The server said when; waiting less only earns another 429.
            return Some(wait.min(self.max_delay));
        }
        let exp = self
            .base_delay
            .saturating_mul(1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX))
            .min(self.max_delay);
        // "Equal jitter": half fixed, half random, so concurrent retries spread out but none
        // retries immediately.
        Some(exp.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0)))
    }
}

/// Parses a Retry-After header given in seconds (`"2"`, `"1.5"`). HTTP dates are not used by
/// model providers and yield `None`, which falls back to the backoff schedule.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: f64 = value.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

/// A small xorshift generator for jitter: no dependency, and good enough to de-synchronise
/// retries.
pub struct Jitter(u64);

impl Jitter {
    pub fn seeded(seed: u64) -> Self {
        Jitter(seed | 1)
    }

    pub fn next_unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::ErrorClass;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let e = ModelError::new(ErrorClass::Server, "503");
        assert_eq!(
            policy().next_delay(0, &e, 0.0),
            Some(Duration::from_millis(50))
        );
        assert_eq!(
            policy().next_delay(0, &e, 1.0),
            Some(Duration::from_millis(100))
        );
        assert_eq!(
            policy().next_delay(1, &e, 1.0),
            Some(Duration::from_millis(200))
        );
        assert_eq!(
            policy().next_delay(2, &e, 1.0),
            Some(Duration::from_millis(350))
        );
        assert_eq!(policy().next_delay(3, &e, 1.0), None, "retries used up");
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let mut e = ModelError::new(ErrorClass::RateLimited, "429");
        e.retry_after = Some(Duration::from_millis(300));
        assert_eq!(
            policy().next_delay(0, &e, 0.0),
            Some(Duration::from_millis(300))
        );
        e.retry_after = Some(Duration::from_secs(10));
        assert_eq!(
            policy().next_delay(0, &e, 0.0),
            Some(Duration::from_millis(350))
        );
    }

    #[test]
    fn permanent_errors_are_never_retried() {
        for class in [
            ErrorClass::ContextLength,
            ErrorClass::Quota,
            ErrorClass::Auth,
        ] {
            assert_eq!(
                policy().next_delay(0, &ModelError::new(class, "no"), 0.5),
                None
            );
        }
    }

    #[test]
    fn retry_after_parses_seconds_only() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after(" 0.25 "),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn jitter_stays_in_range() {
        let mut j = Jitter::seeded(42);
        for _ in 0..1000 {
            let x = j.next_unit();
            assert!((0.0..1.0).contains(&x));
        }
    }
}
