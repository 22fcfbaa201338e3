//! The shared pause of an import: when the API answers 429, every worker waits until the same
//! instant, instead of each backing off on its own and the others carrying on at full speed.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A "not before" instant that all workers wait on before sending.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    not_before: Mutex<Option<Instant>>,
}

impl Gate {
    fn current(&self) -> Option<Instant> {
        *self.not_before.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until the pause, if any, is over. A pause extended while waiting is waited for too.
    pub(crate) async fn wait(&self) {
        while let Some(until) = self.current() {
            if until <= Instant::now() {
                return;
            }
            tokio::time::sleep_until(until).await;
        }
    }

    /// Pauses every worker for `wait` from now, at most `cap`, unless a longer pause is already
    /// set: several 429s in a row extend the pause to the latest `Retry-After`, never shorten it.
    /// The cap keeps any `Retry-After` from hanging the import or overflowing the clock.
    pub(crate) fn pause(&self, wait: Duration, cap: Duration) {
        // A day at most whatever the cap: far from any overflow of the clock.
        let wait = wait.min(cap).min(Duration::from_secs(86_400));
        let Some(until) = Instant::now().checked_add(wait) else {
            return;
        };
        let mut not_before = self.not_before.lock().unwrap_or_else(|p| p.into_inner());
        if not_before.is_none_or(|current| current < until) {
            *not_before = Some(until);
        }
    }

    /// How long the current pause still lasts, if any.
    pub(crate) fn remaining(&self) -> Option<Duration> {
        self.current()
            .map(|until| until.saturating_duration_since(Instant::now()))
            .filter(|left| !left.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: Duration = Duration::from_secs(30);

    #[tokio::test(start_paused = true)]
    async fn a_huge_pause_is_capped_and_never_overflows() {
        let gate = Gate::default();
        gate.pause(Duration::MAX, CAP);
        assert_eq!(gate.remaining(), Some(CAP));
        gate.pause(Duration::from_secs(u64::MAX / 2), Duration::MAX);
        assert!(gate.remaining().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn every_waiter_waits_for_the_longest_pause() {
        let gate = std::sync::Arc::new(Gate::default());
        let start = Instant::now();
        gate.wait().await;
        assert_eq!(start.elapsed(), Duration::ZERO, "no pause, no wait");
        gate.pause(Duration::from_secs(3), CAP);
        gate.pause(Duration::from_secs(1), CAP);
        assert_eq!(gate.remaining(), Some(Duration::from_secs(3)));
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let gate = std::sync::Arc::clone(&gate);
                tokio::spawn(async move {
                    gate.wait().await;
                    Instant::now()
                })
            })
            .collect();
        for waiter in waiters {
            let woke = waiter.await.unwrap();
            assert_eq!(woke - start, Duration::from_secs(3));
        }
        assert_eq!(gate.remaining(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_set_while_waiting_is_honoured() {
        let gate = std::sync::Arc::new(Gate::default());
        let start = Instant::now();
        gate.pause(Duration::from_secs(1), CAP);
        let waiter = {
            let gate = std::sync::Arc::clone(&gate);
            tokio::spawn(async move {
                gate.wait().await;
                Instant::now()
            })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        gate.pause(Duration::from_secs(2), CAP);
        assert_eq!(waiter.await.unwrap() - start, Duration::from_millis(2500));
    }
}
