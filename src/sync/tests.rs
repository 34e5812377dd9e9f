//! Whole runs in process, in well under a second each: a source that is a
//! snapshot in memory, the real file target in a temporary directory
//! (wrapped to stop or "crash" after some writes), the real mirror. The
//! end-to-end tests through the binary and real servers stay beside these.

use super::*;
use crate::model::{Department, Snapshot, SourceId, User};
use crate::model::{TargetId, TargetSnapshot};
use crate::reconcile::{Guard, TargetOnly};
use crate::targets::file::FileTarget;
use crate::targets::{TResult, Write};
use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A snapshot in memory; a fetch takes `delay` (tokio time: paused in these tests).
struct Memory(Mutex<Snapshot>, std::time::Duration);

impl IdentitySource for Memory {
    fn fetch(&self) -> futures::future::BoxFuture<'_, Result<Snapshot, SourceError>> {
        let s = self.0.lock().unwrap().clone();
        let delay = self.1;
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            Ok(s)
        })
    }

    fn kind(&self) -> &'static str {
        "memory"
    }

    fn is_document(&self) -> bool {
        true
    }
}

/// What happens at the `after`th write.
#[derive(Clone, Copy)]
enum Interrupt {
    None,
    /// SIGTERM: the stop token fires.
    Stop,
    /// The process dies: the write never returns (the test drops the run).
    Crash,
    /// SIGTERM while this write hangs (a target that stopped answering).
    StopWhileHung,
    /// The target dies: this write and every later one find nobody there.
    Dies,
    /// The disk fills up: the mirror cannot grow from this write on.
    DiskFull,
}

/// The file target, interrupted at a given write.
struct Interrupting {
    inner: FileTarget,
    /// A user or department the target refuses to create (its source id), every time.
    failing: Option<String>,
    mirror: Option<std::sync::Arc<Mirror>>,
    writes: AtomicUsize,
    after: usize,
    how: Interrupt,
    stop: CancellationToken,
}

impl Interrupting {
    async fn tick(&self) -> Result<(), TargetError> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        if matches!(self.how, Interrupt::Dies) && n >= self.after {
            // As a gateway in front of a dead server answers, after the retries.
            return Err(TargetError::Http { method: "POST", path: "/Users".into(), status: 503, detail: None, retry_after: None });
        }
        if n == self.after {
            match self.how {
                Interrupt::None => {}
                Interrupt::Stop => self.stop.cancel(),
                Interrupt::Crash => futures::future::pending::<()>().await,
                Interrupt::StopWhileHung => {
                    self.stop.cancel();
                    futures::future::pending::<()>().await;
                }
                Interrupt::Dies => {}
                Interrupt::DiskFull => self.mirror.as_ref().expect("the mirror to fill").fill_the_disk(),
            }
        }
        Ok(())
    }
}

impl Target for Interrupting {
    fn load(&self) -> TResult<'_, TargetSnapshot> {
        self.inner.load()
    }
    fn write<'a>(&'a self, w: Write<'a>) -> TResult<'a, Option<TargetId>> {
        Box::pin(async move {
            self.tick().await?;
            let (failing, path) = match &w {
                Write::CreateDepartment(op) => (&op.spec.external_id, "/Groups"),
                Write::CreateUser(op) => (&op.spec.external_id, "/Users"),
                _ => return self.inner.write(w).await,
            };
            if self.failing.as_ref() == Some(failing) {
                return Err(TargetError::Http { method: "POST", path: path.into(), status: 400, detail: None, retry_after: None });
            }
            self.inner.write(w).await
        })
    }
    fn flush(&self) -> TResult<'_, Vec<crate::targets::Deferred>> {
        self.inner.flush()
    }
}

fn org(departments: usize, users: usize) -> Snapshot {
    Snapshot {
        departments: (0..departments)
            .map(|i| Department {
                source_id: SourceId(format!("d{i}")),
                parent_id: (i > 0).then(|| SourceId(format!("d{}", (i - 1) / 3))),
                name: format!("Dept {i}"),
                order: 0,
                leader_ids: vec![],
            })
            .collect(),
        users: (0..users)
            .map(|i| User {
                source_id: SourceId(format!("u{i}")),
                username: Some(format!("user{i}")),
                name: Some(format!("User {i}")),
                email: Some(format!("user{i}@example.test")),
                department_ids: vec![SourceId(format!("d{}", i % departments))],
                active: true,
                ..User::default()
            })
            .collect(),
        ..Snapshot::default()
    }
}

