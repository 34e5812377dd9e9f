//! The commands, one module each with its `exec`: `main` parses the command
//! line, loads the config and hands it here.

mod check_config;
mod check_target;
mod explain;
mod notify;
mod plan;
mod retry;
mod runs;
mod status;
mod sync;
mod trigger;

pub use anyhow::Result;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use orgsync::cli::{Command, RunsCommand};
use orgsync::mirror::{RunRecord, RunStatus};
use orgsync::schedule::SystemClock;
use orgsync::settings;
use std::path::Path;

pub use std::process::ExitCode;
use std::sync::Arc;

pub const EXIT_FAILED: u8 = 1;
pub const EXIT_CONFIG: u8 = 2;
pub const EXIT_PARTIAL: u8 = 3;
pub const EXIT_UNKNOWN: u8 = 4;

/// Run one command with its loaded config.
pub async fn exec(command: Command, path: &Path, cfg: settings::Config) -> Result<ExitCode> {
    match command {
        Command::Run => {
            let signals = orgsync::app::signals()?;
            orgsync::app::run(path.to_owned(), cfg, signals, Arc::new(SystemClock)).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Trigger { allow_deletes, only, url } => trigger::exec(&cfg, allow_deletes, &only, url).await,
        Command::CheckConfig => check_config::exec(path, &cfg),
        Command::Notify(orgsync::cli::NotifyCommand::Test) => notify::exec(&cfg).await,
        Command::CheckTarget { output } => check_target::exec(&cfg, output).await,
        Command::Sync { dry_run: true, allow_deletes, output, .. } => sync::dry_run(&cfg, allow_deletes, output).await,
        Command::Sync { dry_run: false, allow_deletes, only, output } => sync::exec(cfg, allow_deletes, &only, output).await,
        Command::Status { output, limit } => status::exec(&cfg, output, limit),
        Command::Plan { against, output } => plan::exec(&cfg, &against, output).await,
        Command::Explain { kind, key, output } => explain::exec(&cfg, kind.kind(), &key, output).await,
        Command::Retry { id, all } => retry::exec(&cfg, id, all),
        Command::Runs { command: RunsCommand::Requests { id, failed, output } } => runs::requests(&cfg, id, failed, output),
        Command::Runs { command: RunsCommand::Show { id, output, changes } } => runs::show(&cfg, id, output, changes),
    }
}

pub fn status_code(s: RunStatus) -> ExitCode {
    match s {
        RunStatus::Succeeded => ExitCode::SUCCESS,
        RunStatus::Partial => ExitCode::from(EXIT_PARTIAL),
        RunStatus::Failed | RunStatus::Running => ExitCode::from(EXIT_FAILED),
    }
}

pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header(header.to_vec());
    t
}

pub fn print_runs(runs: &[RunRecord]) {
    let mut t = table(&["run", "trigger", "started", "finished", "status", "counts", "message"]);
    for r in runs {
        let counts = r.counts.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
        t.add_row(vec![
            r.id.to_string(),
            r.trigger.clone(),
            r.started_at.clone(),
            r.finished_at.clone().unwrap_or_default(),
            r.status.as_str().to_owned(),
            counts,
            r.message.clone().unwrap_or_default(),
        ]);
    }
    say!("{t}");
}
