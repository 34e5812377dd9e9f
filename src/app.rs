//! `orgsync run`: the daemon. Wiring (config -> mirror -> worker, scheduler,
//! HTTP), signals and systemd notify; it owns shutdown.
//!
//! - SIGHUP reloads the config. An invalid file is rejected with the error
//!   (naming the key) and the running config stays. `state_dir`,
//!   `daemon.listen` and the log settings need a restart.
//! - SIGUSR1 triggers a run, like `POST /sync`.
//! - SIGTERM / SIGINT: take no more triggers, let the operations in flight
//!   finish (at most `daemon.grace_period`), record the run, exit 0. A
//!   second signal stops waiting.
//! - systemd: `READY=1` when serving, `STATUS=` after each run and schedule
//!   change, `WATCHDOG=1` at half of `WATCHDOG_USEC`, `RELOADING=1` /
//!   `READY=1` around reloads, `STOPPING=1`.

use crate::config;
use crate::http::{self, Shared};
use crate::mirror::{Mirror, MirrorError, RunRecord, StateLock};
use crate::schedule::{self, Clock, Mode};
use crate::settings::{self, Config};
use crate::telemetry::{self, m};
use crate::trigger::{Trigger, TriggerKind, TriggerQueue};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use metrics_exporter_prometheus::PrometheusHandle;
use sd_notify::NotifyState;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Mirror(#[from] MirrorError),
    #[error("cannot listen on {addr} (daemon.listen)")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        cause: std::io::Error,
    },
    #[error("cannot install the metrics recorder: {0}")]
    Metrics(String),
    #[error("cannot handle signals: {0}")]
    Signals(#[source] std::io::Error),
}

/// The signals the daemon handles, as a stream (tests can pass their own).
pub fn signals() -> Result<impl Stream<Item = i32> + Unpin, AppError> {
    signal_hook_tokio::Signals::new([SIGHUP, SIGTERM, SIGINT, SIGUSR1]).map_err(AppError::Signals)
}

fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        warn!(error = %e, "Cannot notify systemd");
    }
}

fn unix(t: &str) -> Option<f64> {
    DateTime::parse_from_rfc3339(t).ok().map(|t| t.timestamp_millis() as f64 / 1000.0)
}

/// Nominal seconds between scheduled runs, for the stale-sync alert.
fn nominal_interval(mode: &Mode, tz: chrono_tz::Tz, now: DateTime<Utc>) -> f64 {
    let a = mode.next_after(now, tz);
    let b = a.and_then(|a| mode.next_after(a, tz));
    match (a, b) {
        (Some(a), Some(b)) => (b - a).num_milliseconds() as f64 / 1000.0,
        _ => 0.0,
    }
}

fn status_line(last: Option<&RunRecord>, next: Option<DateTime<Utc>>, tz: chrono_tz::Tz) -> String {
    let last = match last {
        None => "never synced".to_owned(),
        Some(r) => format!("last run {} {}", r.id, r.status.as_str()),
    };
    match next {
        Some(t) => format!("{last}; next run {}", t.with_timezone(&tz).to_rfc3339_opts(chrono::SecondsFormat::Secs, false)),
        None => format!("{last}; no scheduled runs"),
    }
}

/// The scheduler task for the current schedule; replaced on reload.
struct Scheduler {
    stop: CancellationToken,
}

