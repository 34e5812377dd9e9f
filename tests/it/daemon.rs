//! `orgsync run` end to end: the binary as a daemon against the file source
//! and a real scim2-server, driven over HTTP and by real signals.

use crate::harness::{Env, Scim, TOKEN, free_port, org};
use serde_json::Value;
use std::collections::HashSet;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const ADMIN: &str = "admin-token-for-tests";

pub struct Daemon {
    pub child: Child,
    port: u16,
    log: PathBuf,
    http: reqwest::blocking::Client,
}

impl Daemon {
    /// Start `orgsync run` (the config must listen on `port`) and wait for /healthz.
    pub fn start(env: &Env, port: u16) -> Daemon {
        Self::start_with(env, port, &[])
    }

    pub fn start_with(env: &Env, port: u16, vars: &[(&str, &str)]) -> Daemon {
        let log = env.path(&format!("daemon-{}.log", free_port()));
        let mut cmd = env.command(&["run"]);
        cmd.env("RUST_LOG", "info").stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let mut d = Daemon { child, port, log, http: reqwest::blocking::Client::new() };
        let deadline = Instant::now() + Duration::from_secs(20);
        while d.http.get(d.url("/healthz")).send().is_err() {
            if let Some(status) = d.child.try_wait().unwrap() {
                panic!("orgsync run exited with {status}:\n{}", d.log());
            }
            assert!(Instant::now() < deadline, "orgsync run did not start:\n{}", d.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        let r = self.http.get(self.url(path)).send().unwrap();
        (r.status().as_u16(), r.text().unwrap())
    }

    pub fn status(&self) -> Value {
        let (code, body) = self.get("/status");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    pub fn metrics(&self) -> String {
        let (code, body) = self.get("/metrics");
        assert_eq!(code, 200);
        body
    }

    /// The value of one sample, e.g. `orgsync_runs_total{trigger="startup",status="succeeded"}`.
    pub fn metric(&self, sample: &str) -> f64 {
        let text = self.metrics();
        text.lines()
            .find_map(|l| l.strip_prefix(sample).and_then(|rest| rest.strip_prefix(' ')))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or_else(|| panic!("no sample {sample} in:\n{text}"))
    }

    pub fn post_sync(&self, query: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self.http.post(self.url(&format!("/sync{query}")));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().unwrap();
        (r.status().as_u16(), r.json().unwrap_or_default())
    }

    pub fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill").args([&format!("-{sig}"), &self.child.id().to_string()]).status().unwrap();
        assert!(ok.success());
    }

    /// Wait until `f` holds for the recorded runs in /status.
    pub fn wait_runs(&self, what: &str, timeout: Duration, f: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let runs = self.status()["runs"].as_array().cloned().unwrap_or_default();
            if f(&runs) {
                return runs;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; runs: {runs:#?}\nlog:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> i32 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "orgsync run did not exit within {timeout:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A run's trigger without the events it lists, and its status: an event
/// run is `event user:u1 (events: user_add_org e1, …)`.
pub fn trigger_and_status(run: &Value) -> (&str, &str) {
    let trigger = run["trigger"].as_str().unwrap_or_default();
    (trigger.split(" (events: ").next().unwrap_or_default(), run["status"].as_str().unwrap_or_default())
}

pub fn finished(runs: &[Value]) -> usize {
    runs.iter().filter(|r| r["status"] != "running").count()
}

fn promtool() -> PathBuf {
    if let Some(p) = std::env::var_os("PROMTOOL") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from("/usr/bin/promtool");
    assert!(p.exists(), "promtool not found and $PROMTOOL is not set: run scripts/test.sh, which installs it");
    p
}

#[test]
fn interval_runs_are_recorded_metrics_move_and_promtool_accepts_them() {
    let env = Env::new();
    let scim = Scim::start(env.dir.path());
    let port = free_port();
    env.scim_config(&scim, &format!("[schedule]\nmode = \"interval\"\nevery = \"1s\"\n[daemon]\nlisten = \"127.0.0.1:{port}\"\n"));
    env.write_org(&org(5, 20));
    let d = Daemon::start(&env, port);

    let runs = d.wait_runs("3 finished runs", Duration::from_secs(60), |r| finished(r) >= 3);
    assert!(runs.iter().all(|r| r["status"] == "succeeded" || r["status"] == "running"), "{runs:#?}");
    let triggers: Vec<&str> = runs.iter().map(|r| r["trigger"].as_str().unwrap()).collect();
    assert_eq!(triggers.last(), Some(&"startup"), "{triggers:?}");
    assert!(triggers.contains(&"schedule"), "{triggers:?}");
    assert_eq!(scim.users().len(), 20);

    assert_eq!(d.metric(r#"orgsync_runs_total{trigger="startup",status="succeeded"}"#), 1.0);
    assert!(d.metric(r#"orgsync_runs_total{trigger="schedule",status="succeeded"}"#) >= 2.0);
    assert_eq!(d.metric(r#"orgsync_objects{kind="user",side="source"}"#), 20.0);
    assert_eq!(d.metric(r#"orgsync_objects{kind="user",side="bound"}"#), 20.0);
    assert_eq!(d.metric(r#"orgsync_operations_total{kind="user",op="create",outcome="ok"}"#), 20.0);
    assert!(d.metric(r#"orgsync_target_requests_total{outcome="ok"}"#) > 20.0);
    assert!(d.metric(r#"orgsync_source_requests_total{outcome="ok",run="full"}"#) >= 3.0);
    assert_eq!(d.metric(r#"orgsync_last_run_status{status="succeeded"}"#), 1.0);
    assert_eq!(d.metric("orgsync_schedule_interval_seconds"), 1.0);
    assert!(d.metric("orgsync_last_success_timestamp_seconds") > 1.7e9);
    let before = d.metric(r#"orgsync_runs_total{trigger="schedule",status="succeeded"}"#);
    d.wait_runs("another scheduled run", Duration::from_secs(30), |r| finished(r) >= 5);
    assert!(d.metric(r#"orgsync_runs_total{trigger="schedule",status="succeeded"}"#) > before, "the counter moves");

    // promtool lints the exposition format (exit 0 clean, 3 lint problems).
    let text = d.metrics();
    let mut check = std::process::Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(check.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Every metric the alert rules and the dashboard use is exported.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in ["packaging/prometheus/orgsync-alerts.yml", "packaging/grafana/orgsync-dashboard.json"] {
        let used = std::fs::read_to_string(root.join(file)).unwrap();
        let names: HashSet<&str> = used
            .match_indices("orgsync_")
            .map(|(i, _)| {
                let rest = &used[i..];
                &rest[..rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len())]
            })
            .collect();
        assert!(names.len() >= 4, "{file}: {names:?}");
        for n in names {
            assert!(text.lines().any(|l| l.starts_with(n)), "{file} uses {n}, which /metrics does not export");
        }
    }

    assert_eq!(d.get("/healthz").0, 200);
    assert_eq!(d.get("/readyz").0, 200);
    let (code, body) = d.get("/status");
    assert_eq!(code, 200);
    assert!(!body.contains(TOKEN), "a secret reached /status: {body}");
    let s: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(s["status"], "succeeded");
    assert_eq!(s["source"], "file");
    assert_eq!(s["target"], "scim");
    assert_eq!(s["schedule"], "every 1s");
    assert!(s["next_run"].is_string(), "{s}");
    assert_eq!(s["objects"]["users"]["source"], 20);
    assert!(!d.log().contains(TOKEN), "a secret reached the log");
}

#[test]
fn post_sync_needs_the_admin_token_and_carries_the_one_time_deletion_approval() {
    let env = Env::new();
    let scim = Scim::start(env.dir.path());
    let port = free_port();
    std::fs::write(env.path("admin-token"), format!("{ADMIN}\n")).unwrap();
    env.scim_config(
        &scim,
        &format!(
            "[schedule]\nmode = \"manual\"\nrun_on_start = false\n\
             [daemon]\nlisten = \"127.0.0.1:{port}\"\nadmin_token_file = \"admin-token\"\n\
             [policy.users]\ntarget_only = \"delete\"\n[policy.guard]\nmax_deletes = 2\n"
        ),
    );
    env.write_org(&org(2, 10));
    let d = Daemon::start(&env, port);
    assert_eq!(d.status()["status"], "never_synced");

    assert_eq!(d.post_sync("", None).0, 401);
    assert_eq!(d.post_sync("", Some("wrong")).0, 401);
    let (code, body) = d.post_sync("", Some(ADMIN));
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["queued"], "started");
    d.wait_runs("the first run", Duration::from_secs(60), |r| finished(r) == 1);
    assert_eq!(scim.users().len(), 10);

    // Six people leave: more than max_deletes, so the guard holds them back.
    let mut smaller = org(2, 10);
    smaller["users"].as_array_mut().unwrap().truncate(4);
    env.write_org(&smaller);
    let t = env.orgsync(&["trigger"]);
    assert_eq!(t.code, 0, "{}", t.stderr);
    let runs = d.wait_runs("the guarded run", Duration::from_secs(60), |r| finished(r) == 2);
    assert_eq!(runs[0]["status"], "partial", "{runs:#?}");
    assert_eq!(runs[0]["trigger"], "http");
    assert_eq!(scim.users().len(), 10);
    assert_eq!(d.metric("orgsync_deletes_held_back"), 6.0);

    // The admin lets them through once.
    let t = env.orgsync(&["trigger", "--allow-deletes", "6"]);
    assert_eq!(t.code, 0, "{}", t.stderr);
    let runs = d.wait_runs("the approved run", Duration::from_secs(60), |r| finished(r) == 3);
    assert_eq!(runs[0]["status"], "succeeded", "{runs:#?}");
    assert_eq!(scim.users().len(), 4);
    assert_eq!(d.metric("orgsync_deletes_held_back"), 0.0);
    assert_eq!(d.metric("orgsync_removals_total{kind=\"user\",op=\"delete\",reason=\"left_source\"}"), 6.0);
    assert_eq!(d.post_sync("?allow_deletes=lots", Some(ADMIN)).0, 400);
    assert!(!d.log().contains(ADMIN), "the admin token reached the log");
}

#[test]
fn a_listener_beyond_loopback_without_a_token_refuses_to_start() {
    let env = Env::new();
    let scim = Scim::start(env.dir.path());
    env.scim_config(&scim, &format!("[daemon]\nlisten = \"0.0.0.0:{}\"\n", free_port()));
    let r = env.orgsync(&["run"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("daemon.admin_token_file: is required because daemon.listen"), "{}", r.stderr);
}

#[test]
fn sigusr1_triggers_a_run_and_sighup_with_a_broken_config_keeps_the_old_one() {
    let env = Env::new();
    let scim = Scim::start(env.dir.path());
    let port = free_port();
    let good = format!("[schedule]\nmode = \"manual\"\nrun_on_start = false\n[daemon]\nlisten = \"127.0.0.1:{port}\"\n");
    env.scim_config(&scim, &good);
    env.write_org(&org(2, 5));
    let d = Daemon::start(&env, port);

    d.signal("USR1");
    let runs = d.wait_runs("the SIGUSR1 run", Duration::from_secs(60), |r| finished(r) == 1);
    assert_eq!(runs[0]["trigger"], "signal");
    assert_eq!(runs[0]["status"], "succeeded");

    // A broken config is rejected and the daemon keeps running the old one.
    let config = std::fs::read_to_string(env.path("orgsync.toml")).unwrap();
    std::fs::write(env.path("orgsync.toml"), format!("{config}\n[policy.users]\ntarget_only = \"remove\"\n")).unwrap();
    d.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(20);
    while d.metric(r#"orgsync_config_reloads_total{outcome="error"}"#) < 1.0 {
        assert!(Instant::now() < deadline, "no reload error recorded:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        d.log().contains("policy.users.target_only: \\\"remove\\\" is not one of ignore, disable, delete")
            || d.log().contains("policy.users.target_only: \"remove\" is not one of ignore, disable, delete"),
        "{}",
        d.log()
    );
    assert_eq!(d.status()["schedule"], "manual");
    d.signal("USR1");
    let runs = d.wait_runs("a run on the old config", Duration::from_secs(60), |r| finished(r) == 2);
    assert_eq!(runs[0]["status"], "succeeded");

    // A good new config is taken: the schedule changes.
    std::fs::write(env.path("orgsync.toml"), config.replace("mode = \"manual\"", "mode = \"interval\"\nevery = \"1h\"")).unwrap();
    d.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(20);
    while d.metric(r#"orgsync_config_reloads_total{outcome="ok"}"#) < 1.0 {
        assert!(Instant::now() < deadline, "no reload recorded:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = d.status();
    assert_eq!(s["schedule"], "every 1h");
    assert!(s["next_run"].is_string(), "{s}");

    // A reload that leaves the schedule as it is keeps the next run's time:
    // once the clock is past the second that time was set in (set again, it would differ).
    let set = chrono::DateTime::parse_from_rfc3339(s["next_run"].as_str().unwrap()).unwrap() - chrono::Duration::hours(1);
    while chrono::Utc::now() < set + chrono::Duration::seconds(1) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(env.path("orgsync.toml")).unwrap();
    std::fs::write(
        env.path("orgsync.toml"),
        format!(
            "{text}
[policy.guard]
max_deletes = 7
"
        ),
    )
    .unwrap();
    d.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(20);
    while d.metric(r#"orgsync_config_reloads_total{outcome="ok"}"#) < 2.0 {
        assert!(
            Instant::now() < deadline,
            "no second reload recorded:
{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(d.status()["next_run"], s["next_run"], "an unchanged schedule moved the next run");
}

#[test]
fn sigterm_during_a_run_exits_0_within_the_grace_period_and_the_next_start_duplicates_nothing() {
    let env = Env::new();
    let scim = Scim::start(env.dir.path());
    let port = free_port();
    env.scim_config(&scim, &format!("[daemon]\nlisten = \"127.0.0.1:{port}\"\ngrace_period = \"20s\"\n"));
    env.write_org(&org(10, 600));
    let mut d = Daemon::start(&env, port);
    let deadline = Instant::now() + Duration::from_secs(120);
    while scim.writes().iter().filter(|(m, p, _)| m == "POST" && p.ends_with("/Users")).count() < 100 {
        assert!(Instant::now() < deadline, "the run made no progress:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let stopped_at = Instant::now();
    d.signal("TERM");
    // A guard against a hang only; the deadline is proven in paused time (sync::tests).
    assert_eq!(d.wait_exit(Duration::from_secs(120)), 0, "{}", d.log());
    eprintln!("SIGTERM to exit: {:?} (grace period 20 s)", stopped_at.elapsed());
    let partial = scim.users().len();
    assert!(partial < 600, "stopped too late: all users already there");

    let s = env.status_json();
    assert_eq!(s["runs"][0]["status"], "partial", "{s:#}");
    let message = s["runs"][0]["message"].as_str().unwrap();
    assert!(message.contains("stopped by shutdown"), "{message}");
    assert!(s["runs"][0]["counts"]["user.create.not_attempted"].as_u64().unwrap() > 0, "{s:#}");
    assert_eq!(s["runs"][0]["counts"]["user.create.ok"].as_u64().unwrap() as usize, partial, "every applied create was recorded");

    // The next start finishes the job without duplicates.
    let d = Daemon::start(&env, port);
    let runs = d.wait_runs("the resumed run", Duration::from_secs(240), |r| finished(r) == 2);
    assert_eq!(runs[0]["status"], "succeeded", "{runs:#?}");
    let users = scim.users();
    assert_eq!(users.len(), 600);
    let ids: HashSet<&str> = users.iter().map(|u| u["externalId"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 600, "duplicates in the target");
}

#[test]
fn a_second_daemon_on_the_same_state_dir_exits_with_a_clear_error() {
    let env = Env::new();
    let scim = Scim::start(env.dir.path());
    let port = free_port();
    env.scim_config(&scim, &format!("[schedule]\nmode = \"manual\"\nrun_on_start = false\n[daemon]\nlisten = \"127.0.0.1:{port}\"\n"));
    env.write_org(&org(1, 1));
    let _first = Daemon::start(&env, port);
    let second = env.orgsync(&["run"]);
    assert_eq!(second.code, 1, "{}", second.stderr);
    assert!(second.stderr.contains("another orgsync process holds the lock"), "{}", second.stderr);
}

#[test]
fn systemd_hears_ready_status_watchdog_and_stopping() {
    let env = Env::new();
    let scim = Scim::start(env.dir.path());
    let port = free_port();
    env.scim_config(
        &scim,
        &format!("[schedule]\nmode = \"daily\"\nat = \"02:30\"\ntimezone = \"Europe/Berlin\"\n[daemon]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    env.write_org(&org(1, 2));
    let socket = env.path("notify.sock");
    let sock = UnixDatagram::bind(&socket).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut d = Daemon::start_with(&env, port, &[("NOTIFY_SOCKET", socket.to_str().unwrap()), ("WATCHDOG_USEC", "400000")]);
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let wanted = |seen: &[String]| {
        seen.iter().any(|m| m.contains("READY=1"))
            && seen.iter().any(|m| m.contains("WATCHDOG=1"))
            && seen.iter().any(|m| m.contains("STATUS=last run 1 succeeded; next run "))
    };
    while !wanted(&seen) {
        let n = sock.recv(&mut buf).unwrap_or_else(|e| panic!("{e}; got {seen:?}\n{}", d.log()));
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let status = seen.iter().find(|m| m.contains("STATUS=last run 1")).unwrap();
    assert!(status.contains("T02:30:00+01:00"), "the next run is shown in the zone: {status}");
    d.signal("TERM");
    loop {
        let n = sock.recv(&mut buf).unwrap_or_else(|e| panic!("{e}; got {seen:?}"));
        let m = String::from_utf8_lossy(&buf[..n]).into_owned();
        if m.contains("STOPPING=1") {
            break;
        }
    }
    assert_eq!(d.wait_exit(Duration::from_secs(20)), 0);
}

#[test]
fn logs_are_json_when_configured_and_text_without_timestamps_under_systemd() {
    let env = Env::new();
    let scim = Scim::start(env.dir.path());
    env.write_org(&org(1, 2));
    env.scim_config(&scim, "[daemon]\nlog_format = \"json\"\nlog_level = \"info\"\n");
    let out = env.command(&["sync"]).env_remove("RUST_LOG").output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary: Value = stderr
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .find(|v| v["message"] == "Sync run finished")
        .unwrap_or_else(|| panic!("no summary line in {stderr}"));
    assert_eq!(summary["status"], "succeeded");
    assert_eq!(summary["created"], 3);
    assert_eq!(summary["level"], "INFO");

    env.scim_config(&scim, "");
    let out = env.command(&["sync"]).env("RUST_LOG", "info").env("JOURNAL_STREAM", "8:12345").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr.lines().find(|l| l.contains("Sync run finished")).unwrap_or_else(|| panic!("{stderr}"));
    // The journal adds timestamps, so we don't; it reads the priority from the `<N>` prefix.
    assert!(line.strip_prefix("<6>").is_some_and(|l| l.trim_start().starts_with("INFO")), "{line}");
}

/// A file source and a file target with `users` users, listening on `port`.
fn file_to_file(env: &Env, port: u16, users: usize, extra: &str) {
    env.write_org(&org(users / 100, users));
    let text = format!(
        "state_dir = \"state\"\n[source]\nkind = \"file\"\npath = \"org.json\"\n\
         [target]\nkind = \"file\"\npath = \"target.json\"\n\
         [daemon]\nlisten = \"127.0.0.1:{port}\"\n{extra}"
    );
    std::fs::write(env.path("orgsync.toml"), text).unwrap();
}

#[test]
fn a_long_run_keeps_the_watchdog_fed_and_sigterm_stops_it_within_the_grace_period() {
    let env = Env::new();
    let port = free_port();
    // Large enough that the run outlasts the watch below on a fast machine.
    // The grace period leaves a loaded machine time to record the 100,000
    // and more operations not attempted (it took over 10 s beside a build).
    file_to_file(&env, port, 150_000, "grace_period = \"30s\"\n");
    let socket = env.path("notify.sock");
    let sock = UnixDatagram::bind(&socket).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    // Collect every notification with the time it arrived.
    let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(Instant, String)>::new()));
    let h = heard.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            if let Ok(n) = sock.recv(&mut buf) {
                h.lock().unwrap().push((Instant::now(), String::from_utf8_lossy(&buf[..n]).into_owned()));
            }
        }
    });
    let mut d = Daemon::start_with(&env, port, &[("NOTIFY_SOCKET", socket.to_str().unwrap()), ("WATCHDOG_USEC", "1000000")]);
    // The startup run is under way once its first outcome is recorded.
    let deadline = Instant::now() + Duration::from_secs(120);
    while d.status()["runs"][0]["counts"]["user.create.ok"].as_u64().unwrap_or(0) == 0 {
        assert!(Instant::now() < deadline, "the run made no progress:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // The watchdog is fed while the run goes on (WATCHDOG_USEC = 1 s: a ping
    // every half second). How regular the pings are is the scheduler's
    // business on a loaded machine; that they keep coming during a run is ours.
    let watched_from = Instant::now();
    let pings_during_run = || heard.lock().unwrap().iter().filter(|(t, m)| *t >= watched_from && m.contains("WATCHDOG=1")).count();
    while pings_during_run() < 3 {
        assert!(watched_from.elapsed() < Duration::from_secs(60), "{} watchdog pings in a minute of the run", pings_during_run());
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = d.status();
    assert_eq!(status["run_in_progress"], true, "the run must still be going to prove anything: {status:#}");
    let pings = pings_during_run();

    let stopped_at = Instant::now();
    d.signal("TERM");
    // Once stopping: not ready, and no new runs taken (while it still answers).
    let mut answers = Vec::new();
    while d.child.try_wait().unwrap().is_none() {
        if let (Ok(ready), Ok(sync)) = (d.http.get(d.url("/readyz")).send(), d.http.post(d.url("/sync")).send()) {
            answers.push((ready.status().as_u16(), sync.status().as_u16()));
        }
        // Only a guard against a hang: the deadline itself is proven in paused
        // time (sync::tests, the hung operation abandoned at the grace period).
        assert!(stopped_at.elapsed() < Duration::from_secs(120), "no exit after SIGTERM:\n{}", d.log());
    }
    let took = stopped_at.elapsed();
    assert_eq!(d.wait_exit(Duration::from_secs(1)), 0, "{}", d.log());
    // The first answers may precede the signal's delivery; once one says
    // stopping, every later one does, the last included.
    if let Some(first) = answers.iter().position(|a| *a == (503, 503)) {
        assert!(answers[first..].iter().all(|a| *a == (503, 503)), "ready again after stopping: {answers:?}");
    }
    if let Some(last) = answers.last() {
        assert_eq!(*last, (503, 503), "readyz and POST /sync once stopping: {answers:?}");
    }
    eprintln!("SIGTERM to exit: {took:?}; watchdog pings during the run: {pings}; answers while stopping: {}", answers.len());
    let s = env.status_json();
    let run = &s["runs"][0];
    assert_eq!(run["status"], "partial", "{s:#}");
    assert!(run["message"].as_str().unwrap().contains("stopped by shutdown"), "{run:#}");
    assert!(run["counts"]["user.create.not_attempted"].as_u64().unwrap() > 0, "{run:#}");
}

#[test]
fn a_port_in_use_is_said_once_and_leaves_no_mirror_behind() {
    let env = Env::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    file_to_file(&env, port, 100, "");
    let r = env.orgsync(&["run"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.stderr.matches("in use").count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains(&format!("cannot listen on 127.0.0.1:{port} (daemon.listen)")), "{}", r.stderr);
    assert!(!env.path("state/mirror.db").exists(), "the mirror was created before the listener failed");
}

#[test]
fn status_refuses_a_limit_of_zero() {
    let env = Env::new();
    file_to_file(&env, free_port(), 100, "");
    assert_eq!(env.sync(&[]).code, 0);
    let r = env.orgsync(&["status", "--limit", "0"]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    let r = env.orgsync(&["status", "--limit", "1"]);
    assert!(r.stdout.contains("status: succeeded"), "{}", r.stdout);
}
