//! Carry out a plan against the target, phase by phase (see
//! `reconcile::Op::phase`), with bounded concurrency inside a phase; within
//! a phase operations complete in any order (a slow one holds no slot of a
//! finished one). Outcomes, with their binding changes, are committed to the
//! mirror in batches, on a thread of the mirror's while the operations go
//! on: every 2,000 outcomes, every 200 ms, and at the end of each phase,
//! the batches that wait meanwhile in one transaction. A crash loses at
//! most the records not yet committed (a transaction of up to 10,000
//! outcomes, four batches waiting, one being gathered), never an object:
//! what the lost records said is found again in the target by externalId
//! on the next run. One failed operation is an item error; the run goes on.

use crate::mirror::{BindingChange, ItemRow, Mirror, MirrorError, Recorded, RunId};
use crate::model::{Bindings, Kind, SourceId, TargetId};
use crate::reconcile::Field;
use crate::reconcile::Op;
use crate::reconcile::retry;
use crate::reconcile::unkept::{self, Sent, SentValue};
use crate::targets::{DepartmentCreate, DepartmentUpdate, Target, TargetError, UserCreate, UserDelete, UserUpdate, Write};
use futures::StreamExt;
use rustc_hash::FxHashMap as HashMap;
use sha2::{Digest, Sha256};
use std::sync::Mutex;
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
pub struct Outcome {
    pub ok: u64,
    /// Failed, refused included.
    pub failed: u64,
    /// Updates of which the target refused some attributes.
    pub refused: u64,
    /// Skipped because shutdown began, or the target became unreachable.
    pub not_attempted: u64,
    /// The target stopped answering: `unreachable_after` operations in a
    /// row could not reach it, and the rest were not attempted.
    pub unreachable: Option<u64>,
    /// For `reconcile::retry`: each failed operation's object and error,
    /// and the objects with earlier failures whose operations went through.
    pub results: Vec<(retry::Key, Option<String>)>,
    /// The target's deferred writes flushed before the removals, or why
    /// that flush failed (the removals were then not attempted).
    pub deferred: Result<Vec<crate::targets::Deferred>, TargetError>,
}

impl Default for Outcome {
    fn default() -> Self {
        Outcome { ok: 0, failed: 0, refused: 0, not_attempted: 0, unreachable: None, results: Vec::new(), deferred: Ok(Vec::new()) }
    }
}

/// What became of one operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Applied {
    Ok,
    Failed,
    /// Some attributes refused by the target (the rest applied).
    Refused,
    /// Shutdown began before it started.
    NotAttempted,
}

fn hash<T: serde::Serialize>(v: &T) -> Option<String> {
    let bytes = serde_json::to_vec(v).ok()?;
    let d = Sha256::digest(bytes);
    // The first 16 bytes, in hex: one formatting, not one per byte.
    Some(format!("{d:.32x}"))
}

struct Ctx<'a> {
    target: &'a dyn Target,
    run: RunId,
    /// Department bindings (source -> target, and back), as the run makes
    /// them: a user's departments and a child's parent resolve through it.
    departments: Mutex<(HashMap<SourceId, TargetId>, HashMap<TargetId, SourceId>)>,
    /// User bindings as the run makes them: a manager resolves through it.
    users: Mutex<HashMap<SourceId, TargetId>>,
    stop: &'a CancellationToken,
    /// The grace period's end: operations in flight are abandoned.
    abandon: &'a CancellationToken,
    /// Operations in a row that could not reach the target, and how many
    /// end the run (none: never).
    streak: std::sync::atomic::AtomicUsize,
    unreachable_after: Option<usize>,
    /// Fired once the target is judged unreachable: nothing more is tried.
    dead: CancellationToken,
}

