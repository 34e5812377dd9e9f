//! One run: fetch -> load target + bindings -> reconcile -> apply -> record.
//!
//! The run's status follows docs/design.md: `failed` when the source or the
//! target could not be read or nothing could be applied; `partial` when some
//! operations failed or the plan held something back (guard, conflicts,
//! unmatchable users, invalid source data); otherwise `succeeded`.

mod apply;
pub mod explain;
pub mod worker;

use crate::clock::{Clock, SystemClock};
use crate::mirror::{ItemRow, Mirror, MirrorError, ObjectCounts, RunId, RunRecord, RunStatus, Sides};
use crate::model::Bindings;
use crate::reconcile::{self, Outcome, Plan, Policy, RunOptions};
use crate::settings::Config;
use crate::sources::{self, IdentitySource, SourceError};
use crate::targets::{self, Target, TargetError};
use crate::telemetry;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// Why a run failed before or after applying, as recorded with the run.
/// Each keeps its cause; `metric_label` is a bounded reason.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot fetch the source ({kind}): {source}; nothing was changed")]
    Fetch {
        kind: &'static str,
        #[source]
        source: SourceError,
    },
    #[error("cannot set up the target: {0}; nothing was changed")]
    SetupTarget(#[source] TargetError),
    #[error("cannot read the target: {0}; nothing was changed")]
    ReadTarget(#[source] TargetError),
    #[error("cannot write the target: {0}")]
    WriteTarget(#[source] TargetError),
}

impl RunError {
    /// A short, bounded label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            RunError::Fetch { .. } => "fetch",
            RunError::SetupTarget(_) => "setup_target",
            RunError::ReadTarget(_) => "read_target",
            RunError::WriteTarget(_) => "write_target",
        }
    }

    /// The next run may well succeed without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        match self {
            RunError::Fetch { source, .. } => source.is_transient(),
            RunError::ReadTarget(e) | RunError::WriteTarget(e) => e.is_transient(),
            RunError::SetupTarget(_) => false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Mirror(#[from] MirrorError),
    // The cause is the `source()`: `{:#}` (the CLI's error line) prints it
    // after the context, once.
    #[error("cannot fetch the source")]
    Source(#[source] SourceError),
    #[error("cannot read the target")]
    Target(#[source] TargetError),
    #[error("cannot run the sync on its own thread: {0}")]
    Thread(#[source] std::io::Error),
}

impl From<SourceError> for SyncError {
    fn from(e: SourceError) -> Self {
        SyncError::Source(e)
    }
}

impl From<TargetError> for SyncError {
    fn from(e: TargetError) -> Self {
        SyncError::Target(e)
    }
}

/// [`run`] on a thread of its own with its own runtime, so that nothing a
/// run does (SQLite, planning, a file target's writes, a source that never
/// yields) can hold up the caller's runtime: watchdog pings, signals and
/// HTTP keep being served while it runs.
pub async fn run_on_own_thread(
    config: Arc<Config>,
    mirror: Arc<Mirror>,
    trigger: &'static str,
    events: Vec<String>,
    options: RunOptions,
    only: Option<reconcile::only::Only>,
    stop: CancellationToken,
) -> Result<RunRecord, SyncError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("orgsync-run".into())
        .spawn(move || {
            crate::telemetry::set_run_kind(match (&only, trigger) {
                (None, _) => "full",
                (Some(_), "event") => "event",
                (Some(_), _) => "on_demand",
            });
            let result = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt.block_on(run_with_config(&config, &mirror, trigger, &events, options, only.as_ref(), &stop)),
                Err(e) => Err(SyncError::Thread(e)),
            };
            let _ = tx.send(result);
        })
        .map_err(SyncError::Thread)?;
    rx.await.map_err(|_| SyncError::Thread(std::io::Error::other("the run's thread ended without a result (panic)")))?
}

/// Fetch the whole source (or, on demand, the objects `only` names, by
/// id); fields it withheld are marked absent (they never change the
/// target), and said once. A document source (the file) is the whole
/// truth: nothing is withheld there. Read by id, a field the object lacks
/// is taken as withheld: an on-demand run never empties a value.
async fn fetch_source(
    source: &dyn IdentitySource,
    kept: Option<Vec<u8>>,
    policy: &Policy,
    scope: &reconcile::scope::Scope,
    only: Option<&reconcile::only::Only>,
) -> Result<sources::Fetched, SourceError> {
    let mut fetched = match only {
        Some(only) => sources::Fetched { snapshot: source.fetch_objects(only).await?.snapshot, state: None },
        None => {
            let fetched = source.fetch_since(kept).await?;
            let unknown = scope.unknown_includes(&fetched.snapshot);
            if !unknown.is_empty() {
                return Err(SourceError::UnknownScope { ids: unknown });
            }
            fetched
        }
    };
    settle(source, &mut fetched.snapshot, policy, scope, only.is_some());
    Ok(fetched)
}

/// What a run does to a fetched snapshot before planning: `[scope]`
/// applied, withheld fields marked absent (said once, unless the objects
/// were read by id).
fn settle(
    source: &dyn IdentitySource,
    snapshot: &mut crate::model::Snapshot,
    policy: &Policy,
    scope: &reconcile::scope::Scope,
    by_id: bool,
) {
    let (users, departments) = scope.apply(snapshot);
    if users + departments > 0 && !by_id {
        info!(source = source.kind(), users, departments, "Left out of scope ([scope])");
    }
    if source.is_document() {
        return;
    }
    let total = snapshot.users.len();
    for (field, users) in sources::mark_withheld(snapshot) {
        // Fields the mapping never carries are no news; say only what the
        // admin maps. Of objects read by id, it is no news either.
        if !policy.users.fields.contains(&field) || by_id {
            continue;
        }
        let field = field.as_str();
        if users == total {
            warn!(
                source = source.kind(),
                field,
                users,
                "The source provided this field for none of its users: withheld (a permission or field scope the app or \
                 bind account lacks, or an app created after the vendor stopped sending it); the target's values are kept"
            );
        } else {
            info!(
                source = source.kind(),
                field, users, total, "The source withheld this field for some users; their target values are kept"
            );
        }
    }
}

/// Under `disable_then_delete`: how many disabled leavers wait for deletion,
/// and when the first falls due (for `status` and `/status`).
pub fn waiting_for_deletion(config: &Config, mirror: &Mirror) -> Result<Option<serde_json::Value>, MirrorError> {
    if config.policy.users.target_only != reconcile::TargetOnly::DisableThenDelete {
        return Ok(None);
    }
    let (waiting, earliest) = mirror.grace()?;
    let grace = chrono::Duration::from_std(config.policy.users.delete_after).unwrap_or(chrono::Duration::MAX);
    let next_due = earliest
        .and_then(|at| chrono::DateTime::parse_from_rfc3339(&at).ok())
        .and_then(|at| at.with_timezone(&chrono::Utc).checked_add_signed(grace))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    Ok(Some(serde_json::json!({"waiting": waiting, "next_due": next_due})))
}

/// Fetch, load and plan without writing anything (not even the mirror).
/// What `sync --dry-run` shows: the plan, and its writes in the target's
/// own terms where the target gives them (LDAP: operations with DNs).
#[derive(Debug, serde::Serialize)]
pub struct DryRun {
    #[serde(flatten)]
    pub plan: Plan,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<String>,
}

pub async fn dry_run(config: &Config, options: RunOptions) -> Result<DryRun, SyncError> {
    let side = TargetSide::read(config).await?;
    let source = side.fetch(config).await?;
    let plan = side.plan(config, &source, options);
    let bound: std::collections::HashMap<&crate::model::SourceId, &crate::model::TargetId> = plan
        .ops
        .iter()
        .filter_map(|o| match o {
            reconcile::Op::Bind { kind: crate::model::Kind::Department, source_id, target_id, .. } => Some((source_id, target_id)),
            _ => None,
        })
        .chain(side.bindings.departments.iter())
        .collect();
    let operations = side.target.describe(&plan.ops, &|s| bound.get(s).map(|t| (*t).clone()));
    Ok(DryRun { plan, operations })
}

/// What a plan that writes nothing reads once of the target side: the
/// mirror (read-only, when there is one), its bindings and history, and
/// the target as it is now.
struct TargetSide {
    mirror: Option<Mirror>,
    bindings: Bindings,
    history: reconcile::History,
    target: Box<dyn Target>,
    current: crate::model::TargetSnapshot,
}

impl TargetSide {
    async fn read(config: &Config) -> Result<Self, SyncError> {
        let mut side = Self::open(config)?;
        side.current = side.target.load().await?;
        Ok(side)
    }

    /// The mirror and the target, the target not read yet.
    fn open(config: &Config) -> Result<Self, SyncError> {
        let mirror = Mirror::open_read_only(&config.state_dir)?;
        let (bindings, history) = match &mirror {
            Some(m) => (m.bindings()?, history(m)?),
            None => (Bindings::default(), reconcile::History::default()),
        };
        let target = targets::build(&config.target, &config.policy.users)?;
        Ok(TargetSide { mirror, bindings, history, target, current: crate::model::TargetSnapshot::default() })
    }

    /// The source of `config`, fetched as a run would (what it would keep
    /// for its next fetch is not kept: nothing is written).
    async fn fetch(&self, config: &Config) -> Result<crate::model::Snapshot, SyncError> {
        let built = sources::build(&config.source, &config.scope, &config.mapping);
        let kept = match &self.mirror {
            Some(m) => m.source_state(built.kind())?,
            None => None,
        };
        Ok(fetch_source(built.as_ref(), kept, &config.policy, &config.scope, None).await?.snapshot)
    }

    fn plan(&self, config: &Config, source: &crate::model::Snapshot, options: RunOptions) -> Plan {
        let options = against(self.target.as_ref(), options, chrono::Utc::now());
        reconcile::plan_with(source, &self.current, &self.bindings, &self.history, &config.policy, options).plan
    }
}

/// `orgsync plan`: the proposed config's plan beside the current one's,
/// against the current config's mirror and target. Writes nothing.
#[derive(Debug, serde::Serialize)]
pub struct Comparison {
    /// What differs between the two configs, by part.
    pub changed: Vec<&'static str>,
    /// The deletion guard's verdict under each (`None`: nothing held back).
    pub guard: Guards,
    pub differences: Vec<reconcile::compare::Difference>,
    /// Keys of the proposed config that were not used: the mirror and the
    /// target are the current config's.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<&'static str>,
}

#[derive(Debug, serde::Serialize)]
pub struct Guards {
    pub current: Option<String>,
    pub proposed: Option<String>,
}

pub async fn compare(current: &Config, proposed: &Config, options: RunOptions) -> Result<Comparison, SyncError> {
    let mut ignored = Vec::new();
    let mut proposed = proposed.clone();
    if proposed.state_dir != current.state_dir {
        ignored.push("state_dir");
        proposed.state_dir = current.state_dir.clone();
    }
    if format!("{:?}", proposed.target) != format!("{:?}", current.target) {
        ignored.push("target");
        proposed.target = current.target.clone();
    }
    let same_source = format!("{:?}", proposed.source) == format!("{:?}", current.source);
    // `[mapping]`'s expressions change what is fetched; its `unique` what is planned.
    let expressions = format!("{:?}", proposed.mapping) != format!("{:?}", current.mapping);
    let changed = reconcile::compare::Changed {
        scope: proposed.scope != current.scope || !same_source,
        mapping: proposed.policy.users.fields != current.policy.users.fields
            || expressions
            || proposed.policy.users.unique != current.policy.users.unique,
        policy: {
            let mut p = proposed.policy.clone();
            p.users.fields = current.policy.users.fields.clone();
            p.users.unique = current.policy.users.unique.clone();
            p != current.policy
        },
    };
    let names =
        [("source", !same_source), ("scope", proposed.scope != current.scope), ("mapping", changed.mapping), ("policy", changed.policy)];
    // One read of the mirror and the target; the source again only when
    // what is fetched changed.
    let side = TargetSide::read(current).await?;
    let source = side.fetch(current).await?;
    let proposed_source = if changed.scope || expressions { Some(side.fetch(&proposed).await?) } else { None };
    let now = side.plan(current, &source, options);
    let next = side.plan(&proposed, proposed_source.as_ref().unwrap_or(&source), options);
    Ok(Comparison {
        changed: names.iter().filter(|(_, c)| *c).map(|(n, _)| *n).collect(),
        guard: Guards { current: now.guard.clone(), proposed: next.guard.clone() },
        differences: reconcile::compare::compare(&now, &next, changed),
        ignored,
    })
}

/// The options of a plan against this target (after its load): how it
/// holds departments and user fields, and now.
fn against(target: &dyn Target, options: RunOptions, now: DateTime<Utc>) -> RunOptions {
    RunOptions {
        departments: target.departments(),
        unheld: target.unheld(),
        primary_only: target.primary_only(),
        now: Some(now),
        ..options
    }
}

/// What the mirror remembers that a plan takes into account.
fn history(mirror: &Mirror) -> Result<reconcile::History, MirrorError> {
    Ok(reconcile::History { unkept: mirror.unkept()?, failures: mirror.failures()?, said: mirror.said_managers()? })
}

/// Everything one run works with, passed in: the daemon and the CLI build
/// them from the config ([`run_with_config`]); tests pass their own.
pub struct RunContext<'a> {
    pub source: &'a dyn IdentitySource,
    pub target: &'a dyn Target,
    pub mirror: &'a Mirror,
    pub policy: &'a Policy,
    /// Operations in flight at once.
    pub concurrency: usize,
    /// Operations in a row that cannot reach the target before the run
    /// gives up on it (`target.unreachable_after`; none: never).
    pub unreachable_after: Option<usize>,
    /// Shutdown: no new operation starts.
    pub stop: &'a CancellationToken,
    /// From `stop`, how long operations in flight may take: at the end of
    /// it they are abandoned and recorded `not_attempted`, so that the run
    /// is recorded within `daemon.grace_period`.
    pub grace: std::time::Duration,
    /// The run's wall clock (its duration and end); the mirror's
    /// timestamps read the clock it was opened with.
    pub clock: &'a dyn Clock,
    /// Which part of the source is synced.
    pub scope: &'a reconcile::scope::Scope,
    /// On demand: only these objects (and the departments they need).
    pub only: Option<&'a reconcile::only::Only>,
}

impl std::fmt::Debug for RunContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunContext").field("source", &self.source.kind()).field("concurrency", &self.concurrency).finish_non_exhaustive()
    }
}