impl Scheduler {
    fn start(config: &Config, queue: &Arc<TriggerQueue>, next_fire: &watch::Sender<Option<DateTime<Utc>>>, clock: &Arc<dyn Clock>) -> Self {
        let stop = CancellationToken::new();
        let tz = config.schedule.zone();
        let interval = nominal_interval(&config.schedule.mode, tz, clock.now());
        metrics::gauge!(m::SCHEDULE_INTERVAL_SECONDS).set(interval);
        tokio::spawn(schedule::run(config.schedule.clone(), tz, clock.clone(), queue.clone(), next_fire.clone(), stop.clone()));
        Self { stop }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Keep what a reload cannot change from the running config, saying so.
fn merge_reload(old: &Config, mut new: Config) -> Config {
    if new.state_dir != old.state_dir {
        warn!(running = %old.state_dir.display(), "state_dir changes need a restart; keeping the running one");
        new.state_dir = old.state_dir.clone();
    }
    if new.daemon.listen != old.daemon.listen {
        warn!(running = %old.daemon.listen, "daemon.listen changes need a restart; keeping the running one");
        new.daemon.listen = old.daemon.listen;
    }
    if new.daemon.log_format != old.daemon.log_format || new.daemon.log_level != old.daemon.log_level {
        warn!("daemon.log_format / daemon.log_level changes need a restart");
    }
    new
}

/// A reload cannot move the listener (that needs a restart), so it is
/// judged against the address actually bound: one that would leave a
/// listener beyond loopback without an admin token is refused.
fn reload_keeps_the_listener_guarded(bound: std::net::SocketAddr, new: &Config) -> Result<(), config::Problem> {
    if bound.ip().is_loopback() || new.daemon.admin_token.is_some() {
        return Ok(());
    }
    Err(config::Problem {
        key: "daemon.admin_token_file".into(),
        message: format!(
            "is required because the running listener {bound} is not a loopback address \
         (a new daemon.listen takes effect only after a restart); without a token anyone who can reach it could start runs"
        ),
    })
}

/// Run the daemon until SIGTERM/SIGINT. Returns after the in-flight run was
/// recorded (or the grace period ran out).
pub async fn run(
    config_path: PathBuf,
    config: Config,
    signals: impl Stream<Item = i32> + Unpin,
    clock: Arc<dyn Clock>,
) -> Result<(), AppError> {
    // The lock first (another daemon on this state dir is the likelier
    // cause of a port in use), then the port: a port in use must not leave
    // a new mirror behind.
    let _lock = StateLock::acquire(&config.state_dir)?;
    let listen = config.daemon.listen;
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|cause| AppError::Listen { addr: listen, cause })?;
    serve(listener, Service { config_path, config, clock }, signals).await
}

/// What the service is started with, besides its listener and signals.
pub struct Service {
    pub config_path: PathBuf,
    pub config: Config,
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").field("config_path", &self.config_path).finish_non_exhaustive()
    }
}

/// The service on a bound listener (the state lock held), until the
/// signals say stop: SIGHUP reloads, SIGUSR1 triggers a run, SIGTERM /
/// SIGINT (or the end of the stream) shut down.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: Service,
    mut signals: impl Stream<Item = i32> + Unpin,
) -> Result<(), AppError> {
    let mut running = Running::start(listener, service)?;
    let stopping = running.serve(&mut signals).await;
    running.stop(stopping, &mut signals).await
}