impl Ctx<'_> {
    fn resolve(&self, id: &SourceId) -> Option<TargetId> {
        self.departments.lock().ok()?.0.get(id).cloned()
    }

    fn resolve_user(&self, id: &SourceId) -> Option<TargetId> {
        self.users.lock().ok()?.get(id).cloned()
    }

    /// A spec's manager: the account the plan found, else the one made in this run.
    fn manager_of(&self, spec: &crate::reconcile::UserSpec) -> Option<TargetId> {
        spec.manager_account.clone().or_else(|| spec.manager.as_ref().and_then(|m| self.resolve_user(m)))
    }

    /// Why an operation that sets a reference waits: the account it names
    /// (a manager, or the user itself) was not made in this run, its
    /// create failed or waits out a backoff. Not attempted, not the
    /// report's failure: the next run sets it once the account exists.
    fn waits(&self, op: &Op) -> Option<String> {
        match op {
            Op::SetManager { source_id, target_id, spec, .. } => {
                let user = target_id.is_some() || self.resolve_user(source_id).is_some();
                let manager = self.manager_of(spec).is_some();
                (!user || !manager).then(|| {
                    let who = if user { "the manager's account" } else { "the user's account" };
                    format!("not attempted: {who} was not created in this run (its create failed or waits); set once it exists")
                })
            }
            Op::SetLeaders { source_id, target_id: None, .. } if self.resolve(source_id).is_none() => {
                Some("not attempted: the department was not created in this run; its leaders are set once it exists".into())
            }
            _ => None,
        }
    }

    /// An object bound in this run (a target bound to one source only).
    fn bind(&self, kind: Kind, s: &SourceId, t: &TargetId) {
        if kind == Kind::User {
            if let Ok(mut users) = self.users.lock() {
                users.insert(s.clone(), t.clone());
            }
            return;
        }
        if let Ok(mut guard) = self.departments.lock() {
            let (forward, back) = &mut *guard;
            if let Some(old) = back.insert(t.clone(), s.clone()).filter(|old| old != s) {
                forward.remove(&old);
            }
            if let Some(before) = forward.insert(s.clone(), t.clone()).filter(|before| before != t) {
                back.remove(&before);
            }
        }
    }

    fn resolve_all(&self, ids: &Option<Vec<SourceId>>) -> Vec<TargetId> {
        ids.iter().flatten().filter_map(|d| self.resolve(d)).collect()
    }

    /// A create's write: the id of what it made.
    async fn created(&self, w: Write<'_>) -> Result<TargetId, TargetError> {
        self.target.write(w).await?.ok_or_else(|| TargetError::Unexpected("a create returned no id".into()))
    }

    /// Do one op against the target; return the mirror's binding change.
    async fn run(&self, op: &Op) -> Result<(Option<TargetId>, BindingChange), TargetError> {
        Ok(match op {
            Op::Bind { kind, source_id, target_id, .. } => {
                self.bind(*kind, source_id, target_id);
                (None, BindingChange::Set { source_id: source_id.clone(), target_id: target_id.clone(), hash: None })
            }
            Op::Unbind { source_id, .. } => (None, BindingChange::RemoveSource(source_id.clone())),
            Op::Schedule { target_id, .. } => (None, BindingChange::Disabled(target_id.clone())),
            Op::CreateDepartment { source_id, spec, .. } => {
                let parent = match &spec.parent {
                    None => None,
                    Some(p) => Some(self.resolve(p).ok_or_else(|| {
                        TargetError::Missing(format!("parent department {p} does not exist in the target (its create failed?)"))
                    })?),
                };
                let id = self.created(Write::CreateDepartment(DepartmentCreate { spec, parent: parent.as_ref() })).await?;
                self.bind(Kind::Department, source_id, &id);
                (Some(id.clone()), BindingChange::Set { source_id: source_id.clone(), target_id: id, hash: hash(spec) })
            }
            Op::UpdateDepartment { source_id, target_id, spec, old_parent, changes } => {
                let parent = spec.parent.as_ref().and_then(|p| self.resolve(p));
                if changes.iter().any(|c| c.field == crate::reconcile::Field::Parent) && spec.parent.is_some() && parent.is_none() {
                    return Err(TargetError::Missing("the new parent department does not exist in the target".into()));
                }
                let (id, old_parent, parent) = (target_id, old_parent.as_ref(), parent.as_ref());
                let update = DepartmentUpdate { id, spec, changes, old_parent, parent, leaders: &[] };
                self.target.write(Write::UpdateDepartment(update)).await?;
                (None, BindingChange::Set { source_id: source_id.clone(), target_id: target_id.clone(), hash: hash(spec) })
            }
            Op::CreateUser { source_id, spec, .. } => {
                let deps = self.resolve_all(&spec.departments);
                let manager = self.manager_of(spec);
                let id = self.created(Write::CreateUser(UserCreate { spec, departments: &deps, manager: manager.as_ref() })).await?;
                self.bind(Kind::User, source_id, &id);
                (Some(id.clone()), BindingChange::Set { source_id: source_id.clone(), target_id: id, hash: hash(spec) })
            }
            Op::UpdateUser { source_id, target_id, spec, old_departments, changes } => {
                let deps = self.resolve_all(&spec.departments);
                let manager = match changes.iter().any(|c| c.field == Field::Manager) {
                    true => self.manager_of(spec),
                    false => spec.holds_manager.clone(),
                };
                let (id, departments, manager) = (target_id, &deps, manager.as_ref());
                self.target.write(Write::UpdateUser(UserUpdate { id, spec, changes, old_departments, departments, manager })).await?;
                (None, BindingChange::Set { source_id: source_id.clone(), target_id: target_id.clone(), hash: hash(spec) })
            }
            Op::SetLeaders { source_id, target_id, spec, .. } => {
                let id = target_id
                    .clone()
                    .or_else(|| self.resolve(source_id))
                    .ok_or_else(|| TargetError::Missing(format!("department {source_id} is not in the target (its create failed?)")))?;
                // A leader whose create failed is left out (the next run adds it).
                let known = spec.leader_accounts.iter().cloned().chain(std::iter::repeat(None));
                let leaders: Vec<TargetId> =
                    spec.leaders.iter().zip(known).filter_map(|(l, t)| t.or_else(|| self.resolve_user(l))).collect();
                let parent = spec.parent.as_ref().and_then(|p| self.resolve(p));
                let changes = op.changes();
                let update =
                    DepartmentUpdate { id: &id, spec, changes: &changes, old_parent: None, parent: parent.as_ref(), leaders: &leaders };
                self.target.write(Write::UpdateDepartment(update)).await?;
                (None, BindingChange::None)
            }
            Op::SetManager { source_id, target_id, spec, .. } => {
                let missing = |what: String| TargetError::Missing(format!("{what} is not in the target (its create failed?)"));
                let id = target_id.clone().or_else(|| self.resolve_user(source_id)).ok_or_else(|| missing(format!("user {source_id}")))?;
                let m = spec.manager.as_ref().ok_or_else(|| TargetError::Unexpected("no manager to set".into()))?;
                let manager = self.manager_of(spec).ok_or_else(|| missing(format!("manager {m}")))?;
                let deps = self.resolve_all(&spec.departments);
                let changes = op.changes();
                let update =
                    UserUpdate { id: &id, spec, changes: &changes, old_departments: &[], departments: &deps, manager: Some(&manager) };
                self.target.write(Write::UpdateUser(update)).await?;
                (None, BindingChange::None)
            }
            Op::DisableUser { target_id, grace, .. } => {
                self.target.write(Write::DisableUser(target_id)).await?;
                (None, if *grace { BindingChange::Disabled(target_id.clone()) } else { BindingChange::None })
            }
            Op::DeleteUser { target_id, departments, .. } => {
                self.target.write(Write::DeleteUser(UserDelete { id: target_id, departments })).await?;
                (None, BindingChange::RemoveTarget(target_id.clone()))
            }
            Op::DeleteDepartment { target_id, .. } => {
                self.target.write(Write::DeleteDepartment(target_id)).await?;
                (None, BindingChange::RemoveTarget(target_id.clone()))
            }
        })
    }

    /// After a department's create or any update: the values sent (all of
    /// them when it went through; all but the `refused` ones when only
    /// those were refused), so that a value the target does not keep (a
    /// name it derives itself, a group member it drops) is found at the
    /// next run and not sent again. After a user's create, the values its
    /// answer showed not kept.
    fn sent(&self, op: &Op, ok: bool, refused: &[Field], created: Option<&TargetId>) -> Vec<SentValue> {
        let value = |c: &crate::reconcile::Change, state| SentValue {
            field: c.field,
            hash: unkept::value_hash(&c.to),
            from: unkept::value_hash(&c.from),
            state,
        };
        // Memberships went out whole only when every department was in the
        // target: one still missing is sent when it is there.
        let whole = match op {
            Op::UpdateUser { spec, .. } => spec.departments.iter().flatten().all(|d| self.resolve(d).is_some()),
            _ => true,
        };
        let changes = match op {
            Op::UpdateUser { .. } | Op::UpdateDepartment { .. } | Op::SetManager { .. } | Op::SetLeaders { .. } => op.changes(),
            // Only a create that wrote these values (not one that found the
            // group there already, named or nested otherwise).
            Op::CreateDepartment { .. } if created.is_some_and(|id| self.target.created_as_sent(id)) => op.changes(),
            // Users are many: of a create, only what its answer showed not
            // kept, with what it showed instead.
            Op::CreateUser { .. } => {
                let shown = created.map(|id| self.target.not_kept_at_create(id)).unwrap_or_default();
                if shown.is_empty() {
                    return Vec::new();
                }
                let changes = op.changes();
                return shown
                    .iter()
                    .filter_map(|(field, instead)| {
                        let c = changes.iter().find(|c| c.field == *field)?;
                        Some(SentValue { from: unkept::value_hash(instead), ..value(c, Sent::NotKept) })
                    })
                    .collect();
            }
            _ => return Vec::new(),
        };
        if !ok && refused.is_empty() {
            return Vec::new();
        }
        changes
            .iter()
            .filter(|c| unkept::remembered(c.field) && (whole || c.field != Field::Departments))
            .map(|c| value(c, if refused.contains(&c.field) { Sent::Refused } else { Sent::Sent }))
            .collect()
    }

    /// Do one op; what became of it is recorded by [`Ctx::record`].
    async fn one(&self, op: Op) -> Done {
        let not_attempted = |op, error: Option<&str>| Done {
            op,
            applied: Applied::NotAttempted,
            created: None,
            change: BindingChange::None,
            error: error.map(str::to_owned),
            sent: Vec::new(),
            changes: None,
        };
        const UNREACHABLE: &str = "not attempted: the target is unreachable";
        if self.stop.is_cancelled() {
            return not_attempted(op, None);
        }
        if self.dead.is_cancelled() {
            return not_attempted(op, Some(UNREACHABLE));
        }
        if let Some(why) = self.waits(&op) {
            return not_attempted(op, Some(&why));
        }
        // The grace period is a hard deadline: an operation still in flight
        // at its end is dropped (a create whose answer was lost is found
        // again by externalId on the next run). So is one still retrying
        // once the target is judged unreachable.
        let result = tokio::select! {
            r = self.run(&op) => r,
            _ = self.abandon.cancelled() => return not_attempted(op, Some("abandoned in flight: the grace period ended")),
            _ = self.dead.cancelled() => return not_attempted(op, Some(UNREACHABLE)),
        };
        self.judge_reach(&result);
        let refused: Vec<Field> = match &result {
            Err(TargetError::Refused { fields, .. }) => fields.clone(),
            _ => Vec::new(),
        };
        let created = match &result {
            Ok((Some(id), _)) => Some(id),
            _ => None,
        };
        let sent = self.sent(&op, result.is_ok(), &refused, created);
        let changes = changes_json(&op);
        match result {
            Ok((created, change)) => Done { op, applied: Applied::Ok, created, change, error: None, sent, changes },
            Err(e) => {
                tracing::warn!(run = %self.run, kind = %op.kind(), op = %op.verb(), source_id = ?op.source_id().map(SourceId::as_str), error = %e, "Operation failed");
                // Refused: the target took the rest of the update (or nothing
                // else was in it) and named what it will not take.
                let applied = if refused.is_empty() { Applied::Failed } else { Applied::Refused };
                Done { op, applied, created: None, change: BindingChange::None, error: Some(e.to_string()), sent, changes }
            }
        }
    }

    /// Count operations in a row that could not reach the target; at
    /// `unreachable_after`, the target is dead for this run.
    fn judge_reach<T>(&self, result: &Result<T, TargetError>) {
        use std::sync::atomic::Ordering;
        let Some(after) = self.unreachable_after else { return };
        match result {
            Err(e) if e.is_unreachable() => {
                if self.streak.fetch_add(1, Ordering::SeqCst) + 1 >= after && !self.dead.is_cancelled() {
                    tracing::error!(run = %self.run, operations = after, error = %e, "The target is unreachable: the rest of the run is not attempted");
                    self.dead.cancel();
                }
            }
            _ => self.streak.store(0, Ordering::SeqCst),
        }
    }
}