struct World {
    dir: tempfile::TempDir,
    source: Memory,
    mirror: std::sync::Arc<Mirror>,
    policy: Policy,
    clock: Arc<crate::clock::TokioClock>,
    scope: reconcile::scope::Scope,
}

/// The wall clock of every test world: 2030-01-01T00:00:00Z plus tokio time.
fn clock() -> Arc<crate::clock::TokioClock> {
    Arc::new(crate::clock::TokioClock::new("2030-01-01T00:00:00Z".parse().unwrap()))
}

impl World {
    fn new(snapshot: Snapshot) -> World {
        let dir = tempfile::tempdir().unwrap();
        let clock = clock();
        let mirror = std::sync::Arc::new(Mirror::open_with_clock(dir.path(), clock.clone()).unwrap());
        World {
            source: Memory(Mutex::new(snapshot), std::time::Duration::ZERO),
            mirror,
            policy: Policy::default(),
            dir,
            clock,
            scope: reconcile::scope::Scope::default(),
        }
    }

    fn target(&self, after: usize, how: Interrupt, stop: &CancellationToken) -> Interrupting {
        Interrupting {
            inner: FileTarget::new(self.dir.path().join("target.json")),
            failing: None,
            mirror: Some(self.mirror.clone()),
            writes: 0.into(),
            after,
            how,
            stop: stop.clone(),
        }
    }

    async fn run_with(&self, target: &Interrupting, stop: &CancellationToken, options: RunOptions) -> RunRecord {
        let ctx = RunContext {
            source: &self.source,
            target,
            mirror: &self.mirror,
            policy: &self.policy,
            concurrency: 4,
            unreachable_after: Some(5),
            stop,
            grace: GRACE,
            clock: self.clock.as_ref(),
            scope: &self.scope,
            only: None,
        };
        run(&ctx, "manual", options).await.unwrap()
    }

    async fn run(&self) -> RunRecord {
        let stop = CancellationToken::new();
        self.run_with(&self.target(0, Interrupt::None, &stop), &stop, RunOptions::default()).await
    }

    /// The target file as it is now.
    fn target_now(&self) -> TargetSnapshot {
        std::fs::read(self.dir.path().join("target.json")).map(|b| serde_json::from_slice(&b).unwrap()).unwrap_or_default()
    }

    fn assert_no_duplicates(&self, users: usize, departments: usize) {
        let t = self.target_now();
        let ext: HashSet<_> = t.users.iter().map(|u| u.external_id.clone()).collect();
        assert_eq!((t.users.len(), ext.len()), (users, users), "duplicate users");
        let ext: HashSet<_> = t.departments.iter().map(|d| d.external_id.clone()).collect();
        assert_eq!((t.departments.len(), ext.len()), (departments, departments), "duplicate departments");
    }
}

#[tokio::test(start_paused = true)]
async fn a_first_run_creates_everything_and_the_second_changes_nothing() {
    let w = World::new(org(7, 40));
    let first = w.run().await;
    assert_eq!(first.status, RunStatus::Succeeded, "{first:?}");
    assert_eq!((first.count(Some(crate::reconcile::Verb::Create), crate::reconcile::Outcome::Ok)), 47);
    w.assert_no_duplicates(40, 7);
    // The same document, written compactly: an idle run must leave it as it is.
    let path = w.dir.path().join("target.json");
    let compact = serde_json::to_vec(&w.target_now()).unwrap();
    std::fs::write(&path, &compact).unwrap();
    let second = w.run().await;
    assert_eq!(second.status, RunStatus::Succeeded);
    assert!(second.counts.is_empty(), "the second run did something: {:?}", second.counts);
    assert_eq!(std::fs::read(&path).unwrap(), compact, "an idle run rewrote the target file");
}

