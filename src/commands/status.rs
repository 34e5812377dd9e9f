//! `orgsync status`: the last runs, what waits for deletion, the failing objects.

use super::{ExitCode, Result, print_runs, table};
use orgsync::cli::Output;
use orgsync::mirror::Mirror;
use orgsync::settings;

pub fn exec(cfg: &settings::Config, output: Output, limit: u16) -> Result<ExitCode> {
    let mirror = Mirror::open_read_only(&cfg.state_dir)?;
    let runs = match &mirror {
        Some(m) => m.runs(usize::from(limit))?,
        None => Vec::new(),
    };
    let waiting = match &mirror {
        Some(m) => orgsync::sync::waiting_for_deletion(cfg, m)?,
        None => None,
    };
    let failing = match &mirror {
        Some(m) => m.failing()?,
        None => Vec::new(),
    };
    let status = runs.first().map_or("never_synced", |r| r.status.as_str());
    match output {
        Output::Json => say!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "status": status, "waiting_for_deletion": waiting, "failing": failing, "runs": runs })
            )?
        ),
        Output::Table => {
            say!("status: {status}");
            if let Some(w) = &waiting {
                say!("waiting for deletion: {} (next due {})", w["waiting"], w["next_due"].as_str().unwrap_or("-"));
            }
            if !failing.is_empty() {
                let q = failing.iter().filter(|f| f.quarantined).count();
                say!("failing: {} objects, {q} quarantined (`orgsync retry ID` or `--all` releases them)", failing.len());
                let mut t = table(&["kind", "id", "failures", "state", "next try", "last error"]);
                for f in &failing {
                    let state = if f.quarantined { "quarantined" } else { "retry later" };
                    let next = if f.quarantined { "-" } else { f.next_at.as_str() };
                    t.add_row(vec![f.kind.to_string(), f.id.clone(), f.failures.to_string(), state.into(), next.into(), f.error.clone()]);
                }
                say!("{t}");
            }
            if !runs.is_empty() {
                print_runs(&runs);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
