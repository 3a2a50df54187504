//! The controller's notion of "now", driven by tokio's clock so that tests with
//! `tokio::time::pause()` control it (readiness, minReadySeconds, progress deadlines).

use std::time::Duration;

use berth_api::Time;

/// Wall-clock time derived from tokio's monotonic clock: the wall time at creation plus the
/// tokio time elapsed since. Cheap to clone; every clone shows the same time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin_wall: jiff::Timestamp,
    origin: tokio::time::Instant,
}

impl Clock {
    /// A clock that starts at the current wall time. Call it inside a tokio runtime (with paused
    /// time, the clock then only moves when tokio time does).
    pub fn new() -> Self {
        Self::starting_at(jiff::Timestamp::now())
    }

    /// A clock that reads `wall` now.
    pub fn starting_at(wall: jiff::Timestamp) -> Self {
        Self {
            origin_wall: wall,
            origin: tokio::time::Instant::now(),
        }
    }

    pub fn now(&self) -> Time {
        Time(self.timestamp())
    }

    pub fn timestamp(&self) -> jiff::Timestamp {
        let elapsed = jiff::SignedDuration::try_from(self.origin.elapsed())
            .unwrap_or(jiff::SignedDuration::MAX);
        self.origin_wall
            .checked_add(elapsed)
            .unwrap_or(jiff::Timestamp::MAX)
    }

    /// How long from now until `at`; zero if it has passed.
    pub fn until(&self, at: jiff::Timestamp) -> Duration {
        let delta = at.duration_since(self.timestamp());
        Duration::try_from(delta).unwrap_or(Duration::ZERO)
    }

    /// Whole seconds from `since` until now (negative if `since` is in the future).
    pub fn seconds_since(&self, since: Time) -> f64 {
        self.timestamp().duration_since(since.0).as_secs_f64()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn follows_paused_tokio_time() {
        let start: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let clock = Clock::starting_at(start);
        assert_eq!(clock.timestamp(), start);
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(clock.now().to_string(), "2026-01-01T00:01:30Z");
        assert_eq!(
            clock.until(start + jiff::SignedDuration::from_secs(100)),
            Duration::from_secs(10)
        );
        assert_eq!(clock.until(start), Duration::ZERO);
        assert_eq!(clock.seconds_since(Time(start)), 90.0);
    }
}
