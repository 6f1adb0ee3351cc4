//! The retry rules of the Ironic client: which failures are transient,
//! how long to pause (exponential back-off with jitter, or what
//! `Retry-After` asks), and the budget of time a call may spend on them.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use tokio::time::Instant;

/// How hard to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Time one call may spend retrying transient failures (0: one try).
    pub budget: Duration,
    /// First pause; doubled after each failure, up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Tries on 409 "node locked" (1.0's `ironic_conflict_retries`)...
    pub conflict_attempts: u32,
    /// ...and the pause between them (`ironic_conflict_retry_period`).
    pub conflict_period: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            budget: Duration::from_secs(120),
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(15),
            conflict_attempts: 12,
            conflict_period: Duration::from_secs(5),
        }
    }
}

tokio::task_local! {
    /// Set by [`within_budget`]: when the calls of this task stop retrying.
    static DEADLINE: Instant;
}

/// Runs `f` so that every Ironic call it makes (in this task: spawned
/// background work is not included) stops retrying `budget` from now, or
/// earlier if the client's policy says so. A synchronous caller that must
/// answer in time (a ramdisk report) wraps its calls in this.
pub async fn within_budget<F: std::future::Future>(budget: Duration, f: F) -> F::Output {
    DEADLINE.scope(Instant::now() + budget, f).await
}

/// The deadline [`within_budget`] set for this task, if any.
pub fn current_deadline() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

/// Is this answer worth another try? (408, 409, 429, 5xx.)
pub fn transient_status(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::REQUEST_TIMEOUT | StatusCode::CONFLICT | StatusCode::TOO_MANY_REQUESTS
    ) || status.is_server_error()
}

/// `Retry-After` as delta-seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// The state of one call's retries.
#[derive(Debug)]
pub struct Budget {
    started: Instant,
    /// No new try after this.
    until: Instant,
    /// Tries so far.
    pub attempts: u32,
    /// 409 answers so far.
    pub conflicts: u32,
    /// An earlier try of a request that changes something may have been
    /// applied although its answer was lost (timeout, dropped connection,
    /// 5xx): a later answer must be read with that in mind.
    pub maybe_applied: bool,
}

impl Budget {
    /// `deadline` (when set) cuts the policy's budget short.
    pub fn new(policy: &RetryPolicy, deadline: Option<Instant>) -> Self {
        let started = Instant::now();
        let own = started + policy.budget;
        Budget {
            started,
            until: deadline.map_or(own, |d| d.min(own)),
            attempts: 0,
            conflicts: 0,
            maybe_applied: false,
        }
    }

    pub fn waited(&self) -> Duration {
        self.started.elapsed()
    }

    /// The pause before the next try, or `None` when the budget does not
    /// allow one. `asked` is the server's `Retry-After`.
    pub fn pause(&self, policy: &RetryPolicy, conflict: bool, asked: Option<Duration>) -> Option<Duration> {
        if conflict && self.conflicts >= policy.conflict_attempts {
            return None;
        }
        let own = if conflict {
            jitter(policy.conflict_period)
        } else {
            let exp = self.attempts.saturating_sub(1).min(20);
            jitter(policy.backoff.saturating_mul(1 << exp).min(policy.max_backoff))
        };
        let pause = asked.map_or(own, |a| a.max(own));
        (Instant::now() + pause < self.until).then_some(pause)
    }
}

/// Between half and all of `d` ("equal jitter"), so clients that failed
/// together do not retry together.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(0.5 + fastrand::f64() * 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(budget_ms: u64) -> RetryPolicy {
        RetryPolicy {
            budget: Duration::from_millis(budget_ms),
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(400),
            conflict_attempts: 3,
            conflict_period: Duration::from_millis(10),
        }
    }

    #[test]
    fn transient_statuses() {
        for s in [408, 409, 429, 500, 502, 503, 504] {
            assert!(
                transient_status(StatusCode::from_u16(s).unwrap_or_default()),
                "{s}"
            );
        }
        for s in [400, 401, 403, 404, 406, 413] {
            assert!(
                !transient_status(StatusCode::from_u16(s).unwrap_or_default()),
                "{s}"
            );
        }
    }

    #[tokio::test]
    async fn back_off_doubles_with_jitter_up_to_the_cap() {
        let p = policy(60_000);
        let mut b = Budget::new(&p, None);
        let mut seen = Vec::new();
        for _ in 0..6 {
            b.attempts += 1;
            seen.push(b.pause(&p, false, None).unwrap_or_default());
        }
        let bounds = [
            (50, 100),
            (100, 200),
            (200, 400),
            (200, 400),
            (200, 400),
            (200, 400),
        ];
        for (pause, (lo, hi)) in seen.iter().zip(bounds) {
            assert!(
                *pause >= Duration::from_millis(lo) && *pause <= Duration::from_millis(hi),
                "{seen:?}"
            );
        }
    }

    #[tokio::test]
    async fn the_budget_and_the_conflict_count_stop_retries() {
        let p = policy(150);
        let mut b = Budget::new(&p, None);
        b.attempts = 1;
        assert!(b.pause(&p, false, None).is_some());
        // Retry-After past the budget: give up now rather than sleep.
        assert_eq!(b.pause(&p, false, Some(Duration::from_secs(5))), None);
        b.conflicts = 3;
        assert_eq!(b.pause(&p, true, None), None);
        // A deadline shorter than the policy's budget wins.
        let b = Budget::new(&p, Some(Instant::now()));
        assert_eq!(b.pause(&p, false, None), None);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap_or_else(|_| unreachable!()));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(30));
        h.insert(RETRY_AFTER, later.parse().unwrap_or_else(|_| unreachable!()));
        let d = retry_after(&h).unwrap_or_default();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
    }
}