/// What a run is recorded as: its trigger; a run of some objects (`on_demand
/// …`, `event …`) names them, an event run its first events.
fn label(trigger: &str, only: Option<&reconcile::only::Only>, events: &[String]) -> String {
    const LISTED: usize = 10;
    let mut label = match only {
        Some(o) => format!("{} {o}", if trigger == "event" { "event" } else { "on_demand" }),
        None => trigger.to_owned(),
    };
    // A full run lists none: its trigger has no space, as a whole run's.
    if only.is_some() && !events.is_empty() {
        let mut listed = events.iter().take(LISTED).cloned().collect::<Vec<_>>().join(", ");
        if events.len() > LISTED {
            listed.push_str(&format!(", +{} more", events.len() - LISTED));
        }
        label.push_str(&format!(" (events: {listed})"));
    }
    label
}

/// A real run of the configured source and target. The caller holds the
/// state-dir lock. Returns the recorded run.
pub async fn run_with_config(
    config: &Config,
    mirror: &Mirror,
    trigger: &str,
    events: &[String],
    options: RunOptions,
    only: Option<&reconcile::only::Only>,
    stop: &CancellationToken,
) -> Result<RunRecord, SyncError> {
    let source = sources::build(&config.source, &config.scope, &config.mapping);
    // An on-demand run says what it was for; an event run, the events too.
    let label = label(trigger, only, events);
    let trigger = label.as_str();
    let target = match targets::build(&config.target, &config.policy.users) {
        Ok(t) => t,
        // Recorded, counted and logged like any other failed run.
        Err(e) => return Recording::start(mirror, &SystemClock, trigger, source.kind())?.fail(RunError::SetupTarget(e)),
    };
    let ctx = RunContext {
        source: source.as_ref(),
        target: target.as_ref(),
        mirror,
        policy: &config.policy,
        concurrency: config.target.concurrency(),
        unreachable_after: config.target.unreachable_after(),
        stop,
        grace: config.daemon.grace_period,
        clock: &SystemClock,
        scope: &config.scope,
        only,
    };
    let record = run(&ctx, trigger, options).await?;
    match mirror.prune_runs(config.keep_runs) {
        Ok(0) => {}
        Ok(n) => tracing::debug!(runs = n, keep = config.keep_runs, "Pruned old runs from the mirror"),
        Err(e) => warn!(error = %e, "Could not prune old runs from the mirror"),
    }
    if let Err(e) = mirror.checkpoint() {
        warn!(error = %e, "Could not checkpoint the mirror's write-ahead log");
    }
    Ok(record)
}

