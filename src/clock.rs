//! The server's wall clock, which tests can move forward.
//!
//! Only what is counted by calendar day reads it (the daily token budget);
//! durations use `Instant`. A test advances it instead of sleeping a day.

use std::{
    sync::{
        atomic::{AtomicI64, Ordering},
        Arc,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

const DAY_MS: i64 = 24 * 3600 * 1000;

/// System time plus an offset (zero outside tests); cheap to clone.
#[derive(Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    pub fn system() -> Self {
        Self::default()
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        let system = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        system + self.offset_ms.load(Ordering::Relaxed)
    }

    /// Today as days since the epoch, UTC.
    pub fn today(&self) -> i64 {
        self.now_ms().div_euclid(DAY_MS)
    }

    /// Time left until the next UTC midnight.
    pub fn until_tomorrow(&self) -> Duration {
        let left = DAY_MS - self.now_ms().rem_euclid(DAY_MS);
        Duration::from_millis(left as u64)
    }

    /// Moves this clock (and every clone) forward.
    pub fn advance(&self, by: Duration) {
        self.offset_ms.fetch_add(by.as_millis() as i64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_a_day_changes_the_day_in_every_clone() {
        let clock = Clock::system();
        let other = clock.clone();
        let today = clock.today();
        assert!(clock.until_tomorrow() <= Duration::from_secs(24 * 3600));
        other.advance(Duration::from_secs(24 * 3600));
        assert_eq!(clock.today(), today + 1);
    }
}
