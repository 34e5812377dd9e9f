//! `orgsync sync [--dry-run]`: one run now (or its plan), recorded like the service's.

use super::{ExitCode, Result, print_runs, status_code, table};
use orgsync::cli::Output;
use orgsync::mirror::{Mirror, StateLock};
use orgsync::reconcile::{Outcome, Plan, RunOptions};
use orgsync::schedule::SystemClock;
use orgsync::settings;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// `--dry-run`: the plan, and the target's own operations where it names them.
pub async fn dry_run(cfg: &settings::Config, allow_deletes: u64, output: Output) -> Result<ExitCode> {
    let dry = orgsync::sync::dry_run(cfg, RunOptions { allow_deletes, ..RunOptions::default() }).await?;
    match output {
        Output::Json => say!("{}", serde_json::to_string_pretty(&dry)?),
        Output::Table => {
            print_plan(&dry.plan);
            if !dry.operations.is_empty() {
                say!("{} operations:", cfg.target.kind());
                for o in &dry.operations {
                    say!("  {o}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn exec(cfg: settings::Config, allow_deletes: u64, only: &[String], output: Output) -> Result<ExitCode> {
    let only = match only {
        [] => None,
        values => match orgsync::reconcile::only::Only::parse(values) {
            Ok(o) => Some(o),
            Err(e) => {
                esay!("error: {e}");
                return Ok(ExitCode::from(super::EXIT_CONFIG));
            }
        },
    };
    let _lock = StateLock::acquire(&cfg.state_dir)?;
    let mirror = Arc::new(Mirror::open(&cfg.state_dir)?);
    let n = mirror.mark_interrupted()?;
    if n > 0 {
        tracing::warn!(runs = n, "Marked runs left running by an earlier crash as failed (interrupted)");
    }
    let options = RunOptions { allow_deletes, ..RunOptions::default() };
    let cfg = Arc::new(cfg);
    let record =
        orgsync::sync::run_on_own_thread(cfg.clone(), mirror.clone(), "manual", Vec::new(), options, only, stop_on_signal()).await?;
    match output {
        Output::Json => say!("{}", serde_json::to_string_pretty(&record)?),
        Output::Table => print_runs(std::slice::from_ref(&record)),
    }
    // After the run is recorded; each channel waits at most its timeout.
    let instance = cfg.daemon.instance();
    let origin = orgsync::notify::Origin::of(&cfg, &instance, false);
    orgsync::notify::after_run(&cfg.notify, &mirror, &record, origin, &SystemClock).await;
    Ok(status_code(record.status))
}

/// SIGTERM / SIGINT during a one-shot sync: stop starting operations,
/// record the run, exit.
fn stop_on_signal() -> CancellationToken {
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else { return };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::warn!("Stopping: operations in flight finish, the rest are left for the next run");
        s.cancel();
    });
    stop
}

fn print_plan(plan: &Plan) {
    // Out-of-scope departments, users skipped by policy and values the
    // target does not keep need nobody: nothing is written for them.
    let informational = |i: &orgsync::reconcile::Item| {
        matches!(i.outcome, Outcome::OutOfScope | Outcome::Unmatchable | Outcome::NotKept | Outcome::MadeUnique)
    };
    if plan.ops.is_empty() && plan.items.iter().all(informational) {
        say!("Nothing to do: the target is in step with the source.");
        if plan.items.is_empty() {
            return;
        }
    }
    let mut t = table(&["#", "op", "kind", "source id", "target id", "detail"]);
    for (i, op) in plan.ops.iter().enumerate() {
        t.add_row(vec![
            (i + 1).to_string(),
            op.verb().to_string(),
            op.kind().to_string(),
            op.source_id().map(|s| s.to_string()).unwrap_or_default(),
            op.target_id().map(|s| s.to_string()).unwrap_or_default(),
            op.detail(),
        ]);
    }
    if !plan.ops.is_empty() {
        say!("{t}");
    }
    if !plan.items.is_empty() {
        let mut t = table(&["not done", "kind", "op", "source id", "target id", "why"]);
        for i in &plan.items {
            t.add_row(vec![
                i.outcome.as_str().to_owned(),
                i.kind.to_string(),
                i.op.to_string(),
                i.source_id.as_ref().map(|s| s.to_string()).unwrap_or_default(),
                i.target_id.as_ref().map(|s| s.to_string()).unwrap_or_default(),
                i.message.clone(),
            ]);
        }
        say!("{t}");
    }
    if let Some(g) = &plan.guard {
        say!("{g}");
    }
    say!(
        "{} operations ({} target writes), {} items not done. Dry run: nothing was changed.",
        plan.ops.len(),
        plan.writes(),
        plan.items.len()
    );
}