/// Commit outcomes to the mirror in one transaction, and count them.
/// Returns them, to be freed where they were made.
fn record(mirror: &Mirror, run: RunId, mut done: Vec<Done>) -> Result<Vec<Done>, MirrorError> {
    if done.is_empty() {
        return Ok(done);
    }
    let batch: Vec<Recorded<'_>> = done
        .iter_mut()
        .map(|d| {
            let op = &d.op;
            let outcome = match d.applied {
                Applied::Ok => crate::reconcile::Outcome::Ok,
                Applied::Refused => crate::reconcile::Outcome::Refused,
                Applied::Failed => crate::reconcile::Outcome::Failed,
                Applied::NotAttempted => crate::reconcile::Outcome::NotAttempted,
            };
            crate::telemetry::operation(op.kind(), op.verb(), outcome);
            if let (Some(reason), Applied::Ok) = (op.removal_reason(), &d.applied) {
                crate::telemetry::removal(op.kind(), op.verb(), crate::reconcile::removal_label(reason));
            }
            Recorded {
                item: ItemRow {
                    kind: op.kind(),
                    op: op.verb(),
                    source_id: op.source_id(),
                    target_id: d.created.as_ref().or(op.target_id()),
                    outcome,
                    error: d.error.as_deref().or(if d.applied == Applied::Ok { op.note() } else { None }),
                    changes: d.changes.as_deref(),
                },
                binding: std::mem::replace(&mut d.change, BindingChange::None),
                sent: std::mem::take(&mut d.sent),
            }
        })
        .collect();
    mirror.record_batch(run, &batch)?;
    drop(batch);
    Ok(done)
}

