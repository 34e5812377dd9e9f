//! One run: fetch -> load target + bindings -> reconcile -> apply -> record.
//!
//! The run's status follows DESIGN.md: `failed` when the source or the
//! target could not be read or nothing could be applied; `partial` when some
//! operations failed or the plan held something back (guard, conflicts,
//! unmatchable users, invalid source data); otherwise `succeeded`.

mod apply;
pub mod worker;

use crate::config::Config;
use crate::mirror::{BindingChange, Mirror, MirrorError, RunRecord, RunStatus};
use crate::model::Bindings;
use crate::reconcile::{self, Plan, RunOptions};
use crate::source::{self, SourceError};
use crate::target::{self, Target, TargetError};
use std::time::Instant;
use tracing::{error, info, warn};

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Mirror(#[from] MirrorError),
    #[error("cannot fetch the source: {0}")]
    Source(#[from] SourceError),
    #[error("cannot read the target: {0}")]
    Target(#[from] TargetError),
}

/// Fetch, load and plan without writing anything (not even the mirror).
pub async fn dry_run(config: &Config, options: RunOptions) -> Result<Plan, SyncError> {
    let bindings = match Mirror::open_read_only(&config.state_dir)? {
        Some(m) => m.bindings()?,
        None => Bindings::default(),
    };
    let source = source::build(&config.source).fetch().await?;
    let target = target::build(&config.target, &config.policy.users.match_by)?.load().await?;
    Ok(reconcile::plan(&source, &target, &bindings, &config.policy, options))
}

/// A real run. The caller holds the state-dir lock. Returns the recorded run.
pub async fn run(config: &Config, mirror: &Mirror, trigger: &str, options: RunOptions) -> Result<RunRecord, SyncError> {
    let started = Instant::now();
    let run_id = mirror.start_run(trigger)?;
    info!(run = run_id, trigger, source = config.source.kind(), "Sync run started");
    let fail = |message: String| -> Result<RunRecord, SyncError> {
        error!(run = run_id, %message, "Sync run failed");
        Ok(mirror.finish_run(run_id, RunStatus::Failed, Some(&message))?)
    };

    // Fetch everything before touching anything: a failed fetch writes nothing.
    let source = match source::build(&config.source).fetch().await {
        Ok(s) => s,
        Err(e) => return fail(format!("cannot fetch the source ({}): {e}; nothing was changed", config.source.kind())),
    };
    let target: Box<dyn Target> = match target::build(&config.target, &config.policy.users.match_by) {
        Ok(t) => t,
        Err(e) => return fail(format!("cannot set up the target: {e}; nothing was changed")),
    };
    let current = match target.load().await {
        Ok(t) => t,
        Err(e) => return fail(format!("cannot read the target: {e}; nothing was changed")),
    };
    let bindings = mirror.bindings()?;
    let plan = reconcile::plan(&source, &current, &bindings, &config.policy, options);
    info!(
        run = run_id,
        source_users = source.users.len(),
        source_departments = source.departments.len(),
        target_users = current.users.len(),
        target_departments = current.departments.len(),
        operations = plan.ops.len(),
        items = plan.items.len(),
        "Plan ready"
    );
    if let Some(g) = &plan.guard {
        warn!(run = run_id, "{g}");
    }
    for item in &plan.items {
        mirror.record(
            run_id,
            item.kind,
            item.op,
            item.source_id.as_ref(),
            item.target_id.as_ref(),
            item.outcome.as_str(),
            Some(&item.message),
            BindingChange::None,
        )?;
    }

    let concurrency = match &config.target {
        crate::config::TargetConfig::Scim(c) => c.concurrency,
        crate::config::TargetConfig::File { .. } => 1,
    };
    let outcome = apply::apply(&plan, target.as_ref(), mirror, run_id, bindings, concurrency).await?;
    if let Err(e) = target.flush().await {
        return fail(format!("cannot write the target: {e}"));
    }

    let mut reasons = Vec::new();
    if let Some(g) = &plan.guard {
        reasons.push(g.clone());
    }
    if outcome.failed > 0 {
        reasons.push(format!("{} of {} operations failed (see `orgsync runs show {run_id}`)", outcome.failed, outcome.failed + outcome.ok));
    }
    let skipped = plan.items.iter().filter(|i| i.outcome != reconcile::ItemOutcome::HeldBack).count();
    if skipped > 0 {
        reasons.push(format!("{skipped} objects skipped: conflicts, unmatchable users or invalid source data (see `orgsync runs show {run_id}`)"));
    }
    let writes = outcome.ok + outcome.failed;
    let status = if outcome.failed > 0 && outcome.ok == 0 && writes > 0 {
        reasons.insert(0, "nothing could be applied".into());
        RunStatus::Failed
    } else if reasons.is_empty() {
        RunStatus::Succeeded
    } else {
        RunStatus::Partial
    };
    let message = (!reasons.is_empty()).then(|| reasons.join("; "));
    let record = mirror.finish_run(run_id, status, message.as_deref())?;
    let count = |k: &str| record.counts.iter().filter(|(n, _)| n.contains(k)).map(|(_, c)| c).sum::<u64>();
    info!(
        run = run_id,
        status = status.as_str(),
        created = count(".create.ok"),
        updated = count(".update.ok"),
        disabled = count(".disable.ok"),
        deleted = count(".delete.ok"),
        bound = count(".bind.ok"),
        failed = outcome.failed,
        held_back = count(".held_back"),
        duration_ms = started.elapsed().as_millis() as u64,
        "Sync run finished"
    );
    Ok(record)
}