/// The writes the target deferred to its flush, as run items; their
/// failures count like any other operation's.
fn record_deferred(mirror: &Mirror, run: RunId, deferred: &[targets::Deferred], outcome: &mut apply::Outcome) -> Result<(), SyncError> {
    let texts: Vec<(Outcome, String)> = deferred
        .iter()
        .map(|d| match &d.result {
            Ok(done) => (Outcome::Ok, done.clone()),
            Err(e) => {
                warn!(run = %run, kind = %d.kind, op = %d.op, target_id = %d.target_id, error = %e, "Deferred operation failed");
                (Outcome::Failed, e.to_string())
            }
        })
        .collect();
    let rows: Vec<ItemRow<'_>> = deferred
        .iter()
        .zip(&texts)
        .map(|(d, (outcome, text))| {
            telemetry::operation(d.kind, d.op, *outcome);
            ItemRow {
                kind: d.kind,
                op: d.op,
                source_id: None,
                target_id: Some(&d.target_id),
                outcome: *outcome,
                error: Some(text),
                changes: None,
            }
        })
        .collect();
    mirror.record_all(run, &rows)?;
    if texts.iter().any(|(o, _)| *o == Outcome::Failed) {
        mirror.forget_sent_links(run)?;
    }
    for (outcome_text, _) in &texts {
        if *outcome_text == Outcome::Ok {
            outcome.ok += 1;
        } else {
            outcome.failed += 1;
        }
    }
    Ok(())
}