/// The mirror's writes of one apply, on a thread of their own: the
/// operations go on while a batch is committed (SQLite was a third of a
/// first sync's time, on the apply's thread). Batches are committed in
/// order; the batches waiting when a transaction ends go into the next one
/// together (up to [`BATCH`] outcomes): the slower the mirror, the fewer
/// its commits. Dropped (the run abandoned), it finishes what it was sent.
struct Writer {
    /// For the batches written in line when no thread could be had.
    mirror: Mirror,
    run: RunId,
    send: Option<std::sync::mpsc::SyncSender<Vec<Done>>>,
    /// The outcomes committed, back to be freed on the apply's thread that
    /// made them (in mimalloc, a free from another thread takes the slow path).
    spent: Option<std::sync::mpsc::Receiver<Vec<Done>>>,
    thread: Option<std::thread::JoinHandle<Result<(), MirrorError>>>,
}

/// Batches that wait for the mirror's thread, at most.
const WAITING: usize = 4;

impl Writer {
    fn new(mirror: &Mirror, run: RunId) -> Self {
        let (send, batches) = std::sync::mpsc::sync_channel::<Vec<Done>>(WAITING);
        let (give_back, spent) = std::sync::mpsc::channel::<Vec<Done>>();
        let theirs = mirror.clone();
        let thread = std::thread::Builder::new().name("orgsync-mirror".into()).spawn(move || {
            while let Ok(mut done) = batches.recv() {
                while done.len() + CHUNK <= BATCH {
                    match batches.try_recv() {
                        Ok(more) => done.extend(more),
                        Err(_) => break,
                    }
                }
                let done = record(&theirs, run, done)?;
                // Gone when the apply is: then they are freed here.
                let _ = give_back.send(done);
            }
            Ok(())
        });
        let mirror = mirror.clone();
        match thread {
            Ok(t) => Writer { mirror, run, send: Some(send), spent: Some(spent), thread: Some(t) },
            // No thread to be had: the batches are written on the caller's.
            Err(e) => {
                tracing::warn!(error = %e, "No thread for the mirror's writes: written in line");
                Writer { mirror, run, send: None, spent: None, thread: None }
            }
        }
    }