#[tokio::test(start_paused = true)]
async fn the_guard_holds_back_mass_removals_until_approved_once() {
    let mut w = World::new(org(3, 50));
    w.policy.users.target_only = TargetOnly::Delete;
    w.policy.guard = Guard::uniform(10, 100);
    w.run().await;
    w.source.0.lock().unwrap().users.truncate(20);
    let held = w.run().await;
    assert_eq!(held.status, RunStatus::Partial);
    assert_eq!(held.count(Some(crate::reconcile::Verb::Delete), crate::reconcile::Outcome::HeldBack), 30);
    assert_eq!(w.target_now().users.len(), 50, "nothing deleted");
    let stop = CancellationToken::new();
    let approved = w.run_with(&w.target(0, Interrupt::None, &stop), &stop, RunOptions { allow_deletes: 30, ..RunOptions::default() }).await;
    assert_eq!(approved.status, RunStatus::Succeeded, "{approved:?}");
    assert_eq!(w.target_now().users.len(), 20);
}

#[tokio::test(start_paused = true)]
async fn a_stop_mid_run_records_the_rest_not_attempted_and_the_next_run_finishes() {
    let w = World::new(org(5, 60));
    let stop = CancellationToken::new();
    let stopped = w.run_with(&w.target(20, Interrupt::Stop, &stop), &stop, RunOptions::default()).await;
    assert_eq!(stopped.status, RunStatus::Partial, "{stopped:?}");
    assert!(stopped.message.as_deref().unwrap_or("").contains("stopped by shutdown"));
    let not_attempted = stopped.count(None, crate::reconcile::Outcome::NotAttempted);
    assert!(
        not_attempted > 0 && stopped.count(Some(crate::reconcile::Verb::Create), crate::reconcile::Outcome::Ok) + not_attempted >= 60,
        "{:?}",
        stopped.counts
    );
    let next = w.run().await;
    assert_eq!(next.status, RunStatus::Succeeded, "{next:?}");
    w.assert_no_duplicates(60, 5);
}

/// The grace period of these runs.
const GRACE: std::time::Duration = std::time::Duration::from_secs(30);

#[tokio::test(start_paused = true)]
async fn an_operation_hung_at_sigterm_is_abandoned_at_the_grace_deadline_and_the_run_is_recorded_within_it() {
    let w = World::new(org(5, 60));
    let stop = CancellationToken::new();
    let target = w.target(20, Interrupt::StopWhileHung, &stop);
    let began = tokio::time::Instant::now();
    let stopped = tokio::time::timeout(GRACE * 10, w.run_with(&target, &stop, RunOptions::default()))
        .await
        .expect("the hung operation held the run past its grace period");
    // Paused time: the run ended at the deadline, not a wall-clock guess.
    assert!(began.elapsed() <= GRACE, "recorded {:?} after SIGTERM (grace period {GRACE:?})", began.elapsed());
    assert_eq!(stopped.status, RunStatus::Partial, "{stopped:?}");
    let items = w.mirror.items(stopped.id).unwrap();
    let abandoned: Vec<_> = items.iter().filter(|i| i.error.as_deref().is_some_and(|e| e.contains("abandoned in flight"))).collect();
    assert_eq!(abandoned.len(), 1, "the hung write is recorded: {items:?}");
    assert_eq!(abandoned[0].outcome, crate::reconcile::Outcome::NotAttempted);
    assert!(
        stopped.count(Some(crate::reconcile::Verb::Create), crate::reconcile::Outcome::Ok)
            + stopped.count(None, crate::reconcile::Outcome::NotAttempted)
            >= 65,
        "{:?}",
        stopped.counts
    );
    let next = w.run().await;
    assert_eq!(next.status, RunStatus::Succeeded, "{next:?}");
    w.assert_no_duplicates(60, 5);
}