/// A run being recorded: its row in the mirror, and how it ends (mirror,
/// metrics, log).
struct Recording<'a> {
    mirror: &'a Mirror,
    clock: &'a dyn Clock,
    id: RunId,
    trigger: &'a str,
    started: DateTime<Utc>,
}

impl<'a> Recording<'a> {
    fn start(mirror: &'a Mirror, clock: &'a dyn Clock, trigger: &'a str, source: &str) -> Result<Self, SyncError> {
        let id = mirror.start_run(trigger)?;
        info!(run = %id, trigger, source, "Sync run started");
        Ok(Self { mirror, clock, id, trigger, started: clock.now() })
    }

    /// Time since the run started, by the run's clock.
    fn elapsed(&self) -> std::time::Duration {
        (self.clock.now() - self.started).to_std().unwrap_or_default()
    }

    fn finish(&self, status: RunStatus, message: Option<&str>) -> Result<RunRecord, SyncError> {
        let record = self.mirror.finish_run(self.id, status, message)?;
        let finished = self.clock.now().timestamp_millis() as f64 / 1000.0;
        telemetry::run_finished(self.trigger, status.as_str(), self.elapsed().as_secs_f64(), finished);
        Ok(record)
    }

    fn fail(&self, why: RunError) -> Result<RunRecord, SyncError> {
        let message = why.to_string();
        error!(run = %self.id, reason = why.metric_label(), transient = why.is_transient(), %message, "Sync run failed");
        metrics::counter!(telemetry::m::RUN_FAILURES_TOTAL, "reason" => why.metric_label()).increment(1);
        self.finish(RunStatus::Failed, Some(&message))
    }

