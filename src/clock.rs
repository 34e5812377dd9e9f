//! Wall-clock time, passed in so tests can drive it: the schedule, the
//! mirror's timestamps and a run's duration all read it.

use chrono::{DateTime, Utc};

/// Wall-clock time, passed in so tests can drive it.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

#[derive(Debug)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Wall time = `base` + tokio time elapsed since creation, so that
/// `tokio::time::pause()` moves it.
#[derive(Debug)]
pub struct TokioClock {
    base: DateTime<Utc>,
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn new(base: DateTime<Utc>) -> Self {
        Self { base, start: tokio::time::Instant::now() }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = chrono::Duration::from_std(self.start.elapsed()).unwrap_or_default();
        self.base + elapsed
    }
}