    /// Hand a batch over (or write it now, without a thread). A write that
    /// failed is said here, or at [`Writer::finish`].
    fn write(&mut self, batch: Vec<Done>) -> Result<(), MirrorError> {
        self.free_spent();
        if batch.is_empty() {
            return Ok(());
        }
        match &self.send {
            None => record(&self.mirror, self.run, batch).map(drop),
            Some(send) => match send.send(batch) {
                Ok(()) => Ok(()),
                // The thread ended: its error.
                Err(_) => self.finish(),
            },
        }
    }

    /// Free the outcomes committed so far.
    fn free_spent(&self) {
        if let Some(spent) = &self.spent {
            spent.try_iter().for_each(drop);
        }
    }

    /// The thread's write failed: nothing more is worth doing.
    fn failed(&self) -> bool {
        self.send.is_some() && self.thread.as_ref().is_some_and(std::thread::JoinHandle::is_finished)
    }

    /// Every batch committed, or the first error.
    fn finish(&mut self) -> Result<(), MirrorError> {
        drop(self.send.take());
        let joined = self.thread.take().map(std::thread::JoinHandle::join);
        self.free_spent();
        match joined {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(panic)) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.send.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One operation done (or not attempted), waiting to be recorded.
struct Done {
    op: Op,
    applied: Applied,
    created: Option<TargetId>,
    change: BindingChange,
    error: Option<String>,
    sent: Vec<SentValue>,
    /// What it changed, as the run log keeps it (JSON).
    changes: Option<String>,
}

/// A value as the run log shows it: long ones cut.
fn shown(v: &str) -> std::borrow::Cow<'_, str> {
    match v.char_indices().nth(120) {
        Some((end, _)) => format!("{}…", &v[..end]).into(),
        None => v.into(),
    }
}

/// One change as the run log keeps it.
#[derive(serde::Serialize)]
struct Shown<'a> {
    field: &'static str,
    from: Option<std::borrow::Cow<'a, str>>,
    to: Option<std::borrow::Cow<'a, str>>,
}

