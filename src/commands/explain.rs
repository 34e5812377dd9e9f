//! `orgsync explain user|department <key>`: one object, step by step.

use super::{EXIT_UNKNOWN, ExitCode, Result, table};
use orgsync::cli::Output;
use orgsync::model::Kind;
use orgsync::settings;
use orgsync::sync::explain::{ExplainError, Explanation, explain};

pub async fn exec(cfg: &settings::Config, kind: Kind, key: &str, output: Output) -> Result<ExitCode> {
    let e = match explain(cfg, kind, key).await {
        Ok(e) => e,
        Err(ExplainError::Unknown { .. }) if output == Output::Json => {
            say!("{}", serde_json::json!({"kind": kind, "query": key, "found": false}));
            return Ok(ExitCode::from(EXIT_UNKNOWN));
        }
        Err(e @ ExplainError::Unknown { .. }) => {
            esay!("{e}");
            return Ok(ExitCode::from(EXIT_UNKNOWN));
        }
        Err(ExplainError::Sync(e)) => return Err(e.into()),
    };
    match output {
        Output::Json => say!("{}", serde_json::to_string_pretty(&e)?),
        Output::Table => print(&e),
    }
    Ok(ExitCode::SUCCESS)
}

fn print(e: &Explanation) {
    say!("{} {} (found by {})", e.kind, e.source_id, e.found_by);
    let requests = e.source.requests.map(|n| format!(", {n} requests")).unwrap_or_default();
    say!("\nsource (read: {}{requests}):", e.source.read);
    match &e.source.raw {
        Some(raw) => say!("  as sent: {raw}"),
        None if e.source.mapped.is_some() => say!("  as sent: (this source gives no raw record)"),
        None => say!("  the source does not have it"),
    }
    if let Some(m) = &e.source.mapped {
        say!("  mapped:  {m}");
    }
    if !e.source.not_sent.is_empty() {
        say!("  withheld: {} (the target's values are kept)", e.source.not_sent.join(", "));
    }
    say!("\nscope: {} ({})", if e.scope.in_scope { "in" } else { "out" }, e.scope.rule);
    match &e.binding {
        Some(b) => say!("\nbinding: {} since {}{}", b.target_id, b.since, b.how.as_deref().map(|h| format!(", {h}")).unwrap_or_default()),
        None => say!("\nbinding: none"),
    }
    for k in &e.match_keys {
        let found = if k.target_ids.is_empty() {
            "no target user has it".to_owned()
        } else {
            k.target_ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        };
        say!("  match key {}: {} -> {found}", k.key.as_str(), k.value.as_deref().unwrap_or("(none)"));
    }
    match &e.target {
        Some(t) => say!("\ntarget now: {t}"),
        None => say!("\ntarget now: nothing"),
    }
    say!("\nnext run: {}", e.decision);
    if !e.changes.is_empty() {
        let mut t = table(&["field", "old", "new"]);
        for c in &e.changes {
            let v = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
            t.add_row(vec![c.field.to_string(), v(&c.from), v(&c.to)]);
        }
        say!("{t}");
    }
    for m in &e.memory {
        say!("  {} was {} (run {}): not sent again until the source changes it", m.field, m.state, m.run);
    }
    if let Some(f) = &e.failing {
        let state =
            if f.quarantined { "quarantined (`orgsync retry` releases it)".to_owned() } else { format!("retried after {}", f.next_at) };
        say!("\nfailing: {} times in a row, {state}; last error: {}", f.failures, f.error);
    }
    if e.history.is_empty() {
        say!("\nhistory: no run has an item for it");
    } else {
        let mut t = table(&["run", "trigger", "at", "op", "outcome", "message"]);
        for h in &e.history {
            let i = &h.item;
            t.add_row(vec![
                h.run.to_string(),
                h.trigger.clone(),
                i.at.clone(),
                i.op.to_string(),
                i.outcome.to_string(),
                i.error.clone().unwrap_or_default(),
            ]);
        }
        say!("\nhistory:\n{t}");
    }
}