#[tokio::test(start_paused = true)]
async fn a_target_that_dies_mid_run_ends_it_failed_at_once_and_the_next_run_converges() {
    let w = World::new(org(5, 200));
    let stop = CancellationToken::new();
    let dead = w.run_with(&w.target(30, Interrupt::Dies, &stop), &stop, RunOptions::default()).await;
    assert_eq!(dead.status, RunStatus::Failed, "{dead:?}");
    assert!(dead.message.as_deref().unwrap_or("").starts_with("target unreachable: 5 operations in a row"), "{dead:?}");
    // Five failures end it (and the ones in flight with them): the rest are never tried.
    let failed = dead.count(None, crate::reconcile::Outcome::Failed);
    assert!((5..=8).contains(&failed), "{failed} failed: {:?}", dead.counts);
    assert!(dead.count(None, crate::reconcile::Outcome::NotAttempted) >= 150, "{:?}", dead.counts);
    let next = w.run().await;
    assert_eq!(next.status, RunStatus::Succeeded, "{next:?}");
    w.assert_no_duplicates(200, 5);
}

#[tokio::test(start_paused = true)]
async fn a_full_disk_mid_run_ends_it_failed_with_the_reason_never_running() {
    let w = World::new(org(5, 3000));
    let stop = CancellationToken::new();
    let target = w.target(10, Interrupt::DiskFull, &stop);
    let ctx = RunContext {
        source: &w.source,
        target: &target,
        mirror: &w.mirror,
        policy: &w.policy,
        concurrency: 4,
        unreachable_after: None,
        stop: &stop,
        grace: GRACE,
        clock: w.clock.as_ref(),
        scope: &w.scope,
        only: None,
    };
    let r = run(&ctx, "manual", RunOptions::default()).await.expect("recorded");
    assert_eq!(r.status, RunStatus::Failed, "{r:?}");
    let message = r.message.as_deref().unwrap_or_default();
    assert!(message.contains("the mirror could not be written") && message.contains("full"), "{message}");
    assert_eq!(w.mirror.runs(1).unwrap()[0].status, RunStatus::Failed, "never left running");
}

#[tokio::test(start_paused = true)]
async fn an_object_that_keeps_failing_is_retried_with_backoff_then_quarantined_and_released() {
    let w = World::new(org(2, 10));
    let stop = CancellationToken::new();
    let mut target = w.target(0, Interrupt::None, &stop);
    target.failing = Some("u3".into());
    let mut tried = Vec::new();
    for hour in 0..48 {
        let r = w.run_with(&target, &stop, RunOptions::default()).await;
        let failed = r.count(Some(crate::reconcile::Verb::Create), crate::reconcile::Outcome::Failed) > 0;
        if failed {
            tried.push(hour);
            // A new failure: partial beside other work, failed alone (nothing else to apply).
            assert_ne!(r.status, RunStatus::Succeeded, "hour {hour}: {r:?}");
        } else {
            // Waiting or quarantined: said, and not a failure of this run.
            assert_eq!(r.status, RunStatus::Succeeded, "hour {hour}: {r:?}");
            assert_eq!(
                r.count(Some(crate::reconcile::Verb::Create), crate::reconcile::Outcome::RetryLater)
                    + r.count(Some(crate::reconcile::Verb::Create), crate::reconcile::Outcome::Quarantined),
                1,
                "hour {hour}: {r:?}"
            );
        }
        tokio::time::advance(std::time::Duration::from_secs(3600)).await;
    }
    // The next run at once, then 1 h, 6 h and 24 h apart; the fifth failure quarantines.
    assert_eq!(tried, [0, 1, 2, 8, 32]);
    let failing = w.mirror.failing().unwrap();
    assert_eq!(failing.len(), 1, "{failing:?}");
    assert!(failing[0].quarantined && failing[0].id == "u3" && failing[0].error.contains("400"), "{failing:?}");
    // Fixed and released: created at the next run, and forgotten.
    target.failing = None;
    assert_eq!(w.mirror.release(Some("u3")).unwrap(), 1);
    let r = w.run_with(&target, &stop, RunOptions::default()).await;
    assert_eq!(
        (r.status, r.count(Some(crate::reconcile::Verb::Create), crate::reconcile::Outcome::Ok)),
        (RunStatus::Succeeded, 1),
        "{r:?}"
    );
    assert!(w.mirror.failing().unwrap().is_empty());
    w.assert_no_duplicates(10, 2);
}