/// An op's changes as the run log keeps them, written straight from the
/// op (no JSON tree per item): an update's as `[{"field", "from", "to"}]`;
/// a create's, all from none, as `[[field, value]]` pairs (less than half
/// the text: an initial sync writes one per object). `mirror::runs` reads
/// both back in the first form.
fn changes_json(op: &Op) -> Option<String> {
    let set = op.set_values();
    if !set.is_empty() {
        let pairs: Vec<(&str, std::borrow::Cow<'_, str>)> = set.iter().map(|(field, v)| (field.as_str(), shown(v))).collect();
        return serde_json::to_string(&pairs).ok();
    }
    let changes = op.changes();
    if changes.is_empty() {
        return None;
    }
    let list: Vec<Shown<'_>> = changes
        .iter()
        .map(|c| Shown { field: c.field.as_str(), from: c.from.as_deref().map(shown), to: c.to.as_deref().map(shown) })
        .collect();
    serde_json::to_string(&list).ok()
}

/// Shutdown as the apply sees it: `stop` starts no new operation,
/// `abandon` (the grace period's end) drops the ones in flight;
/// `unreachable_after` operations in a row that cannot reach the target
/// end it too.
#[derive(Clone, Copy, Debug)]
pub struct Stops<'a> {
    pub stop: &'a CancellationToken,
    pub abandon: &'a CancellationToken,
    pub unreachable_after: Option<usize>,
    /// Objects with earlier failures: their successes are reported too.
    pub watched: &'a retry::Failures,
}

/// The phase of user disables and deletes; department deletes follow.
const REMOVALS: u8 = 4;

