//! When to try a request again, and how long to wait first.
//!
//! A live session cannot wait long for one utterance: a few attempts with full-jitter
//! exponential backoff (so N workers that failed together do not retry together), a
//! server's `Retry-After` honoured up to a cap, and then the utterance is skipped with
//! the reason and the session goes on; the next utterance tries again, so scoring
//! resumes by itself when the server is back.

use std::time::Duration;

/// How often and how patiently a request is retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Tries per request, the first included (at least 1).
    pub attempts: u32,
    /// Backoff before the second try; doubled for each further one.
    pub base_delay: Duration,
    /// Longest wait between two tries, `Retry-After` included.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(5),
        }
    }
}

/// What one failed try calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Worth another try (overload, server error, connection trouble), after the
    /// server's `Retry-After` if it gave one.
    Retry(Option<Duration>),
    /// Trying again would get the same answer (bad request, bad key, unknown model).
    Fail,
}

/// The verdict on an HTTP status: 429 (too many requests), 408 and 5xx are worth
/// another try; other client errors are not.
pub fn classify_status(status: u16, retry_after: Option<Duration>) -> Verdict {
    match status {
        408 | 429 | 500..=599 => Verdict::Retry(retry_after),
        _ => Verdict::Fail,
    }
}

/// A `Retry-After` header value in seconds (the HTTP-date form is rare from model
/// servers and is ignored: the backoff applies instead).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

impl RetryPolicy {
    /// The wait after failed try number `attempt` (1 = the first try): the server's
    /// `Retry-After` if given, else a uniformly random wait up to `base · 2^(attempt-1)`
    /// ("full jitter"); both capped at `max_delay`.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(d) = retry_after {
            return d.min(self.max_delay);
        }
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max_delay);
        exp.mul_f64(fastrand::f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_worth_a_retry() {
        assert_eq!(classify_status(429, None), Verdict::Retry(None));
        assert_eq!(classify_status(503, None), Verdict::Retry(None));
        assert_eq!(classify_status(500, None), Verdict::Retry(None));
        assert_eq!(classify_status(400, None), Verdict::Fail);
        assert_eq!(classify_status(401, None), Verdict::Fail);
        assert_eq!(classify_status(404, None), Verdict::Fail);
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(parse_retry_after(" 2 "), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2026 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(p.delay(1, Some(Duration::from_secs(600))), p.max_delay);
    }

    #[test]
    fn backoff_is_jittered_and_bounded() {
        let p = RetryPolicy::default();
        let waits: Vec<Duration> = (0..200).map(|_| p.delay(3, None)).collect();
        assert!(waits.iter().all(|w| *w <= p.base_delay * 4));
        // Full jitter: the waits spread over the window instead of all being equal.
        let min = waits.iter().min().copied().unwrap_or_default();
        let max = waits.iter().max().copied().unwrap_or_default();
        assert!(max - min > p.base_delay, "{min:?}..{max:?}");
        assert!((0..50).all(|_| p.delay(30, None) <= p.max_delay));
    }
}
