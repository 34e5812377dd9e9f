//! Change events between their receipt and a run (`[source.events]`): each
//! is checked by its receiver (a callback route, or a stream), answered at
//! once, then handed here. An event is a hint: it names objects, and the
//! run reads them by id. Here events are
//! - de-duplicated by the vendor's event id (or, where the vendor gives
//!   none, the digest of the decrypted message: a redelivery is the same
//!   bytes), remembered for [`REMEMBERED`];
//! - coalesced: the events of one window (`[source.events] window`) become
//!   one trigger, which the queue merges further while a run is going;
//! - listed on the run they cause.
//!
//! The stream the service holds (DingTalk Stream, Feishu's long connection)
//! is kept up here too ([`hold_stream`]), and its state kept for `/readyz`,
//! `/status` and `orgsync_event_stream_up`.

use crate::reconcile::only::Only;
use crate::settings::Config;
use crate::sources::SourceConfig;
use crate::telemetry::m;
use crate::trigger::{Trigger, TriggerKind, TriggerQueue};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How long an event id is remembered: vendors redeliver within minutes
/// (DingTalk's SDK keeps acknowledged ids 5 minutes; Feishu retries at
/// 15 s and 5 min, then hours, when no answer came at all).
pub const REMEMBERED: Duration = Duration::from_secs(2 * 3600);
/// At most this many ids are remembered (the oldest are forgotten first).
const MAX_REMEMBERED: usize = 100_000;

/// What an event asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A run of these objects, read by id.
    Objects(Only),
    /// A full run (e.g. Feishu's contact scope changed).
    Everything,
}

/// One checked event.
#[derive(Clone, Debug)]
pub struct Event {
    pub source: &'static str,
    /// The vendor's event id, or the digest of the message.
    pub id: String,
    /// The vendor's event type (`user_add_org`, `contact.user.created_v3`, …).
    pub kind: String,
    pub change: Change,
}

/// What became of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It will be part of a run.
    Accepted,
    /// Its id was seen already: answered, not acted on again.
    Duplicate,
    /// It names nothing.
    Empty,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Duplicate => "duplicate",
            Outcome::Empty => "ignored",
        }
    }
}

/// An event not about users or departments: answered, counted, not acted on.
pub fn ignored(source: &'static str, what: &str) {
    tracing::debug!(source, event = what, "Event not about users or departments: ignored");
    metrics::counter!(m::EVENTS_TOTAL, "source" => source, "outcome" => "ignored").increment(1);
}