/// The parts of a started service.
struct Running {
    mirror: Arc<Mirror>,
    queue: Arc<TriggerQueue>,
    shared: Arc<Shared>,
    config: watch::Receiver<Arc<Config>>,
    next_fire: watch::Receiver<Option<DateTime<Utc>>>,
    done: watch::Receiver<Option<RunRecord>>,
    last: Option<RunRecord>,
    reloader: Reloader,
    worker: tokio::task::JoinHandle<()>,
    worker_done: bool,
    run_stop: CancellationToken,
    http_stop: CancellationToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Open the mirror, restore the metrics, start the HTTP server, the
    /// schedule and the worker; say READY.
    fn start(listener: tokio::net::TcpListener, service: Service) -> Result<Self, AppError> {
        let Service { config_path, config, clock } = service;
        let listen = listener.local_addr().map_err(|cause| AppError::Listen { addr: config.daemon.listen, cause })?;
        let mirror = Arc::new(Mirror::open(&config.state_dir)?);
        let n = mirror.mark_interrupted()?;
        if n > 0 {
            warn!(runs = n, "Marked runs left running by an earlier stop as failed (interrupted)");
        }
        let (handle, failures, last) = restore_metrics(&mirror, &*clock)?;

        let (config_tx, config_rx) = watch::channel(Arc::new(config));
        let (next_tx, next_rx) = watch::channel(None);
        let queue = Arc::new(TriggerQueue::new());
        let shared = Arc::new(Shared {
            config: config_rx.clone(),
            queue: queue.clone(),
            events: crate::events::Events::new(queue.clone()),
            next_fire: next_rx.clone(),
            metrics: Some(handle),
            consecutive_failures: Arc::new(failures.into()),
            shutting_down: false.into(),
            started_at: clock.now(),
            mirror: mirror.clone(),
            config_path: config_path.clone(),
            web: crate::web::Sessions::default(),
        });
        let http_stop = CancellationToken::new();
        let server = tokio::spawn(http::serve(listener, shared.clone(), http_stop.clone()));
        // The source's event stream, when `[source.events]` asks for one.
        tokio::spawn(crate::events::hold_stream(config_rx.clone(), shared.events.clone(), http_stop.clone()));

        let current = config_rx.borrow().clone();
        let reloader = Reloader {
            path: config_path,
            listen,
            config: config_tx,
            scheduler: Scheduler::start(&current, &queue, &next_tx, &clock),
            queue: queue.clone(),
            next_fire: next_tx,
            clock,
        };
        info!(
            listen = %listen,
            source = current.source.kind(),
            target = current.target.kind(),
            schedule = %current.schedule.describe(),
            timezone = current.schedule.zone().name(),
            state_dir = %current.state_dir.display(),
            "orgsync is running"
        );
        if current.schedule.run_on_start {
            queue.push(Trigger { kind: TriggerKind::Startup, allow_deletes: 0, approved: None, only: None, events: Vec::new() });
        }
        notify(&[NotifyState::Ready]);

        // The worker: one run at a time, until the queue closes. It is a
        // task of its own and each run has a thread of its own, so the
        // service's loop (watchdog, signals) never waits for a run.
        let run_stop = CancellationToken::new();
        let (done_tx, done_rx) = watch::channel::<Option<RunRecord>>(None);
        let worker = tokio::spawn(
            crate::sync::worker::Worker {
                queue: queue.clone(),
                config: config_rx.clone(),
                mirror: mirror.clone(),
                stop: run_stop.clone(),
                consecutive_failures: shared.consecutive_failures.clone(),
                done: done_tx,
            }
            .run(),
        );
        Ok(Running {
            mirror,
            queue,
            shared,
            config: config_rx,
            next_fire: next_rx,
            done: done_rx,
            last,
            reloader,
            worker,
            worker_done: false,
            run_stop,
            http_stop,
            server,
        })
    }

    /// Serve until a stopping signal (returned) or the end of the signals.
    async fn serve(&mut self, signals: &mut (impl Stream<Item = i32> + Unpin)) -> Option<i32> {
        let watchdog = sd_notify::watchdog_enabled().map(|d| d / 2);
        let mut watchdog_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
        loop {
            tokio::select! {
                // Only ends once the queue is closed; kept here so runs progress.
                _ = &mut self.worker => {
                    self.worker_done = true;
                    return None;
                }
                _ = watchdog_tick.tick(), if watchdog.is_some() => notify(&[NotifyState::Watchdog]),
                Ok(()) = self.done.changed() => {
                    self.last = self.done.borrow().clone();
                    self.say_status();
                }
                Ok(()) = self.next_fire.changed() => {
                    let next = *self.next_fire.borrow();
                    metrics::gauge!(m::NEXT_RUN_TIMESTAMP_SECONDS).set(next.map_or(0.0, |t| t.timestamp() as f64));
                    self.say_status();
                }
                sig = signals.next() => match sig {
                    Some(SIGHUP) => self.reloader.reload(),
                    Some(SIGUSR1) => {
                        let queued = self.queue.push(Trigger { kind: TriggerKind::Signal, allow_deletes: 0, approved: None, only: None, events: Vec::new() });
                        info!(%queued, "Manual sync requested by SIGUSR1");
                    }
                    other => return other,
                },
            }
        }
    }

