//! Logs and metrics, with every metric name in one place.
//!
//! Logs: tracing-subscriber to stderr; the filter comes from `RUST_LOG`, else
//! `daemon.log_level` (default `info`); `daemon.log_format` picks text or
//! JSON. Under systemd (`JOURNAL_STREAM` set) the journal adds timestamps,
//! so text logs leave them out.
//!
//! Metrics: the `metrics` facade; `orgsync run` installs the Prometheus
//! recorder, the one-shot commands install none (the calls are no-ops).
//! Labels only ever take values from bounded sets.

use crate::config::LogFormat;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

pub fn init(format: LogFormat, level: &str) {
    // RUST_LOG overrides the configured level; one that does not parse is
    // said (once the logger is up) and the configured level is used.
    let (filter, invalid) = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => match EnvFilter::try_new(&v) {
            Ok(f) => (f, None),
            Err(e) => (EnvFilter::new(level), Some((v, e.to_string()))),
        },
        _ => (EnvFilter::new(level), None),
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // Under journald (systemd sets JOURNAL_STREAM): each event one entry, at its priority.
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let writer = crate::redact::Stderr { journal: journal && format == LogFormat::Text };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_target(false).with_ansi(ansi && !journal);
    match (format, journal) {
        (LogFormat::Json, _) => builder.json().flatten_event(true).init(),
        (LogFormat::Text, true) => builder.without_time().init(),
        (LogFormat::Text, false) => builder.init(),
    }
    if let Some((value, error)) = invalid {
        tracing::warn!(rust_log = %value, %error, level, "RUST_LOG is not a valid filter; the configured daemon.log_level is used");
    }
}

/// Metric names (all prefixed `orgsync_`).
pub mod m {
    pub const RUNS_TOTAL: &str = "orgsync_runs_total";
    pub const RUN_DURATION_SECONDS: &str = "orgsync_run_duration_seconds";
    pub const RUN_FAILURES_TOTAL: &str = "orgsync_run_failures_total";
    pub const LAST_RUN_TIMESTAMP_SECONDS: &str = "orgsync_last_run_timestamp_seconds";
    pub const LAST_RUN_STATUS: &str = "orgsync_last_run_status";
    pub const LAST_SUCCESS_TIMESTAMP_SECONDS: &str = "orgsync_last_success_timestamp_seconds";
    pub const CONSECUTIVE_FAILURES: &str = "orgsync_consecutive_failed_runs";
    pub const NEXT_RUN_TIMESTAMP_SECONDS: &str = "orgsync_next_run_timestamp_seconds";
    pub const SCHEDULE_INTERVAL_SECONDS: &str = "orgsync_schedule_interval_seconds";
    pub const OBJECTS: &str = "orgsync_objects";
    pub const OPERATIONS_TOTAL: &str = "orgsync_operations_total";
    pub const REMOVALS_TOTAL: &str = "orgsync_removals_total";
    pub const DELETES_HELD_BACK: &str = "orgsync_deletes_held_back";
    pub const SOURCE_REQUESTS_TOTAL: &str = "orgsync_source_requests_total";
    pub const SOURCE_PAGES_TOTAL: &str = "orgsync_source_pages_total";
    pub const TARGET_REQUESTS_TOTAL: &str = "orgsync_target_requests_total";
    pub const CONFIG_RELOADS_TOTAL: &str = "orgsync_config_reloads_total";
    pub const CONFIG_LAST_RELOAD_SUCCESSFUL: &str = "orgsync_config_last_reload_successful";
    pub const BUILD_INFO: &str = "orgsync_build_info";
    pub const RUN_IN_PROGRESS: &str = "orgsync_run_in_progress";
    pub const STARTED_TIMESTAMP_SECONDS: &str = "orgsync_started_timestamp_seconds";
    pub const QUARANTINED: &str = "orgsync_quarantined_objects";
    pub const NOTIFICATIONS_TOTAL: &str = "orgsync_notifications_total";
    pub const EVENTS_TOTAL: &str = "orgsync_events_total";
    pub const EVENT_STREAM_UP: &str = "orgsync_event_stream_up";
}

/// Statuses a finished run can have (the `status` label).
pub const FINISHED_STATUSES: &[&str] = &["succeeded", "partial", "failed"];