    /// The mirror could not be written: record the run `failed` with why,
    /// when even that is possible (else the next start marks it
    /// interrupted), and say it.
    fn lost(&self, e: MirrorError) -> Result<RunRecord, SyncError> {
        let message = format!("the mirror could not be written, so the run stopped there: {e}");
        error!(run = %self.id, %message, "Sync run failed");
        metrics::counter!(telemetry::m::RUN_FAILURES_TOTAL, "reason" => "mirror").increment(1);
        self.finish(RunStatus::Failed, Some(&message)).map_err(|_| SyncError::Mirror(e))
    }

    /// Not a failure: nothing went wrong, the next run does it all.
    fn stopped(&self) -> Result<RunRecord, SyncError> {
        warn!(run = %self.id, "Sync run stopped by shutdown before anything was applied");
        self.finish(RunStatus::Partial, Some("stopped by shutdown before anything was applied; nothing was changed (the next run does it)"))
    }
}

/// What is left of the grace period for recording the run once the
/// operations in flight are abandoned: a quarter of it, at most 2 s.
fn recording_margin(grace: std::time::Duration) -> std::time::Duration {
    (grace / 4).min(std::time::Duration::from_secs(2))
}

/// A token that fires `grace` (less the recording margin) after `stop`
/// does: the hard deadline for operations in flight. The timer is a task
/// of the run's runtime and ends with it.
fn abandon_after(stop: &CancellationToken, grace: std::time::Duration) -> CancellationToken {
    let abandon = CancellationToken::new();
    let (stop, fire) = (stop.clone(), abandon.clone());
    let after = grace.saturating_sub(recording_margin(grace));
    tokio::spawn(async move {
        tokio::select! {
            _ = async { stop.cancelled().await; tokio::time::sleep(after).await } => fire.cancel(),
            _ = fire.cancelled() => {}
        }
    });
    abandon
}

/// One run: fetch -> load -> plan -> apply -> record.
///
/// When `stop` fires (SIGTERM), no new operation starts: the fetch is
/// abandoned (nothing changed), or the operations in flight finish and the
/// rest are recorded `not_attempted`; the next run picks them up.
pub async fn run(ctx: &RunContext<'_>, trigger: &str, options: RunOptions) -> Result<RunRecord, SyncError> {
    let record = run_recorded(ctx, trigger, options).await;
    // Whatever became of the run, its requests are kept with it.
    let requests = ctx.target.requests();
    if let (Ok(r), false) = (&record, requests.is_empty())
        && let Err(e) = ctx.mirror.record_requests(r.id, &requests)
    {
        warn!(run = %r.id, error = %e, "Could not keep the run's request log");
    }
    record
}

async fn run_recorded(ctx: &RunContext<'_>, trigger: &str, options: RunOptions) -> Result<RunRecord, SyncError> {
    let recording = Recording::start(ctx.mirror, ctx.clock, trigger, ctx.source.kind())?;
    match run_started(ctx, &recording, options).await {
        // The mirror refused a write (a full disk): the run ends `failed`
        // with the reason where it can still be recorded, never `running`.
        Err(SyncError::Mirror(e)) => recording.lost(e),
        other => other,
    }
}

