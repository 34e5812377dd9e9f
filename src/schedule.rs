//! When runs happen: the `[schedule]` modes as a pure "next fire time after
//! t" function, and the task that sleeps until then and pushes a trigger into
//! the worker's queue (which coalesces, so runs never overlap).
//!
//! Calendar modes are computed in the configured IANA zone. A wall-clock time
//! that does not exist on a spring-forward day (02:30 in Berlin on the last
//! Sunday of March) fires at the same instant the old offset gives it, which
//! reads as 03:30; a time that occurs twice on a fall-back day fires once, at
//! the first occurrence. Cron expressions are parsed exactly as
//! tokio-cron-scheduler parses them (croner, six fields with seconds).
//!
//! The loop takes a [`Clock`], so tests drive it with paused tokio time.

pub use crate::clock::{Clock, SystemClock, TokioClock};
use crate::trigger::{Trigger, TriggerKind, TriggerQueue};
use chrono::{DateTime, Datelike, Days, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The day of the month for `mode = "monthly"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MonthDay {
    /// 1..=28, so every month has it.
    Day(u32),
    /// The last day of each month.
    Last,
}

#[derive(Clone, Debug)]
pub enum Mode {
    /// Only manual triggers (POST /sync, `orgsync trigger`, SIGUSR1).
    Manual,
    Interval {
        every: Duration,
    },
    Daily {
        at: NaiveTime,
    },
    Weekly {
        weekday: Weekday,
        at: NaiveTime,
    },
    Monthly {
        day: MonthDay,
        at: NaiveTime,
    },
    Cron {
        expr: String,
        cron: Box<croner::Cron>,
    },
}

pub const MODES: &[&str] = &["manual", "interval", "daily", "weekly", "monthly", "cron"];

/// Parse a cron expression the way tokio-cron-scheduler does.
pub fn parse_cron(expr: &str) -> Result<croner::Cron, croner::errors::CronError> {
    croner::parser::CronParser::builder().seconds(croner::parser::Seconds::Required).build().parse(expr)
}

/// `[schedule]`, validated.
#[derive(Clone, Debug)]
pub struct Schedule {
    pub mode: Mode,
    /// `timezone`; `None` means the system zone, resolved at start.
    pub timezone: Option<Tz>,
    /// `run_on_start`: one run when the daemon starts. Default true.
    pub run_on_start: bool,
    /// `jitter`: a random delay up to this is added to each scheduled run. Default 0.
    pub jitter: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Self { mode: Mode::Manual, timezone: None, run_on_start: true, jitter: Duration::ZERO }
    }
}

impl Schedule {
    /// The configured zone, else the system's, else UTC.
    pub fn zone(&self) -> Tz {
        self.timezone.unwrap_or_else(system_zone)
    }

    /// Whether `other` fires at the same times (a reload that keeps them
    /// keeps the next run's time too).
    pub fn same_timing(&self, other: &Schedule) -> bool {
        self.describe() == other.describe() && self.timezone == other.timezone && self.jitter == other.jitter
    }

    /// A short description for logs and `/status`.
    pub fn describe(&self) -> String {
        match &self.mode {
            Mode::Manual => "manual".into(),
            Mode::Interval { every } => format!("every {}", humantime::format_duration(*every)),
            Mode::Daily { at } => format!("daily at {}", at.format("%H:%M")),
            Mode::Weekly { weekday, at } => format!("weekly on {weekday} at {}", at.format("%H:%M")),
            Mode::Monthly { day: MonthDay::Day(d), at } => format!("monthly on day {d} at {}", at.format("%H:%M")),
            Mode::Monthly { day: MonthDay::Last, at } => format!("monthly on the last day at {}", at.format("%H:%M")),
            Mode::Cron { expr, .. } => format!("cron \"{expr}\""),
        }
    }
}

pub fn system_zone() -> Tz {
    iana_time_zone::get_timezone().ok().and_then(|n| n.parse().ok()).unwrap_or(Tz::UTC)
}

impl Mode {
    /// The first fire time strictly after `after`; `None` for `manual`.
    /// For `interval` this is simply `after + every`: the loop passes the
    /// previous fire time.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let on_days = |matches: &dyn Fn(NaiveDate) -> bool, at: NaiveTime, span: u64| {
            let start = after.with_timezone(&tz).date_naive();
            (0..span)
                .filter_map(|i| start.checked_add_days(Days::new(i)))
                .filter(|d| matches(*d))
                .map(|d| local(tz, d.and_time(at)))
                .find(|t| *t > after)
        };
        match self {
            Mode::Manual => None,
            Mode::Interval { every } => chrono::Duration::from_std(*every).ok().and_then(|d| after.checked_add_signed(d)),
            Mode::Daily { at } => on_days(&|_| true, *at, 3),
            Mode::Weekly { weekday, at } => on_days(&|d| d.weekday() == *weekday, *at, 9),
            Mode::Monthly { day, at } => on_days(
                &|d| match day {
                    MonthDay::Day(n) => d.day() == *n,
                    MonthDay::Last => d.checked_add_days(Days::new(1)).is_some_and(|n| n.day() == 1),
                },
                *at,
                64,
            ),
            Mode::Cron { cron, .. } => cron.find_next_occurrence(&after.with_timezone(&tz), false).ok().map(|t| t.with_timezone(&Utc)),
        }
    }
}

/// A local wall-clock time as an instant: the earlier of two on a fall-back
/// day; on a spring-forward day a time in the gap is read with the offset in
/// force just before the gap (02:30 CET = 03:30 CEST).
fn local(tz: Tz, t: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&t) {
        LocalResult::Single(x) | LocalResult::Ambiguous(x, _) => x.with_timezone(&Utc),
        LocalResult::None => {
            let before =
                tz.from_local_datetime(&(t - chrono::Duration::hours(3))).earliest().map(|x| x.offset().fix()).unwrap_or_else(|| Utc.fix());
            DateTime::<Utc>::from_naive_utc_and_offset(t - chrono::Duration::seconds(i64::from(before.local_minus_utc())), Utc)
        }
    }
}

/// Sleep in slices of at most a minute, so a wall clock that jumps (NTP,
/// suspend) is noticed. Returns false when stopped.
async fn sleep_until(clock: &dyn Clock, at: DateTime<Utc>, stop: &CancellationToken) -> bool {
    loop {
        let now = clock.now();
        if now >= at {
            return true;
        }
        let wait = (at - now).to_std().unwrap_or_default().min(Duration::from_secs(60));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return false,
        }
    }
}

/// Push a `schedule` trigger at every fire time until `stop`. The next fire
/// time (with its jitter) is published on `next_fire` and logged.
pub async fn run(
    schedule: Schedule,
    tz: Tz,
    clock: Arc<dyn Clock>,
    queue: Arc<TriggerQueue>,
    next_fire: watch::Sender<Option<DateTime<Utc>>>,
    stop: CancellationToken,
) {
    let mut prev = clock.now();
    loop {
        let Some(next) = schedule.mode.next_after(prev, tz) else {
            next_fire.send_replace(None);
            tracing::info!(schedule = %schedule.describe(), "No scheduled runs: manual triggers only (POST /sync, orgsync trigger, SIGUSR1)");
            return;
        };
        let jitter = if schedule.jitter.is_zero() {
            Duration::ZERO
        } else {
            Duration::from_millis(rand::random_range(0..=schedule.jitter.as_millis() as u64))
        };
        let fire_at = next + chrono::Duration::from_std(jitter).unwrap_or_default();
        next_fire.send_replace(Some(fire_at));
        tracing::info!(next_run = %fire_at.with_timezone(&tz).to_rfc3339_opts(chrono::SecondsFormat::Secs, false), schedule = %schedule.describe(), "Next scheduled run");
        if !sleep_until(clock.as_ref(), fire_at, &stop).await {
            return;
        }
        queue.push(Trigger { kind: TriggerKind::Schedule, allow_deletes: 0, approved: None, only: None, events: Vec::new() });
        let now = clock.now();
        prev = match schedule.mode {
            // Keep the interval's cadence, but don't replay runs missed
            // while the machine slept.
            Mode::Interval { every } if now - next < chrono::Duration::from_std(every).unwrap_or_default() => next,
            _ => now.max(next),
        };
    }
}

#[cfg(test)]
mod tests;