/// The digest a message without an event id is known by.
pub fn digest(message: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(message).iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// The state of a stream (a connection the service holds to the vendor).
#[derive(Clone, Debug, serde::Serialize)]
pub struct StreamState {
    pub source: &'static str,
    pub connected: bool,
    /// Since when it is connected, or down.
    pub since: DateTime<Utc>,
    /// Why it is down (never a secret).
    pub error: Option<String>,
    pub reconnects: u64,
}

#[derive(Debug, Default)]
struct Pending {
    /// `None`: a full run.
    only: Option<Only>,
    covers: Vec<String>,
}

#[derive(Debug, Default)]
struct State {
    seen: HashMap<String, Instant>,
    order: VecDeque<(Instant, String)>,
    pending: Option<Pending>,
    stream: Option<StreamState>,
}

/// Events on their way to the trigger queue.
#[derive(Debug)]
pub struct Events {
    queue: Arc<TriggerQueue>,
    state: Mutex<State>,
}

impl Events {
    pub fn new(queue: Arc<TriggerQueue>) -> Arc<Self> {
        Arc::new(Events { queue, state: Mutex::new(State::default()) })
    }

    /// Take a checked event: a duplicate is dropped, the rest wait for the
    /// window to close (at once with a zero window) and go to the queue as
    /// one trigger. Counted in `orgsync_events_total`.
    pub fn receive(self: &Arc<Self>, event: Event, window: Duration) -> Outcome {
        let outcome = self.take(&event, window);
        metrics::counter!(m::EVENTS_TOTAL, "source" => event.source, "outcome" => outcome.as_str()).increment(1);
        match outcome {
            Outcome::Accepted => tracing::info!(source = event.source, event = %event.kind, id = %event.id, "Change event accepted"),
            Outcome::Duplicate => {
                tracing::info!(source = event.source, event = %event.kind, id = %event.id, "Change event seen before: not acted on again")
            }
            Outcome::Empty => tracing::debug!(source = event.source, event = %event.kind, "Change event names no object: ignored"),
        }
        outcome
    }

    fn take(self: &Arc<Self>, event: &Event, window: Duration) -> Outcome {
        if matches!(&event.change, Change::Objects(o) if o.users.is_empty() && o.departments.is_empty()) {
            return Outcome::Empty;
        }
        let Ok(mut s) = self.state.lock() else { return Outcome::Empty };
        let now = Instant::now();
        while let Some((at, id)) = s.order.front().cloned() {
            if now.duration_since(at) < REMEMBERED && s.order.len() < MAX_REMEMBERED {
                break;
            }
            s.order.pop_front();
            s.seen.remove(&id);
        }
        let key = format!("{}:{}", event.source, event.id);
        if s.seen.contains_key(&key) {
            return Outcome::Duplicate;
        }
        s.seen.insert(key.clone(), now);
        s.order.push_back((now, key));
        let first = s.pending.is_none();
        let p = s.pending.get_or_insert_with(|| Pending { only: Some(Only::default()), covers: Vec::new() });
        p.only = match (p.only.take(), &event.change) {
            (Some(mut a), Change::Objects(b)) => {
                a.users.extend(b.users.iter().cloned());
                a.departments.extend(b.departments.iter().cloned());
                Some(a)
            }
            _ => None,
        };
        p.covers.push(format!("{} {}", event.kind, event.id));
        drop(s);
        if first {
            let me = self.clone();
            if window.is_zero() {
                me.flush();
            } else {
                tokio::spawn(async move {
                    tokio::time::sleep(window).await;
                    me.flush();
                });
            }
        }
        Outcome::Accepted
    }

    /// The window closed: its events go to the queue as one trigger.
    fn flush(&self) {
        let Some(p) = self.state.lock().ok().and_then(|mut s| s.pending.take()) else { return };
        let named = p.only.as_ref().map_or_else(|| "everything".to_owned(), ToString::to_string);
        let events = p.covers.len();
        let queued =
            self.queue.push(Trigger { kind: TriggerKind::Event, allow_deletes: 0, approved: None, only: p.only, events: p.covers });
        tracing::info!(events, only = %named, %queued, "Change events: a run of what they name");
    }

    /// The stream is connected (`true`) or down, with why.
    pub fn stream(&self, source: &'static str, connected: bool, error: Option<String>) {
        let Ok(mut s) = self.state.lock() else { return };
        let reconnects = s.stream.as_ref().map_or(0, |st| st.reconnects + u64::from(connected && !st.connected));
        let since = match &s.stream {
            Some(st) if st.connected == connected => st.since,
            _ => Utc::now(),
        };
        s.stream = Some(StreamState { source, connected, since, error: error.map(|e| crate::redact::redact(&e).into_owned()), reconnects });
        metrics::gauge!(m::EVENT_STREAM_UP, "source" => source).set(if connected { 1.0 } else { 0.0 });
    }

    /// The stream's state, when the service holds one.
    pub fn stream_state(&self) -> Option<StreamState> {
        self.state.lock().ok().and_then(|s| s.stream.clone())
    }

    /// The service no longer holds a stream (the config changed).
    pub fn no_stream(&self) {
        if let Ok(mut s) = self.state.lock()
            && let Some(st) = s.stream.take()
        {
            metrics::gauge!(m::EVENT_STREAM_UP, "source" => st.source).set(0.0);
        }
    }
}

/// The stream the source's `[source.events]` asks the service to hold,
/// by its source kind.
pub fn stream_of(source: &SourceConfig) -> Option<&'static str> {
    match source {
        SourceConfig::DingTalk(c) => matches!(c.events, Some(crate::sources::dingtalk::Events::Stream { .. })).then_some("dingtalk"),
        SourceConfig::Feishu(c) => c.events.as_ref().is_some_and(|e| e.long_connection).then(|| c.kind()),
        _ => None,
    }
}

async fn session(source: &SourceConfig, events: &Arc<Events>, connected: &(dyn Fn() + Sync)) -> Result<(), String> {
    match source {
        SourceConfig::DingTalk(c) => match &c.events {
            Some(crate::sources::dingtalk::Events::Stream { gateway, window }) => {
                crate::sources::dingtalk::stream::session(c, gateway, events, *window, connected).await
            }
            _ => std::future::pending().await,
        },
        SourceConfig::Feishu(c) => match &c.events {
            Some(e) if e.long_connection => crate::sources::feishu::stream::session(c, events, e.window, connected).await,
            _ => std::future::pending().await,
        },
        _ => std::future::pending().await,
    }
}