async fn run_started(ctx: &RunContext<'_>, recording: &Recording<'_>, options: RunOptions) -> Result<RunRecord, SyncError> {
    let RunContext { source, target, mirror, policy, concurrency, unreachable_after, stop, grace, clock, scope, only } = *ctx;
    let run_id = recording.id;

    // Fetch everything before touching anything: a failed fetch writes nothing.
    let kept = mirror.source_state(source.kind())?;
    let (bindings, read) = match only {
        Some(o) => {
            let bindings = mirror.bindings()?;
            let read = until_stopped(stop, read_both(source, target, kept, policy, scope, Some((o, &bindings)))).await;
            (bindings, read)
        }
        None => {
            // The reads start first: the bindings load while the documents
            // parse on threads of their own, or the first pages come.
            let mut reads = std::pin::pin!(read_both(source, target, kept, policy, scope, None));
            let first = futures::poll!(reads.as_mut());
            let bindings = mirror.bindings()?;
            let read = match first {
                std::task::Poll::Ready(r) => Some(r),
                std::task::Poll::Pending => until_stopped(stop, reads).await,
            };
            (bindings, read)
        }
    };
    let (fetched, current) = match read {
        Some(Ok(v)) => v,
        Some(Err(why)) => return recording.fail(why),
        None => return recording.stopped(),
    };
    // The source's view is complete: what it keeps for its next fetch is
    // kept now (the plan below compares with the target, so a run that
    // fails later loses nothing by it).
    if let Some(state) = &fetched.state {
        mirror.save_source_state(source.kind(), Some(state))?;
    }
    let snapshot = fetched.snapshot;
    let mut options = against(target, options, clock.now());
    if only.is_some() {
        options.prior_removals = mirror.removals_since_full_run()?;
    }
    let history = history(mirror)?;
    let mut current = current;
    let reconcile::Planned { mut plan, memory, held } = match only {
        Some(o) => {
            let inputs = OnDemand { snapshot: &snapshot, bindings: &bindings, history: &history, policy, options, only: o };
            match on_demand_plan(target, &mut current, &inputs).await {
                Ok(p) => p,
                Err(e) => return recording.fail(RunError::ReadTarget(e)),
            }
        }
        None => reconcile::plan_with(&snapshot, &current, &bindings, &history, policy, options),
    };
    say_unkept(run_id, &memory);
    mirror.update_unkept(&memory)?;
    // Objects that keep failing wait out their backoff, or their quarantine.
    if held > 0 {
        info!(run = %run_id, objects = held, "Objects that failed lately wait (backoff) or are quarantined; `orgsync status` lists them");
    }
    mirror.unschedule(&plan.unscheduled)?;
    if stop.is_cancelled() {
        return recording.stopped();
    }
    info!(
        run = %run_id,
        source_users = snapshot.users.len(),
        source_departments = snapshot.departments.len(),
        target_users = current.users.len(),
        target_departments = current.departments.len(),
        operations = plan.ops.len(),
        items = plan.items.len(),
        "Plan ready"
    );
    if let Some(g) = &plan.guard {
        warn!(run = %run_id, "{g}");
    }
    record_items(mirror, run_id, &plan)?;
    // The plan holds what the apply needs: both directories go before it
    // starts (at 100,000 users, the target's grows back as it is written).
    let counts = sides(&snapshot, &current);
    free_aside((snapshot, current));

    let abandon = abandon_after(stop, grace);
    let _timer = abandon.clone().drop_guard();
    let mut outcome = apply::apply(
        std::mem::take(&mut plan.ops),
        target,
        mirror,
        run_id,
        bindings,
        concurrency,
        apply::Stops { stop, abandon: &abandon, unreachable_after, watched: &history.failures },
    )
    .await?;
    // A target judged unreachable is not asked for its deferred writes either.
    let mut deferred = match std::mem::replace(&mut outcome.deferred, Ok(Vec::new())) {
        Ok(d) => d,
        Err(e) => return recording.fail(RunError::WriteTarget(e)),
    };
    if outcome.unreachable.is_none() {
        match target.flush().await {
            Ok(d) => deferred.extend(d),
            Err(e) => return recording.fail(RunError::WriteTarget(e)),
        }
    }
    record_deferred(mirror, run_id, &deferred, &mut outcome)?;
    // A dead target fails whatever was in flight: no object's fault.
    let mut results = std::mem::take(&mut outcome.results);
    if outcome.unreachable.is_some() {
        results.retain(|(_, error)| error.is_none());
    }
    let retried = reconcile::retry::after(&history.failures, results, clock.now(), policy.retry.quarantine_after);
    mirror.keep_failures(&retried)?;
    let quarantined = mirror.failing()?.iter().filter(|f| f.quarantined).count();
    metrics::gauge!(telemetry::m::QUARANTINED).set(quarantined as f64);
    // Objects read by id say nothing of the source's size.
    if only.is_none() {
        record_objects(mirror, run_id, counts)?;
    }

    let (status, message) = verdict(&plan, &outcome, &retried, policy, run_id);
    let record = recording.finish(status, message.as_deref())?;
    info!(
        run = %run_id,
        status = status.as_str(),
        created = record.count(Some(crate::reconcile::Verb::Create), crate::reconcile::Outcome::Ok),
        updated = record.count(Some(crate::reconcile::Verb::Update), crate::reconcile::Outcome::Ok),
        disabled = record.count(Some(crate::reconcile::Verb::Disable), crate::reconcile::Outcome::Ok),
        deleted = record.count(Some(crate::reconcile::Verb::Delete), crate::reconcile::Outcome::Ok),
        bound = record.count(Some(crate::reconcile::Verb::Bind), crate::reconcile::Outcome::Ok),
        failed = outcome.failed,
        held_back = record.count(None, crate::reconcile::Outcome::HeldBack),
        duration_ms = recording.elapsed().as_millis() as u64,
        "Sync run finished"
    );
    Ok(record)
}

