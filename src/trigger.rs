//! One run at a time. Every trigger (schedule, start, `POST /sync`,
//! SIGUSR1) goes through a [`TriggerQueue`]: when idle the run starts; a
//! trigger during a run queues exactly one follow-up, and further triggers
//! merge into it (the largest `allow_deletes` wins, a manual trigger's name
//! wins over the schedule's).

use serde::Serialize;
use std::sync::Mutex;
use tokio::sync::Notify;

/// What started a run; a bounded set (it is a metric label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    /// `run_on_start`.
    Startup,
    Schedule,
    /// `POST /sync` (also what `orgsync trigger` calls).
    Http,
    /// SIGUSR1.
    Signal,
    /// A source's change event (a callback): an on-demand run of what it names.
    Event,
    /// The admin page's approval of held-back deletions.
    Web,
}

impl TriggerKind {
    pub const ALL: &[TriggerKind] =
        &[TriggerKind::Startup, TriggerKind::Schedule, TriggerKind::Http, TriggerKind::Signal, TriggerKind::Event, TriggerKind::Web];

    pub fn as_str(self) -> &'static str {
        match self {
            TriggerKind::Startup => "startup",
            TriggerKind::Schedule => "schedule",
            TriggerKind::Http => "http",
            TriggerKind::Signal => "signal",
            TriggerKind::Event => "event",
            TriggerKind::Web => "web",
        }
    }

    fn is_manual(self) -> bool {
        matches!(self, TriggerKind::Http | TriggerKind::Signal | TriggerKind::Web)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trigger {
    pub kind: TriggerKind,
    /// The admin's one-time approval for deletions held back by the guard.
    pub allow_deletes: u64,
    /// The admin page's approval of the held-back removals it showed (their digest).
    pub approved: Option<u64>,
    /// On demand (`POST /sync?only=`): only these objects. Merged triggers
    /// name the objects of both; merged with a full run, the full run.
    pub only: Option<crate::reconcile::only::Only>,
    /// The change events a run covers (`<type> <id>`), listed on the run.
    pub events: Vec<String>,
}

/// What became of a pushed trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Queued {
    /// No run in progress: it starts now.
    Started,
    /// A run is in progress: this one follows it.
    AfterCurrentRun,
    /// A follow-up was already queued: merged into it.
    Merged,
    /// Shutting down: not taken.
    Refused,
}

impl std::fmt::Display for Queued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Queued::Started => "started",
            Queued::AfterCurrentRun => "after_current_run",
            Queued::Merged => "merged",
            Queued::Refused => "refused",
        })
    }
}

#[derive(Debug, Default)]
struct State {
    pending: Option<Trigger>,
    running: bool,
    closed: bool,
}

#[derive(Debug, Default)]
pub struct TriggerQueue {
    state: Mutex<State>,
    notify: Notify,
}

impl TriggerQueue {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&self, t: Trigger) -> Queued {
        let Ok(mut s) = self.state.lock() else { return Queued::Refused };
        if s.closed {
            return Queued::Refused;
        }
        let running = s.running;
        let queued = match (&mut s.pending, running) {
            (Some(p), _) => {
                p.allow_deletes = p.allow_deletes.max(t.allow_deletes);
                p.approved = t.approved.or(p.approved);
                p.only = match (p.only.take(), t.only) {
                    (Some(mut a), Some(b)) => {
                        a.users.extend(b.users);
                        a.departments.extend(b.departments);
                        Some(a)
                    }
                    _ => None,
                };
                p.events.extend(t.events);
                if t.kind.is_manual() && !p.kind.is_manual() {
                    p.kind = t.kind;
                }
                Queued::Merged
            }
            (None, running) => {
                s.pending = Some(t);
                if running { Queued::AfterCurrentRun } else { Queued::Started }
            }
        };
        drop(s);
        self.notify.notify_one();
        queued
    }

    /// The next trigger to run, marking a run as in progress; `None` once
    /// closed. Call [`TriggerQueue::done`] when the run ends.
    pub async fn next(&self) -> Option<Trigger> {
        loop {
            {
                let Ok(mut s) = self.state.lock() else { return None };
                if s.closed {
                    return None;
                }
                if let Some(t) = s.pending.take() {
                    s.running = true;
                    return Some(t);
                }
            }
            self.notify.notified().await;
        }
    }

    pub fn done(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.running = false;
        }
    }

    pub fn is_running(&self) -> bool {
        self.state.lock().is_ok_and(|s| s.running)
    }

    /// Stop taking triggers; a queued follow-up is dropped.
    pub fn close(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.closed = true;
            s.pending = None;
        }
        self.notify.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(kind: TriggerKind, allow_deletes: u64) -> Trigger {
        Trigger { kind, allow_deletes, approved: None, only: None, events: Vec::new() }
    }

    #[tokio::test]
    async fn a_trigger_during_a_run_queues_exactly_one_follow_up() {
        let q = TriggerQueue::new();
        assert_eq!(q.push(t(TriggerKind::Schedule, 0)), Queued::Started);
        assert_eq!(q.next().await, Some(t(TriggerKind::Schedule, 0)));
        assert_eq!(q.push(t(TriggerKind::Schedule, 0)), Queued::AfterCurrentRun);
        assert_eq!(q.push(t(TriggerKind::Http, 5)), Queued::Merged);
        assert_eq!(q.push(t(TriggerKind::Schedule, 2)), Queued::Merged);
        q.done();
        // The merged follow-up keeps the manual trigger and the larger approval.
        assert_eq!(q.next().await, Some(t(TriggerKind::Http, 5)));
        q.done();
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), q.next()).await;
        assert!(waited.is_err(), "no third run: the follow-up absorbed the other triggers");
    }

    #[tokio::test]
    async fn on_demand_triggers_merge_their_objects_and_a_full_run_absorbs_them() {
        let only =
            |ids: &[&str]| Some(crate::reconcile::only::Only::parse(&ids.iter().map(|i| format!("user:{i}")).collect::<Vec<_>>()).unwrap());
        let q = TriggerQueue::new();
        q.push(t(TriggerKind::Schedule, 0));
        assert!(q.next().await.is_some());
        // During a run: two on-demand requests become one follow-up for both.
        q.push(Trigger { only: only(&["u1"]), ..t(TriggerKind::Http, 0) });
        assert_eq!(q.push(Trigger { only: only(&["u2"]), ..t(TriggerKind::Http, 0) }), Queued::Merged);
        q.done();
        assert_eq!(q.next().await.unwrap().only, only(&["u1", "u2"]));
        // With a full run queued, an on-demand request is part of it.
        q.push(Trigger { only: only(&["u3"]), ..t(TriggerKind::Http, 0) });
        q.push(t(TriggerKind::Schedule, 0));
        q.done();
        assert_eq!(q.next().await.unwrap().only, None);
    }

    #[tokio::test]
    async fn closing_refuses_triggers_and_drops_the_follow_up() {
        let q = TriggerQueue::new();
        q.push(t(TriggerKind::Schedule, 0));
        assert!(q.next().await.is_some());
        q.push(t(TriggerKind::Signal, 0));
        q.close();
        assert_eq!(q.push(t(TriggerKind::Http, 0)), Queued::Refused);
        q.done();
        assert_eq!(q.next().await, None);
    }
}
