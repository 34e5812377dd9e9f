//! The `orgsync` binary: parse the CLI, set up logging, call the library,
//! map outcomes to exit codes (0 succeeded, 1 failed, 2 config/usage, 3 partial).

use anyhow::Result;
use clap::Parser;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use orgsync::cli::{Cli, Command, Output, RunsCommand};
use orgsync::config::ConfigError;
use orgsync::mirror::{Mirror, RunId, RunRecord, RunStatus, StateLock};
use orgsync::reconcile::unkept::Sent;
use orgsync::reconcile::{Field, Outcome, Plan, RunOptions, Verb};
use orgsync::schedule::SystemClock;
use orgsync::settings;
use std::process::ExitCode;

/// `println!` that never panics: a closed stdout (`orgsync status | head -1`)
/// ends the output, not the process (a run goes on and is recorded).
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// `eprintln!` that never panics, for the same reason.
macro_rules! esay {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

const EXIT_FAILED: u8 = 1;
const EXIT_CONFIG: u8 = 2;
const EXIT_PARTIAL: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            esay!("error: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            esay!("error: {}", orgsync::redact::redact(&format!("{e:#}")));
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn load(cli: &Cli) -> Result<settings::Config, ExitCode> {
    settings::load(&cli.config).map_err(|e: ConfigError| {
        // check-config lists every problem at once, missing input files included.
        let e = match e {
            ConfigError::Invalid { path, mut problems } if matches!(cli.command, Command::CheckConfig) => {
                for p in settings::preflight_tree(&cli.config) {
                    if !problems.iter().any(|q| q.key == p.key) {
                        problems.push(p);
                    }
                }
                ConfigError::Invalid { path, problems }
            }
            e => e,
        };
        esay!("error: {}", orgsync::redact::redact(&e.to_string()));
        ExitCode::from(EXIT_CONFIG)
    })
}

fn status_code(s: RunStatus) -> ExitCode {
    match s {
        RunStatus::Succeeded => ExitCode::SUCCESS,
        RunStatus::Partial => ExitCode::from(EXIT_PARTIAL),
        RunStatus::Failed | RunStatus::Running => ExitCode::from(EXIT_FAILED),
    }
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

async fn run(cli: Cli) -> Result<ExitCode> {
    let cfg = match load(&cli) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    orgsync::telemetry::init(cfg.daemon.log_format, &cfg.daemon.log_level);
    match cli.command {
        Command::Run => {
            let signals = orgsync::app::signals()?;
            orgsync::app::run(cli.config.clone(), cfg, signals, Arc::new(SystemClock)).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Trigger { allow_deletes, url } => trigger(&cfg, allow_deletes, url).await,
        Command::CheckConfig => {
            let problems = settings::preflight(&cfg);
            if !problems.is_empty() {
                esay!("error: {}", orgsync::redact::redact(&ConfigError::Invalid { path: cli.config.clone(), problems }.to_string()));
                return Ok(ExitCode::from(EXIT_CONFIG));
            }
            say!("{}: ok (source {}, state_dir {})", cli.config.display(), cfg.source.kind(), cfg.state_dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Notify(orgsync::cli::NotifyCommand::Test) => {
            if cfg.notify.is_empty() {
                say!("no [[notify]] channel is configured");
                return Ok(ExitCode::SUCCESS);
            }
            let msg = orgsync::notify::Message::test(cfg.source.kind(), &cfg.daemon.instance());
            let mut failed = false;
            for (i, channel) in cfg.notify.iter().enumerate() {
                match orgsync::notify::send(channel, &msg, chrono::Utc::now()).await {
                    Ok(()) => say!("notify[{i}] ({}): ok", channel.kind.as_str()),
                    Err(e) => {
                        failed = true;
                        say!("notify[{i}] ({}): failed: {e}", channel.kind.as_str());
                    }
                }
            }
            Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
        Command::CheckTarget { output } => {
            let target = orgsync::target::build(&cfg.target, &cfg.policy.users.match_by)?;
            let mut rows = target.check().await?;
            // What the runs learnt: groups the target does not keep in their parents.
            let unnested = match Mirror::open_read_only(&cfg.state_dir)? {
                Some(m) => m.unkept()?.iter().filter(|((_, _, f), r)| *f == Field::Parent && r.state != Sent::Sent).count(),
                None => 0,
            };
            if unnested > 0 {
                rows.push(("nesting", unnested_text(unnested)));
            }
            match output {
                Output::Json => {
                    let mut m = serde_json::Map::new();
                    m.insert("kind".into(), cfg.target.kind().into());
                    for (k, v) in &rows {
                        match m.get_mut(*k) {
                            Some(serde_json::Value::Array(a)) => a.push(v.clone().into()),
                            Some(other) => *other = serde_json::json!([other.clone(), v]),
                            None => {
                                m.insert((*k).to_owned(), v.clone().into());
                            }
                        }
                    }
                    say!("{}", serde_json::to_string_pretty(&m)?);
                }
                Output::Table => {
                    let mut t = Table::new();
                    t.load_preset(UTF8_FULL_CONDENSED).set_header(vec!["target", cfg.target.kind()]);
                    for (k, v) in rows {
                        t.add_row(vec![k.to_owned(), v]);
                    }
                    say!("{t}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sync { dry_run: true, allow_deletes, output } => {
            let dry = orgsync::sync::dry_run(&cfg, RunOptions { allow_deletes, ..RunOptions::default() }).await?;
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
        Command::Sync { dry_run: false, allow_deletes, output } => {
            let _lock = StateLock::acquire(&cfg.state_dir)?;
            let mirror = Arc::new(Mirror::open(&cfg.state_dir)?);
            let n = mirror.mark_interrupted()?;
            if n > 0 {
                tracing::warn!(runs = n, "Marked runs left running by an earlier crash as failed (interrupted)");
            }
            let options = RunOptions { allow_deletes, ..RunOptions::default() };
            let cfg = Arc::new(cfg);
            let record = orgsync::sync::run_on_own_thread(cfg.clone(), mirror.clone(), "manual", options, stop_on_signal()).await?;
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
        Command::Status { output, limit } => {
            let mirror = Mirror::open_read_only(&cfg.state_dir)?;
            let runs = match &mirror {
                Some(m) => m.runs(usize::from(limit))?,
                None => Vec::new(),
            };
            let waiting = match &mirror {
                Some(m) => orgsync::sync::waiting_for_deletion(&cfg, m)?,
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
                            t.add_row(vec![
                                f.kind.to_string(),
                                f.id.clone(),
                                f.failures.to_string(),
                                state.into(),
                                next.into(),
                                f.error.clone(),
                            ]);
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
        Command::Retry { id, all } => {
            if id.is_none() && !all {
                esay!("error: name the object (`orgsync retry ID`, its source or target id) or release every one with --all");
                return Ok(ExitCode::from(EXIT_CONFIG));
            }
            let Some(_) = Mirror::open_read_only(&cfg.state_dir)? else {
                say!("nothing to release: no runs recorded yet in {}", cfg.state_dir.display());
                return Ok(ExitCode::SUCCESS);
            };
            // No state lock: the service may hold it; SQLite orders this one
            // small write with the service's own.
            let n = Mirror::open(&cfg.state_dir)?.release(id.as_deref())?;
            match (&id, n) {
                (Some(id), 0) => {
                    esay!("error: no failing object {id:?} (see `orgsync status`)");
                    return Ok(ExitCode::from(EXIT_FAILED));
                }
                _ => say!("released {n} object(s): tried again at the next run"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Runs { command: RunsCommand::Requests { id, failed, output } } => {
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
        Command::Runs { command: RunsCommand::Show { id, output, changes } } => {
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
    }
}

/// How many accounts and departments went, and why.
fn print_reasons(items: &[orgsync::mirror::ItemRecord]) {
    let mut reasons: std::collections::BTreeMap<(String, &str), usize> = std::collections::BTreeMap::new();
    for i in items.iter().filter(|i| matches!(i.op, Verb::Disable | Verb::Delete) && i.outcome == Outcome::Ok) {
        *reasons.entry((format!("{} {}", i.kind, i.op), i.error.as_deref().unwrap_or("-"))).or_default() += 1;
    }
    for ((what, why), n) in reasons {
        say!("{n} × {what}: {why}");
    }
}

/// Each item's changes, old -> new.
fn print_changes(items: &[orgsync::mirror::ItemRecord]) {
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

/// `orgsync trigger`: POST /sync to the running service.
async fn trigger(cfg: &settings::Config, allow_deletes: u64, url: Option<String>) -> Result<ExitCode> {
    let base = url.unwrap_or_else(|| {
        // A wildcard listener is reached over loopback.
        let mut addr = cfg.daemon.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
        }
        format!("http://{addr}")
    });
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build()?;
    let mut req = client.post(format!("{}/sync", base.trim_end_matches('/'))).query(&[("allow_deletes", allow_deletes)]);
    if let Some(t) = &cfg.daemon.admin_token {
        req = req.bearer_auth(t.expose());
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            esay!("error: cannot reach orgsync at {base} (is `orgsync run` running? daemon.listen = {}): {e}", cfg.daemon.listen);
            return Ok(ExitCode::from(EXIT_FAILED));
        }
    };
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    if status.is_success() {
        let queued = body.get("queued").and_then(|q| q.as_str()).unwrap_or("?");
        let what = match queued {
            "started" => "a sync run starts now",
            "after_current_run" => "a sync run is in progress; another follows it",
            "merged" => "a follow-up run was already queued; this request joined it",
            _ => "accepted",
        };
        say!("{what} (see `orgsync status`)");
        Ok(ExitCode::SUCCESS)
    } else {
        let msg = body.get("error").and_then(|e| e.as_str()).unwrap_or("");
        esay!("error: orgsync refused the trigger: HTTP {status} {msg}");
        Ok(ExitCode::from(EXIT_FAILED))
    }
}

/// What check-target says of departments the target did not keep nested.
fn unnested_text(n: usize) -> String {
    format!(
        "{n} departments' groups were not kept in their parents' members after a 2xx (the server does not store groups as \
         members): the tree stays flat there, users only, and the parent links are not sent again"
    )
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header(header.to_vec());
    t
}

fn print_plan(plan: &Plan) {
    // Out-of-scope departments, users skipped by policy and values the
    // target does not keep need nobody: nothing is written for them.
    let informational = |i: &orgsync::reconcile::Item| matches!(i.outcome, Outcome::OutOfScope | Outcome::Unmatchable | Outcome::NotKept);
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

fn print_runs(runs: &[RunRecord]) {
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