/// Free `v` on a thread of its own while the run goes on (at 100,000
/// users, both directories take 50 ms to free, the apply's bindings 5 ms);
/// here if no thread can be had.
fn free_aside<T: Send + 'static>(v: T) {
    // A spawn that fails drops its closure, and `v` with it, here.
    let _ = std::thread::Builder::new().name("orgsync-free".into()).spawn(move || drop(v));
}

/// `work`'s result, or none when `stop` fires first.
async fn until_stopped<T>(stop: &CancellationToken, work: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::select! {
        r = work => Some(r),
        _ = stop.cancelled() => None,
    }
}

/// Both reads at once (neither writes): the source's parse and the
/// target's pages overlap. The first to fail ends both.
async fn read_both(
    source: &dyn IdentitySource,
    target: &dyn Target,
    kept: Option<Vec<u8>>,
    policy: &Policy,
    scope: &reconcile::scope::Scope,
    only: Option<(&reconcile::only::Only, &Bindings)>,
) -> Result<(sources::Fetched, crate::model::TargetSnapshot), RunError> {
    let fetch = |only| async move {
        fetch_source(source, kept, policy, scope, only).await.map_err(|e| RunError::Fetch { kind: source.kind(), source: e })
    };
    match only {
        // On demand: the objects first, then what the target has of them.
        Some((only, bindings)) => {
            let fetched = fetch(Some(only)).await?;
            let wanted = targets::Wanted::of(only, &fetched.snapshot, bindings, &policy.users.match_by);
            let current = target.load_for(&wanted).await.map_err(RunError::ReadTarget)?;
            Ok((fetched, current))
        }
        None => tokio::try_join!(fetch(None), async { target.load().await.map_err(RunError::ReadTarget) }),
    }
}

/// What an on-demand plan is made from, but the target.
pub(crate) struct OnDemand<'a> {
    pub snapshot: &'a crate::model::Snapshot,
    pub bindings: &'a Bindings,
    pub history: &'a reconcile::History,
    pub policy: &'a Policy,
    pub options: RunOptions,
    pub only: &'a reconcile::only::Only,
}

/// The plan of the objects named. Where the target was read only for them
/// and the plan creates an account, the target is read whole and the plan
/// made again: an account a filter did not find (a mobile written another
/// way, a server comparing case) must not get a duplicate.
pub(crate) async fn on_demand_plan(
    target: &dyn Target,
    current: &mut crate::model::TargetSnapshot,
    i: &OnDemand<'_>,
) -> Result<reconcile::Planned, TargetError> {
    let planned = reconcile::only::plan(i.snapshot, current, i.bindings, i.history, i.policy, i.options, i.only);
    let creates = planned.plan.ops.iter().any(|o| matches!(o, reconcile::Op::CreateUser { .. }));
    // Unique values are judged against every account, not the few read.
    let unique = !i.policy.users.unique.is_empty() && !planned.plan.ops.is_empty();
    if !((creates || unique) && target.reads_in_part()) {
        return Ok(planned);
    }
    *current = target.load().await?;
    Ok(reconcile::only::plan(i.snapshot, current, i.bindings, i.history, i.policy, i.options, i.only))
}

/// Say once, when found, the values the target accepted and does not keep.
fn say_unkept(run_id: RunId, memory: &reconcile::unkept::MemoryChanges) {
    if !memory.not_kept.is_empty() {
        // Accepted with a 2xx, yet not there on this read: said once, when found.
        let named: Vec<String> = memory.not_kept.iter().take(5).map(|(k, id, f)| format!("{k} {id} {f}")).collect();
        warn!(
            run = %run_id,
            values = memory.not_kept.len(),
            first = %named.join(", "),
            "The target accepted values it does not keep; they are not sent again until the source changes them (not_kept items)"
        );
    }
    let unnested = memory.not_kept.iter().filter(|(_, _, f)| *f == reconcile::Field::Parent).count();
    if unnested > 0 {
        warn!(
            run = %run_id,
            departments = unnested,
            "The target does not keep groups in groups: departments' groups added to their parents with a 2xx are not there; \
             the tree stays flat on this target (users only) and the parent links are not sent again"
        );
    }
}