/// The waits between attempts to connect: 1 s doubling to 60 s, with jitter.
fn backoff() -> impl Iterator<Item = Duration> {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(Duration::from_secs(60))
        .with_jitter()
        .without_max_times()
        .build()
}

/// Hold the source's event stream while the config asks for one: connect,
/// reconnect with backoff when it drops (at once when the server asks for
/// a new connection), start over when the config is reloaded; until
/// `stop`. The state is kept in `events` for `/readyz` and `/status`.
pub async fn hold_stream(mut config: watch::Receiver<Arc<Config>>, events: Arc<Events>, stop: CancellationToken) {
    loop {
        let current = config.borrow_and_update().clone();
        let Some(source) = stream_of(&current.source) else {
            events.no_stream();
            tokio::select! {
                _ = stop.cancelled() => return,
                r = config.changed() => if r.is_err() { return },
            }
            continue;
        };
        let mut delays = backoff();
        loop {
            let up = std::sync::atomic::AtomicBool::new(false);
            let connected = || {
                up.store(true, std::sync::atomic::Ordering::Relaxed);
                events.stream(source, true, None);
                tracing::info!(source, "Event stream connected");
            };
            let ended = tokio::select! {
                _ = stop.cancelled() => return,
                r = config.changed() => {
                    if r.is_err() { return }
                    tracing::info!(source, "Config reloaded: the event stream starts over");
                    break;
                }
                e = session(&current.source, &events, &connected) => e,
            };
            if up.load(std::sync::atomic::Ordering::Relaxed) {
                delays = backoff();
            }
            let Err(e) = ended else { continue };
            let wait = delays.next().unwrap_or(Duration::from_secs(60));
            tracing::warn!(source, error = %crate::redact::redact(&e), retry_in_s = wait.as_secs_f64(), "Event stream down");
            events.stream(source, false, Some(e));
            tokio::select! {
                _ = stop.cancelled() => return,
                r = config.changed() => { if r.is_err() { return } break; }
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, event_id: &str) -> Event {
        Event {
            source: "dingtalk",
            id: event_id.into(),
            kind: "user_add_org".into(),
            change: Change::Objects(Only { users: [id.into()].into(), ..Only::default() }),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn events_of_one_window_are_one_run_and_a_replay_is_dropped() {
        let queue = Arc::new(TriggerQueue::new());
        let events = Events::new(queue.clone());
        let window = Duration::from_secs(2);
        assert_eq!(events.receive(user("u1", "e1"), window), Outcome::Accepted);
        assert_eq!(events.receive(user("u2", "e2"), window), Outcome::Accepted);
        assert_eq!(events.receive(user("u1", "e1"), window), Outcome::Duplicate);
        assert_eq!(events.receive(Event { change: Change::Objects(Only::default()), ..user("x", "e3") }, window), Outcome::Empty);
        assert!(!queue.is_running());
        tokio::time::sleep(Duration::from_secs(3)).await;
        let t = queue.next().await.unwrap();
        assert_eq!(t.kind, TriggerKind::Event);
        assert_eq!(t.only.unwrap().users, ["u1".into(), "u2".into()].into());
        assert_eq!(t.events, vec!["user_add_org e1".to_owned(), "user_add_org e2".to_owned()]);
        queue.done();
        // Later, the replay of e1 is still known; a full change absorbs objects.
        assert_eq!(events.receive(user("u1", "e1"), window), Outcome::Duplicate);
        events.receive(user("u3", "e4"), Duration::ZERO);
        assert_eq!(queue.next().await.unwrap().only.unwrap().users, ["u3".into()].into());
        queue.done();
        events.receive(user("u4", "e5"), window);
        events.receive(Event { change: Change::Everything, ..user("x", "e6") }, window);
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(queue.next().await.unwrap().only, None);
    }

    #[test]
    fn a_stream_counts_its_reconnects() {
        let events = Events::new(Arc::new(TriggerQueue::new()));
        events.stream("dingtalk", true, None);
        events.stream("dingtalk", false, Some("closed".into()));
        events.stream("dingtalk", false, Some("refused".into()));
        events.stream("dingtalk", true, None);
        let s = events.stream_state().unwrap();
        assert!(s.connected);
        assert_eq!(s.reconnects, 1);
        events.no_stream();
        assert!(events.stream_state().is_none());
    }
}