impl Ctx<'_> {
    /// Tell the target who leaves which groups; where it batches them,
    /// flush: what it deferred so far goes now, those departures in the
    /// same batches.
    async fn flush_before_removals(&self, removals: &[Op]) -> Result<Vec<crate::targets::Deferred>, TargetError> {
        let users: Vec<(&TargetId, &[TargetId])> = removals
            .iter()
            .filter_map(|op| match op {
                Op::DeleteUser { target_id, departments, .. } => Some((target_id, departments.as_slice())),
                _ => None,
            })
            .collect();
        let departments: Vec<&TargetId> = removals
            .iter()
            .filter_map(|op| match op {
                Op::DeleteDepartment { target_id, .. } => Some(target_id),
                _ => None,
            })
            .collect();
        if (users.is_empty() && departments.is_empty()) || !self.target.leaving(&users, &departments) {
            return Ok(Vec::new());
        }
        self.target.flush().await
    }
}

/// Outcomes per mirror transaction, at most. Each commit writes again
/// every index page its batch touched (binding ids land at random places):
/// at 100,000 creates, transactions of 10,000 spent 0.71 s in SQLite where
/// transactions of 2,000 spent 0.85 s.
const BATCH: usize = 10_000;
/// Outcomes handed to the mirror's thread at once, and the longest they
/// wait to be: its first transaction begins early, and on a target slower
/// than 10,000 operations a second the wait bounds a batch.
const CHUNK: usize = 2_000;
const BATCH_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

pub async fn apply(
    mut ops: Vec<Op>,
    target: &dyn Target,
    mirror: &Mirror,
    run: RunId,
    bindings: Bindings,
    concurrency: usize,
    Stops { stop, abandon, unreachable_after, watched }: Stops<'_>,
) -> Result<Outcome, MirrorError> {
    let back = bindings.departments.iter().map(|(s, t)| (t.clone(), s.clone())).collect();
    let ctx = Ctx {
        target,
        run,
        departments: Mutex::new((bindings.departments, back)),
        users: Mutex::new(bindings.users),
        stop,
        abandon,
        streak: 0.into(),
        unreachable_after,
        dead: CancellationToken::new(),
    };
    let mut outcome = Outcome::default();
    let mut flushed = false;
    // Each phase's operations are taken out of the plan, and each is
    // dropped once recorded: a run's memory does not hold every create's
    // spec beside the accounts made from them.
    while let Some(first) = ops.first() {
        let phase = first.phase();
        if phase.0 >= REMOVALS && !flushed && !ctx.dead.is_cancelled() && !stop.is_cancelled() {
            // The leavers' departures ride in the groups' membership batches.
            flushed = true;
            outcome.deferred = ctx.flush_before_removals(&ops).await;
            if outcome.deferred.is_err() {
                break;
            }
        }
        let end = ops.iter().position(|o| o.phase() != phase).unwrap_or(ops.len());
        let mut done = futures::stream::iter(ops.drain(..end)).map(|op| ctx.one(op)).buffer_unordered(concurrency.max(1));
        let mut pending: Vec<Done> = Vec::new();
        // One writer a phase: a phase ends with its records committed (a
        // full disk ends the run before the next phase's writes).
        let mut writer = Writer::new(mirror, run);
        let mut since = std::time::Instant::now();
        while let Some(d) = done.next().await {
            // What `reconcile::retry` judges: failures, and successes of objects that had failed.
            let failed = matches!(d.applied, Applied::Failed);
            if let Some(k) = retry::key(&d.op).filter(|k| failed || (d.applied != Applied::NotAttempted && watched.contains_key(k))) {
                outcome.results.push((k, failed.then(|| d.error.clone().unwrap_or_default())));
            }
            match (d.applied, &d.op) {
                (Applied::NotAttempted, _) => outcome.not_attempted += 1,
                // Bind/unbind touch only the mirror: they are not target writes.
                (_, op) if op.mirror_only() => {}
                (Applied::Ok, _) => outcome.ok += 1,
                (Applied::Failed, _) => outcome.failed += 1,
                (Applied::Refused, _) => {
                    outcome.failed += 1;
                    outcome.refused += 1;
                }
            }
            pending.push(d);
            if pending.len() >= CHUNK || since.elapsed() >= BATCH_WAIT {
                writer.write(std::mem::take(&mut pending))?;
                since = std::time::Instant::now();
            }
            if writer.failed() {
                writer.finish()?;
            }
        }
        writer.write(pending)?;
        writer.finish()?;
    }
    outcome.unreachable = ctx.dead.is_cancelled().then_some(unreachable_after.unwrap_or_default() as u64);
    super::free_aside((ctx.departments, ctx.users));
    Ok(outcome)
}

