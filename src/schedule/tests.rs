use super::*;
use crate::trigger::TriggerQueue;
use chrono::SubsecRound;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn at(s: &str) -> NaiveTime {
    NaiveTime::parse_from_str(s, "%H:%M").unwrap()
}

const BERLIN: Tz = chrono_tz::Europe::Berlin;

/// Run the real scheduler loop under paused tokio time and return the wall
/// times at which the first `n` triggers arrived.
async fn fires(mode: Mode, jitter: Duration, tz: Tz, base: &str, n: usize) -> Vec<DateTime<Utc>> {
    tokio::time::pause();
    let clock = Arc::new(TokioClock::new(utc(base)));
    let queue = Arc::new(TriggerQueue::new());
    let (tx, _rx) = watch::channel(None);
    let stop = CancellationToken::new();
    let schedule = Schedule { mode, timezone: Some(tz), run_on_start: false, jitter };
    let task = tokio::spawn(run(schedule, tz, clock.clone(), queue.clone(), tx, stop.clone()));
    let mut out = Vec::new();
    while out.len() < n {
        let t = queue.next().await.unwrap();
        assert_eq!(t.kind, TriggerKind::Schedule);
        // tokio's timer has millisecond granularity and rounds up.
        out.push(clock.now().trunc_subsecs(0));
        queue.done();
    }
    stop.cancel();
    task.await.unwrap();
    out
}

#[tokio::test]
async fn interval_fires_every_period() {
    let got = fires(Mode::Interval { every: Duration::from_secs(1800) }, Duration::ZERO, Tz::UTC, "2026-01-01T00:00:00Z", 3).await;
    assert_eq!(got, vec![utc("2026-01-01T00:30:00Z"), utc("2026-01-01T01:00:00Z"), utc("2026-01-01T01:30:00Z")]);
}

#[tokio::test]
async fn daily_keeps_local_time_across_the_spring_forward_change() {
    // Berlin moves from CET (+1) to CEST (+2) at 02:00 on 2026-03-29, so
    // 02:30 does not exist that day: it fires at 03:30 CEST (= 02:30 CET).
    let got = fires(Mode::Daily { at: at("02:30") }, Duration::ZERO, BERLIN, "2026-03-27T12:00:00Z", 3).await;
    assert_eq!(got, vec![utc("2026-03-28T01:30:00Z"), utc("2026-03-29T01:30:00Z"), utc("2026-03-30T00:30:00Z")]);
}

#[tokio::test]
async fn daily_fires_once_on_the_fall_back_day() {
    // 02:30 happens twice in Berlin on 2026-10-25: fire at the first one only.
    let got = fires(Mode::Daily { at: at("02:30") }, Duration::ZERO, BERLIN, "2026-10-24T12:00:00Z", 3).await;
    assert_eq!(got, vec![utc("2026-10-25T00:30:00Z"), utc("2026-10-26T01:30:00Z"), utc("2026-10-27T01:30:00Z")]);
}

#[tokio::test]
async fn weekly_fires_on_the_weekday_in_the_zone() {
    // 2026-11-18 is a Wednesday.
    let mode = Mode::Weekly { weekday: Weekday::Mon, at: at("09:00") };
    let got = fires(mode, Duration::ZERO, chrono_tz::Asia::Shanghai, "2026-11-18T00:00:00Z", 2).await;
    assert_eq!(got, vec![utc("2026-11-23T01:00:00Z"), utc("2026-11-30T01:00:00Z")]);
}

#[tokio::test]
async fn monthly_last_follows_month_ends_including_february() {
    let mode = Mode::Monthly { day: MonthDay::Last, at: at("23:00") };
    let got = fires(mode, Duration::ZERO, Tz::UTC, "2027-01-15T00:00:00Z", 4).await;
    assert_eq!(
        got,
        vec![utc("2027-01-31T23:00:00Z"), utc("2027-02-28T23:00:00Z"), utc("2027-03-31T23:00:00Z"), utc("2027-04-30T23:00:00Z")]
    );
    // A leap year's February ends on the 29th.
    let leap = Mode::Monthly { day: MonthDay::Last, at: at("23:00") };
    assert_eq!(leap.next_after(utc("2028-02-01T00:00:00Z"), Tz::UTC), Some(utc("2028-02-29T23:00:00Z")));
}

#[tokio::test]
async fn monthly_on_a_day_fires_once_a_month() {
    let mode = Mode::Monthly { day: MonthDay::Day(1), at: at("02:30") };
    let got = fires(mode, Duration::ZERO, BERLIN, "2026-11-21T00:00:00Z", 2).await;
    assert_eq!(got, vec![utc("2026-12-01T01:30:00Z"), utc("2027-01-01T01:30:00Z")]);
}

#[tokio::test]
async fn cron_fires_in_the_zone() {
    let mode = Mode::Cron { expr: "0 30 2 * * *".into(), cron: Box::new(parse_cron("0 30 2 * * *").unwrap()) };
    let got = fires(mode, Duration::ZERO, BERLIN, "2026-11-21T12:00:00Z", 2).await;
    assert_eq!(got, vec![utc("2026-11-22T01:30:00Z"), utc("2026-11-23T01:30:00Z")]);
}

#[tokio::test]
async fn jitter_delays_within_its_bound() {
    let got = fires(Mode::Daily { at: at("02:00") }, Duration::from_secs(600), Tz::UTC, "2026-11-21T12:00:00Z", 3).await;
    for (i, t) in got.iter().enumerate() {
        let planned = utc("2026-11-22T02:00:00Z") + chrono::Duration::days(i as i64);
        assert!(*t >= planned && *t <= planned + chrono::Duration::seconds(600), "{t} not within 10m after {planned}");
    }
}

#[tokio::test]
async fn manual_never_fires() {
    tokio::time::pause();
    let queue = Arc::new(TriggerQueue::new());
    let (tx, rx) = watch::channel(Some(utc("2026-01-01T00:00:00Z")));
    let s = Schedule { mode: Mode::Manual, ..Schedule::default() };
    run(s, Tz::UTC, Arc::new(TokioClock::new(utc("2026-01-01T00:00:00Z"))), queue.clone(), tx, CancellationToken::new()).await;
    assert_eq!(*rx.borrow(), None);
    let waited = tokio::time::timeout(Duration::from_secs(86_400 * 30), queue.next()).await;
    assert!(waited.is_err());
}

#[tokio::test]
async fn the_next_fire_time_is_published() {
    tokio::time::pause();
    let queue = Arc::new(TriggerQueue::new());
    let (tx, mut rx) = watch::channel(None);
    let stop = CancellationToken::new();
    let s = Schedule { mode: Mode::Daily { at: at("02:30") }, timezone: Some(BERLIN), ..Schedule::default() };
    let clock = Arc::new(TokioClock::new(utc("2026-11-21T12:00:00Z")));
    let task = tokio::spawn(run(s, BERLIN, clock, queue, tx, stop.clone()));
    rx.changed().await.unwrap();
    assert_eq!(*rx.borrow(), Some(utc("2026-11-22T01:30:00Z")));
    stop.cancel();
    task.await.unwrap();
}

#[test]
fn cron_expressions_need_six_fields() {
    assert!(parse_cron("0 30 2 * * *").is_ok());
    assert!(parse_cron("30 2 * * *").is_err());
    assert!(parse_cron("0 61 2 * * *").is_err());
}