/// Install the Prometheus recorder and describe every metric.
pub fn install_metrics() -> Result<PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(m::RUN_DURATION_SECONDS.into()),
            &[0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0],
        )?
        .install_recorder()?;
    describe_counter!(m::RUNS_TOTAL, "Sync runs finished, by trigger and status.");
    describe_counter!(
        m::EVENTS_TOTAL,
        "Change events received from the source, by source and outcome: accepted, duplicate, ignored, refused."
    );
    describe_gauge!(m::EVENT_STREAM_UP, "1 while the event stream to the source (DingTalk Stream, Feishu long connection) is connected.");
    describe_histogram!(m::RUN_DURATION_SECONDS, Unit::Seconds, "Duration of sync runs.");
    describe_counter!(m::RUN_FAILURES_TOTAL, "Failed runs by reason: fetch, setup_target, read_target, write_target.");
    describe_gauge!(m::LAST_RUN_TIMESTAMP_SECONDS, Unit::Seconds, "Unix time the last run finished.");
    describe_gauge!(m::LAST_RUN_STATUS, "1 for the status of the last finished run, 0 for the others.");
    describe_gauge!(m::LAST_SUCCESS_TIMESTAMP_SECONDS, Unit::Seconds, "Unix time the last succeeded run finished.");
    describe_gauge!(m::CONSECUTIVE_FAILURES, "Failed runs in a row (0 after any run that did not fail).");
    describe_gauge!(m::NEXT_RUN_TIMESTAMP_SECONDS, Unit::Seconds, "Unix time of the next scheduled run (0 when manual only).");
    describe_gauge!(m::SCHEDULE_INTERVAL_SECONDS, Unit::Seconds, "Nominal time between scheduled runs (0 when manual only).");
    describe_gauge!(m::OBJECTS, "Objects seen by the last run: kind user|department, side source|target|bound.");
    describe_counter!(
        m::OPERATIONS_TOTAL,
        "Planned operations by kind, op and outcome (ok, failed, held_back, conflict, unmatchable, invalid, out_of_scope, not_attempted)."
    );
    describe_counter!(
        m::REMOVALS_TOTAL,
        "Users and departments disabled or deleted, by kind, op and reason (left_source, left_scope, not_in_source, grace_over, duplicate, other)."
    );
    describe_gauge!(m::DELETES_HELD_BACK, "Deletes/disables the deletion guard held back in the last run.");
    describe_counter!(
        m::SOURCE_REQUESTS_TOTAL,
        "Requests to the identity source, by outcome and run kind (full, on_demand, event; none outside a run)."
    );
    describe_counter!(m::SOURCE_PAGES_TOTAL, "Pages of lists read from a SaaS source.");
    describe_counter!(m::TARGET_REQUESTS_TOTAL, "Requests to the target system, by outcome.");
    describe_counter!(m::NOTIFICATIONS_TOTAL, "Run notifications sent, by channel kind and outcome ok|failed.");
    describe_counter!(m::CONFIG_RELOADS_TOTAL, "Config reloads (SIGHUP), by outcome ok|error.");
    describe_gauge!(m::CONFIG_LAST_RELOAD_SUCCESSFUL, "0 after a rejected reload, 1 at start and after a good one.");
    describe_gauge!(m::BUILD_INFO, "Always 1; the version label says which build runs.");
    describe_gauge!(m::RUN_IN_PROGRESS, "1 while a sync run is in progress.");
    describe_gauge!(m::QUARANTINED, "Objects left out of every run after failing too often in a row, until `orgsync retry`.");
    describe_gauge!(
        m::STARTED_TIMESTAMP_SECONDS,
        Unit::Seconds,
        "Unix time the service started (what the no-success alert measures from before any run succeeded)."
    );
    metrics::gauge!(m::BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    Ok(handle)
}

/// Record a finished run's metrics.
pub fn run_finished(trigger: &str, status: &str, seconds: f64, finished_unix: f64) {
    // A bounded label: an on-demand run's trigger names its objects after the first word.
    let (label, objects) = trigger.split_once(' ').unwrap_or((trigger, ""));
    metrics::counter!(m::RUNS_TOTAL, "trigger" => label.to_owned(), "status" => status.to_owned()).increment(1);
    metrics::histogram!(m::RUN_DURATION_SECONDS).record(seconds);
    // The last run's gauges are the whole sync's: a run of some objects leaves them.
    if objects.is_empty() {
        last_run(status, finished_unix);
    }
}

/// Set the `last_run_*` gauges (also at start, from the mirror).
pub fn last_run(status: &str, finished_unix: f64) {
    metrics::gauge!(m::LAST_RUN_TIMESTAMP_SECONDS).set(finished_unix);
    for s in FINISHED_STATUSES {
        metrics::gauge!(m::LAST_RUN_STATUS, "status" => *s).set(if *s == status { 1.0 } else { 0.0 });
    }
    if status == "succeeded" {
        metrics::gauge!(m::LAST_SUCCESS_TIMESTAMP_SECONDS).set(finished_unix);
    }
}

pub fn operation(kind: crate::model::Kind, op: crate::reconcile::Verb, outcome: crate::reconcile::Outcome) {
    metrics::counter!(m::OPERATIONS_TOTAL, "kind" => kind.as_str(), "op" => op.as_str(), "outcome" => outcome.as_str()).increment(1);
}

/// A disable or delete done, and why (a bounded label: `reconcile::removal_label`).
pub fn removal(kind: crate::model::Kind, op: crate::reconcile::Verb, reason: &'static str) {
    metrics::counter!(m::REMOVALS_TOTAL, "kind" => kind.as_str(), "op" => op.as_str(), "reason" => reason).increment(1);
}

thread_local! {
    /// The kind of run this thread makes (each run has a thread of its own).
    static RUN_KIND: std::cell::Cell<&'static str> = const { std::cell::Cell::new("none") };
}

/// Label this thread's source requests with the kind of run it makes:
/// `full`, `on_demand` or `event`.
pub fn set_run_kind(kind: &'static str) {
    RUN_KIND.with(|k| k.set(kind));
}

pub fn source_request(outcome: &'static str) {
    let run = RUN_KIND.with(std::cell::Cell::get);
    metrics::counter!(m::SOURCE_REQUESTS_TOTAL, "outcome" => outcome, "run" => run).increment(1);
}

pub fn source_page() {
    metrics::counter!(m::SOURCE_PAGES_TOTAL).increment(1);
}

pub fn target_request(outcome: &'static str) {
    metrics::counter!(m::TARGET_REQUESTS_TOTAL, "outcome" => outcome).increment(1);
}
