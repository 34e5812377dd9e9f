//! `orgsync plan --config new.toml [--against current.toml]`: what a
//! config change would write, before it runs.

use super::{EXIT_CONFIG, ExitCode, Result, table};
use orgsync::cli::PlanOutput;
use orgsync::reconcile::RunOptions;
use orgsync::settings;
use std::path::Path;

pub async fn exec(proposed: &settings::Config, against: &Path, output: PlanOutput) -> Result<ExitCode> {
    let current = match settings::load(against) {
        Ok(c) => c,
        Err(e) => {
            esay!("error: the current config (--against): {}", orgsync::redact::redact(&e.to_string()));
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    let c = orgsync::sync::compare(&current, proposed, RunOptions::default()).await?;
    match output {
        PlanOutput::Json => say!("{}", serde_json::to_string_pretty(&c)?),
        PlanOutput::Csv => {
            say!("kind,id,current,proposed,reason,detail");
            for d in &c.differences {
                let verb = |v: Option<orgsync::reconcile::Verb>| v.map_or("", |v| v.as_str());
                let row = [d.kind.as_str(), &d.id, verb(d.current), verb(d.proposed), d.reason.as_str(), &d.detail];
                say!("{}", row.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
            }
        }
        PlanOutput::Table => {
            if !c.ignored.is_empty() {
                say!("the current config's {} are used: the plans are compared against one mirror and target", c.ignored.join(" and "));
            }
            let changed = if c.changed.is_empty() { "nothing".to_owned() } else { c.changed.join(", ") };
            say!("changed: {changed}");
            if c.differences.is_empty() {
                say!("No difference: both configs would write the same.");
            } else {
                let mut t = table(&["kind", "id", "current", "proposed", "reason", "detail"]);
                for d in &c.differences {
                    let verb = |v: Option<orgsync::reconcile::Verb>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
                    t.add_row(vec![
                        d.kind.to_string(),
                        d.id.clone(),
                        verb(d.current),
                        verb(d.proposed),
                        d.reason.as_str().into(),
                        d.detail.clone(),
                    ]);
                }
                say!("{t}");
                say!("{} objects written differently.", c.differences.len());
            }
            let guard = |g: &Option<String>| g.clone().unwrap_or_else(|| "nothing held back".into());
            say!("guard, current: {}", guard(&c.guard.current));
            say!("guard, proposed: {}", guard(&c.guard.proposed));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break.
fn csv_field(f: &str) -> String {
    if f.contains([',', '"', '\n', '\r']) { format!("\"{}\"", f.replace('"', "\"\"")) } else { f.to_owned() }
}