    /// systemd's status line: the last run and the next.
    fn say_status(&self) {
        let tz = self.config.borrow().schedule.zone();
        notify(&[NotifyState::Status(&status_line(self.last.as_ref(), *self.next_fire.borrow(), tz))]);
    }

    /// Shutdown: no new triggers, no new operations; in-flight ones finish
    /// within the grace period (a second signal stops waiting).
    async fn stop(self, stopping: Option<i32>, signals: &mut (impl Stream<Item = i32> + Unpin)) -> Result<(), AppError> {
        let Running { mirror, queue, shared, config, reloader, mut worker, worker_done, run_stop, http_stop, server, .. } = self;
        let grace = config.borrow().daemon.grace_period;
        let signal = match stopping {
            Some(SIGTERM) => "SIGTERM",
            Some(SIGINT) => "SIGINT",
            _ => "none (signal stream ended)",
        };
        info!(signal, grace_period = ?grace, running = queue.is_running(), "Stopping");
        notify(&[NotifyState::Stopping]);
        shared.shutting_down.store(true, Ordering::Relaxed);
        drop(reloader);
        queue.close();
        run_stop.cancel();
        let finished = worker_done
            || tokio::select! {
                r = tokio::time::timeout(grace, &mut worker) => r.is_ok(),
                _ = async { while let Some(s) = signals.next().await { if s == SIGTERM || s == SIGINT { break } } } => false,
            };
        if !finished {
            // The interrupted run is marked failed; the next start resumes
            // (bindings and externalId matching keep it free of duplicates).
            let n = mirror.mark_interrupted()?;
            warn!(runs = n, "The run did not finish within the grace period; it is recorded as interrupted");
        }
        http_stop.cancel();
        match tokio::time::timeout(Duration::from_secs(5), server).await {
            Ok(Ok(Err(e))) => warn!(error = %e, "HTTP listener ended with an error"),
            Ok(_) => {}
            Err(_) => warn!("HTTP listener did not stop within 5s"),
        }
        info!("Stopped");
        Ok(())
    }
}

/// Install the metrics recorder and set what the mirror knows from before
/// this start: failures in a row, the last run, the last success. Returns
/// the recorder, the failures in a row and the last run.
fn restore_metrics(mirror: &Mirror, clock: &dyn Clock) -> Result<(PrometheusHandle, u64, Option<RunRecord>), AppError> {
    let handle = telemetry::install_metrics().map_err(|e| AppError::Metrics(e.to_string()))?;
    let failures = mirror.consecutive_failures()?;
    metrics::gauge!(m::CONSECUTIVE_FAILURES).set(failures as f64);
    let last = mirror.runs(1)?.into_iter().next();
    if let Some(r) = &last
        && let Some(t) = r.finished_at.as_deref().and_then(unix)
    {
        telemetry::last_run(r.status.as_str(), t);
    }
    if let Some(t) = mirror.last_success()?.as_deref().and_then(unix) {
        metrics::gauge!(m::LAST_SUCCESS_TIMESTAMP_SECONDS).set(t);
    }
    for t in TriggerKind::ALL.iter().map(|t| t.as_str()).chain(["on_demand"]) {
        // (An event's run is counted as `event`; an on-demand request's as `on_demand`.)
        for s in telemetry::FINISHED_STATUSES {
            metrics::counter!(m::RUNS_TOTAL, "trigger" => t, "status" => *s).absolute(0);
        }
    }
    for o in ["ok", "error"] {
        metrics::counter!(m::CONFIG_RELOADS_TOTAL, "outcome" => o).absolute(0);
    }
    metrics::gauge!(m::RUN_IN_PROGRESS).set(0.0);
    metrics::gauge!(m::STARTED_TIMESTAMP_SECONDS).set(clock.now().timestamp() as f64);
    metrics::gauge!(m::CONFIG_LAST_RELOAD_SUCCESSFUL).set(1.0);
    Ok((handle, failures, last))
}

