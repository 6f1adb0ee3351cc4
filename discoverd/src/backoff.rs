//! A growing pause between polls of something outside the daemon (Ironic's
//! power state): short at first, so a fast answer is seen at once, then
//! doubling up to a cap, so a slow one is not hammered.

use std::time::Duration;

/// The first pause and the cap of a [`Backoff`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffSettings {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for BackoffSettings {
    /// 100 ms, 200 ms, 400 ms, ... up to 2 s.
    fn default() -> Self {
        BackoffSettings {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
        }
    }
}

impl BackoffSettings {
    /// A new sequence of pauses.
    pub fn start(self) -> Backoff {
        Backoff {
            next: self.initial.min(self.max),
            max: self.max,
        }
    }
}

/// The pauses of one wait: `initial`, then doubled each time, never above
/// `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// The pause to take now; the following one is twice as long (capped).
    pub fn next_pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        pause
    }

    /// Sleeps for the next pause.
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_pause()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_the_initial_pause_up_to_the_cap() {
        let mut b = BackoffSettings::default().start();
        let ms: Vec<u128> = (0..7).map(|_| b.next_pause().as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 2000, 2000]);
    }

    #[test]
    fn a_cap_below_the_initial_pause_wins() {
        let mut b = BackoffSettings {
            initial: Duration::from_secs(1),
            max: Duration::from_millis(10),
        }
        .start();
        assert_eq!(b.next_pause(), Duration::from_millis(10));
        assert_eq!(b.next_pause(), Duration::from_millis(10));
    }
}