/// The plan's items (what it reports instead of doing) as run items.
fn record_items(mirror: &Mirror, run_id: RunId, plan: &Plan) -> Result<(), MirrorError> {
    let held_back = plan.items.iter().filter(|i| i.outcome == reconcile::Outcome::HeldBack).count();
    metrics::gauge!(telemetry::m::DELETES_HELD_BACK).set(held_back as f64);
    let rows: Vec<ItemRow<'_>> = plan
        .items
        .iter()
        .map(|item| {
            telemetry::operation(item.kind, item.op, item.outcome);
            ItemRow {
                kind: item.kind,
                op: item.op,
                source_id: item.source_id.as_ref(),
                target_id: item.target_id.as_ref(),
                outcome: item.outcome,
                error: Some(&item.message),
                changes: None,
            }
        })
        .collect();
    mirror.record_all(run_id, &rows)?;
    Ok(())
}

/// What the run saw on each side and bound, recorded with it and as gauges.
/// Users and departments on each side, the bound ones counted later.
fn sides(snapshot: &crate::model::Snapshot, current: &crate::model::TargetSnapshot) -> (Sides, Sides) {
    let side = |source: usize, target: usize| Sides { source: source as u64, target: target as u64, bound: 0 };
    (side(snapshot.users.len(), current.users.len()), side(snapshot.departments.len(), current.departments.len()))
}

fn record_objects(mirror: &Mirror, run_id: RunId, (users, departments): (Sides, Sides)) -> Result<(), MirrorError> {
    let (bound_users, bound_departments) = mirror.binding_counts()?;
    let objects =
        ObjectCounts { users: Sides { bound: bound_users, ..users }, departments: Sides { bound: bound_departments, ..departments } };
    mirror.set_objects(run_id, &objects)?;
    for (kind, sides) in [("user", objects.users), ("department", objects.departments)] {
        for (side, n) in [("source", sides.source), ("target", sides.target), ("bound", sides.bound)] {
            metrics::gauge!(telemetry::m::OBJECTS, "kind" => kind, "side" => side).set(n as f64);
        }
    }
    Ok(())
}

/// The run's status and message from what it did (docs/design.md: run
/// statuses): failed when the target was unreachable or nothing could be
/// applied, partial with a reason for each problem, else succeeded.
fn verdict(
    plan: &Plan,
    outcome: &apply::Outcome,
    retried: &reconcile::retry::Changes,
    policy: &Policy,
    run_id: RunId,
) -> (RunStatus, Option<String>) {
    let mut reasons = Vec::new();
    if let Some(g) = &plan.guard {
        reasons.push(g.clone());
    }
    if let Some(n) = outcome.unreachable {
        reasons.push(format!(
            "target unreachable: {n} operations in a row could not reach it; {} operations not attempted (the next run does them)",
            outcome.not_attempted
        ));
    } else if outcome.not_attempted > 0 {
        reasons.push(format!("stopped by shutdown: {} operations not attempted (the next run does them)", outcome.not_attempted));
    }
    if outcome.failed > 0 {
        reasons.push(format!("{} of {} operations failed (see `orgsync runs show {run_id}`)", outcome.failed, outcome.failed + outcome.ok));
    }
    if retried.quarantined > 0 {
        reasons.push(format!(
            "{} objects quarantined after {} failures in a row: left out of later runs until `orgsync retry` releases them",
            retried.quarantined, policy.retry.quarantine_after
        ));
    }
    // Held back: the guard's reason says it. Unmatchable users were skipped
    // by the admin's policy (create_without_match_keys = false), and a
    // department outside a scoped fetch is normal: neither is a problem.
    let skipped = plan.items.iter().filter(|i| matches!(i.outcome, reconcile::Outcome::Conflict | reconcile::Outcome::Invalid)).count();
    if skipped > 0 {
        reasons.push(format!("{skipped} objects skipped: conflicts or invalid source data (see `orgsync runs show {run_id}`)"));
    }
    let writes = outcome.ok + outcome.failed;
    // Refusals are partly applied: a run of nothing else is partial.
    let status = if outcome.unreachable.is_some() {
        RunStatus::Failed
    } else if outcome.failed > outcome.refused && outcome.ok == 0 && writes > 0 {
        reasons.insert(0, "nothing could be applied".into());
        RunStatus::Failed
    } else if reasons.is_empty() {
        RunStatus::Succeeded
    } else {
        RunStatus::Partial
    };
    let message = (!reasons.is_empty()).then(|| reasons.join("; "));
    (status, message)
}

#[cfg(test)]
mod tests;
