//! `orgsync runs show ID` and `orgsync runs requests ID`: one run's items and requests.

use super::{EXIT_FAILED, ExitCode, Result, print_runs, table};
use orgsync::cli::Output;
use orgsync::mirror::{ItemRecord, Mirror, RunId};
use orgsync::reconcile::{Outcome, Verb};
use orgsync::settings;

/// `runs requests ID [--failed]`.
pub fn requests(cfg: &settings::Config, id: i64, failed: bool, output: Output) -> Result<ExitCode> {
    let Some(m) = Mirror::open_read_only(&cfg.state_dir)? else {
        esay!("error: no runs recorded yet in {}", cfg.state_dir.display());
        return Ok(ExitCode::from(EXIT_FAILED));
    };
    if m.run(RunId(id))?.is_none() {
        esay!("error: no run {id}");
        return Ok(ExitCode::from(EXIT_FAILED));
    }
    let requests = m.requests(RunId(id), failed)?;
    match output {
        Output::Json => say!("{}", serde_json::to_string_pretty(&requests)?),
        Output::Table => {
            let mut t = table(&["#", "method", "path", "status", "ms", "error"]);
            for (n, r) in requests.iter().enumerate() {
                t.add_row(vec![
                    (n + 1).to_string(),
                    r.method.clone(),
                    r.path.clone(),
                    r.status.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
                    r.millis.to_string(),
                    r.error.clone().unwrap_or_default(),
                ]);
            }
            say!("{t}");
            say!("{} requests", requests.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `runs show ID [--changes]`.
pub fn show(cfg: &settings::Config, id: i64, output: Output, changes: bool) -> Result<ExitCode> {
    let Some(m) = Mirror::open_read_only(&cfg.state_dir)? else {
        esay!("error: no runs recorded yet in {}", cfg.state_dir.display());
        return Ok(ExitCode::from(EXIT_FAILED));
    };
    let Some(run) = m.run(RunId(id))? else {
        esay!("error: no run {id}");
        return Ok(ExitCode::from(EXIT_FAILED));
    };
    let items = m.items(RunId(id))?;
    match output {
        Output::Json => say!("{}", serde_json::to_string_pretty(&serde_json::json!({ "run": run, "items": items }))?),
        Output::Table => {
            print_runs(std::slice::from_ref(&run));
            let mut t = table(&["kind", "op", "source id", "target id", "outcome", "error"]);
            for i in &items {
                t.add_row(vec![
                    i.kind.to_string(),
                    i.op.to_string(),
                    i.source_id.clone().unwrap_or_default(),
                    i.target_id.clone().unwrap_or_default(),
                    i.outcome.to_string(),
                    i.error.clone().unwrap_or_default(),
                ]);
            }
            say!("{t}");
            print_reasons(&items);
            if changes {
                print_changes(&items);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How many accounts and departments went, and why.
fn print_reasons(items: &[ItemRecord]) {
    let mut reasons: std::collections::BTreeMap<(String, &str), usize> = std::collections::BTreeMap::new();
    for i in items.iter().filter(|i| matches!(i.op, Verb::Disable | Verb::Delete) && i.outcome == Outcome::Ok) {
        *reasons.entry((format!("{} {}", i.kind, i.op), i.error.as_deref().unwrap_or("-"))).or_default() += 1;
    }
    for ((what, why), n) in reasons {
        say!("{n} × {what}: {why}");
    }
}

/// Each item's changes, old -> new.
fn print_changes(items: &[ItemRecord]) {
    let text = |v: &serde_json::Value| v.as_str().map_or_else(|| "∅".to_owned(), str::to_owned);
    for i in items {
        let Some(list) = i.changes.as_ref().and_then(|c| c.as_array()) else { continue };
        let who = i.source_id.as_deref().or(i.target_id.as_deref()).unwrap_or("-");
        say!("{} {} {who} ({}):", i.kind, i.op, i.outcome);
        for c in list {
            say!("  {}: {} -> {}", c["field"].as_str().unwrap_or("?"), text(&c["from"]), text(&c["to"]));
        }
    }
}