#[tokio::test(start_paused = true)]
async fn a_crash_mid_run_is_resumed_by_the_next_run_without_duplicates() {
    let w = World::new(org(5, 60));
    let stop = CancellationToken::new();
    let target = w.target(30, Interrupt::Crash, &stop);
    // The process dies at the 30th write: the run never finishes.
    let crashed = tokio::time::timeout(std::time::Duration::from_secs(60), w.run_with(&target, &stop, RunOptions::default())).await;
    assert!(crashed.is_err(), "the run was meant to hang");
    assert_eq!(w.mirror.mark_interrupted().unwrap(), 1);
    let next = w.run().await;
    assert_eq!(next.status, RunStatus::Succeeded, "{next:?}");
    w.assert_no_duplicates(60, 5);
    assert!(w.run().await.counts.is_empty(), "not converged");
}

#[tokio::test(start_paused = true)]
async fn a_run_reads_the_injected_clock_and_paused_time_costs_nothing() {
    let mut w = World::new(org(2, 5));
    w.source.1 = std::time::Duration::from_secs(90);
    let started = std::time::Instant::now();
    let r = w.run().await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    assert_eq!(r.started_at, "2030-01-01T00:00:00.000Z");
    assert!(r.finished_at.as_deref().is_some_and(|f| f.starts_with("2030-01-01T00:01:30")), "{r:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "the 90 s fetch ran in paused time");
}

#[tokio::test(start_paused = true)]
async fn a_scope_change_is_target_only_and_held_by_the_guard() {
    let mut w = World::new(org(5, 60));
    w.policy.users.target_only = TargetOnly::Delete;
    w.policy.guard = Guard::uniform(5, 100);
    assert_eq!(w.run().await.status, RunStatus::Succeeded);
    // Department d2, a leaf, and its 12 users leave the scope.
    w.scope.exclude_departments = vec!["d2".into()];
    let held = w.run().await;
    assert_eq!(held.status, RunStatus::Partial, "{held:?}");
    assert_eq!(held.count(None, crate::reconcile::Outcome::HeldBack), 12);
    assert_eq!(w.target_now().users.len(), 60, "nothing deleted beyond the guard");
    let stop = CancellationToken::new();
    let approved = w.run_with(&w.target(0, Interrupt::None, &stop), &stop, RunOptions { allow_deletes: 12, ..RunOptions::default() }).await;
    assert_eq!(approved.count(Some(crate::reconcile::Verb::Delete), crate::reconcile::Outcome::Ok), 12, "{approved:?}");
    assert_eq!(w.target_now().users.len(), 48);
}

/// The values a create sent are remembered (a target that rewrites one is
/// not sent it again), but memberships only when they went out whole: a
/// user created while its department's create failed joins it once the
/// department is there, and then nothing is left to do.
#[tokio::test(start_paused = true)]
async fn a_membership_sent_while_its_department_was_missing_is_written_once_it_is_there() {
    let w = World::new(org(3, 9));
    let stop = CancellationToken::new();
    let mut refusing = w.target(0, Interrupt::None, &stop);
    refusing.failing = Some("d2".into());
    let first = w.run_with(&refusing, &stop, RunOptions::default()).await;
    assert_eq!(
        (first.status, first.count(Some(crate::reconcile::Verb::Create), crate::reconcile::Outcome::Failed)),
        (RunStatus::Partial, 1),
        "{first:?}"
    );
    let second = w.run().await;
    assert_eq!(second.status, RunStatus::Succeeded, "{second:?}");
    let t = w.target_now();
    let d2 = t.departments.iter().find(|d| d.external_id.as_deref() == Some("d2")).unwrap().id.clone();
    let members: Vec<&str> = t.users.iter().filter(|u| u.departments.contains(&d2)).filter_map(|u| u.external_id.as_deref()).collect();
    assert_eq!(members, ["u2", "u5", "u8"], "{second:?}");
    let idle = w.run().await;
    assert!(idle.counts.is_empty(), "{idle:?}");
}