/// What a SIGHUP needs: the file, the address bound, the config the
/// service runs with, and the schedule it restarts when the timing changes.
struct Reloader {
    path: PathBuf,
    listen: std::net::SocketAddr,
    config: watch::Sender<Arc<Config>>,
    scheduler: Scheduler,
    queue: Arc<TriggerQueue>,
    next_fire: watch::Sender<Option<DateTime<Utc>>>,
    clock: Arc<dyn Clock>,
}

impl Reloader {
    /// Read the file again: a valid config takes over (what needs a restart
    /// stays as running, said in the log); an invalid one is refused with
    /// the error and the running config stays in force.
    fn reload(&mut self) {
        let mut reloading = vec![NotifyState::Reloading];
        reloading.extend(NotifyState::monotonic_usec_now().ok());
        notify(&reloading);
        let old = self.config.borrow().clone();
        match settings::load(&self.path).map_err(|e| e.to_string()).and_then(|new| {
            let new = merge_reload(&old, new);
            reload_keeps_the_listener_guarded(self.listen, &new).map(|()| new).map_err(|p| p.to_string())
        }) {
            Ok(new) => {
                let new = Arc::new(new);
                // The same times: the next run keeps its time (a restarted
                // interval would move it).
                if new.schedule.same_timing(&old.schedule) {
                    tracing::debug!("Schedule unchanged by the reload; the next run keeps its time");
                } else {
                    self.scheduler = Scheduler::start(&new, &self.queue, &self.next_fire, &self.clock);
                }
                info!(schedule = %new.schedule.describe(), source = new.source.kind(), "Config reloaded");
                self.config.send_replace(new);
                metrics::counter!(m::CONFIG_RELOADS_TOTAL, "outcome" => "ok").increment(1);
                metrics::gauge!(m::CONFIG_LAST_RELOAD_SUCCESSFUL).set(1.0);
            }
            Err(e) => {
                error!(error = %e, "Config reload rejected; the running config stays in force");
                metrics::counter!(m::CONFIG_RELOADS_TOTAL, "outcome" => "error").increment(1);
                metrics::gauge!(m::CONFIG_LAST_RELOAD_SUCCESSFUL).set(0.0);
            }
        }
        notify(&[NotifyState::Ready]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let text = format!("[source]\nkind = \"file\"\npath = \"org.json\"\n[target]\nkind = \"file\"\npath = \"out.json\"\n{extra}");
        let tree: serde_json::Map<String, serde_json::Value> = toml::from_str(&text).unwrap();
        settings::validate(&tree, std::path::Path::new("/")).unwrap()
    }

    #[test]
    fn a_reload_dropping_the_admin_token_is_refused_while_the_listener_is_beyond_loopback() {
        // The new file says loopback, so it validates; the socket still listens everywhere.
        let new = config("[daemon]\nlisten = \"127.0.0.1:9464\"\n");
        let bound: std::net::SocketAddr = "0.0.0.0:9464".parse().unwrap();
        let e = reload_keeps_the_listener_guarded(bound, &new).unwrap_err().to_string();
        assert!(e.contains("daemon.admin_token_file") && e.contains("0.0.0.0:9464"), "{e}");
        let with_token = config("[daemon]\nlisten = \"127.0.0.1:9464\"\nadmin_token = \"a-long-admin-token\"\n");
        assert!(reload_keeps_the_listener_guarded(bound, &with_token).is_ok());
        assert!(reload_keeps_the_listener_guarded("127.0.0.1:9464".parse().unwrap(), &new).is_ok());
    }
}