#[cfg(test)]
mod changes_tests {
    use super::*;
    use crate::reconcile::{Change, Field, UserSpec, Verb};

    /// A binding's hash as every earlier release wrote it.
    #[test]
    fn a_spec_s_hash_is_the_first_16_bytes_of_its_sha256_in_hex() {
        let spec = UserSpec { external_id: "u1".into(), name: Some("Ann".into()), ..UserSpec::default() };
        let d = Sha256::digest(serde_json::to_vec(&spec).unwrap());
        let want: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
        assert_eq!(hash(&spec), Some(want));
        assert_eq!(hash(&spec).unwrap().len(), 32);
    }

    /// A create's values are kept as pairs and read back, like an update's,
    /// as changes from none; long values cut, absent ones left out.
    #[test]
    fn a_create_s_values_are_kept_as_pairs_and_read_back_as_changes() {
        let spec = UserSpec {
            external_id: "u1".into(),
            name: Some("名".repeat(130)),
            departments: Some(vec!["d1".into(), "d2".into()]),
            ..UserSpec::default()
        };
        let op = Op::CreateUser { source_id: "u1".into(), spec: Box::new(spec), note: None };
        let text = changes_json(&op).unwrap();
        let cut = format!("{}…", "名".repeat(120));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            serde_json::json!([["external_id", "u1"], ["name", cut], ["departments", "d1,d2"], ["active", "false"]])
        );
        let dir = tempfile::tempdir().unwrap();
        let mirror = Mirror::open(dir.path()).unwrap();
        let run = mirror.start_run("manual").unwrap();
        let (u1, t1) = (SourceId::from("u1"), TargetId::from("t1"));
        let row = ItemRow {
            kind: Kind::User,
            op: Verb::Create,
            source_id: Some(&u1),
            target_id: Some(&t1),
            outcome: crate::reconcile::Outcome::Ok,
            error: None,
            changes: Some(&text),
        };
        mirror.record(run, &row, BindingChange::None).unwrap();
        let want: Vec<serde_json::Value> = op
            .changes()
            .iter()
            .map(|c| serde_json::json!({"field": c.field.as_str(), "from": null, "to": c.to.as_deref().map(shown)}))
            .collect();
        assert_eq!(want.len(), 4);
        assert_eq!(mirror.items(run).unwrap()[0].changes, Some(serde_json::Value::Array(want)));
    }

    /// The run log's changes: each field with its old and new value, null
    /// for none, values past 120 characters cut (by character, not byte).
    #[test]
    fn changes_are_kept_as_json_with_long_values_cut() {
        let long = "名".repeat(130);
        let op = Op::UpdateUser {
            source_id: "u1".into(),
            target_id: "t1".into(),
            spec: Box::default(),
            old_departments: vec![],
            changes: vec![
                Change { field: Field::Name, from: None, to: Some("Zhang \"San\"".into()) },
                Change { field: Field::Title, from: Some(long.clone()), to: None },
            ],
        };
        let json: serde_json::Value = serde_json::from_str(&changes_json(&op).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                {"field": "name", "from": null, "to": "Zhang \"San\""},
                {"field": "title", "from": format!("{}…", "名".repeat(120)), "to": null},
            ])
        );
        let none = Op::UpdateUser {
            source_id: "u1".into(),
            target_id: "t1".into(),
            spec: Box::<UserSpec>::default(),
            old_departments: vec![],
            changes: vec![],
        };
        assert_eq!(changes_json(&none), None);
    }
}
