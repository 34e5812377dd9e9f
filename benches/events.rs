//! The budget of event-driven sync (issue 31), measured against the test
//! fakes (`tests/it/fake_*.rs`, which follow EVENTS.md) and the in-process
//! SCIM server, through the release binary's service:
//!
//!     cargo bench --bench events               # DingTalk Stream and Feishu's long connection
//!     cargo bench --bench events -- dingtalk   # one
//!
//! For a 10,000-user org in 1,000 departments it measures the source API
//! calls of one full run (the first run), and of the event run that one
//! changed user costs (an event, then the user read by id), over several
//! changes. From them it prints the calls per 30 days with 1 % of the users
//! changing per day, in two modes: a full poll every hour, and a daily full
//! run plus one event run per change (the worst case: no two changes in one
//! window). It also prints the median seconds from a change sent by the
//! fake to the change in the target (`[source.events] window` included).

#[allow(dead_code)]
#[path = "../tests/it/fake.rs"]
mod fake;
#[allow(dead_code)]
#[path = "../tests/it/fake_dingtalk.rs"]
mod fake_dingtalk;
#[allow(dead_code)]
#[path = "../tests/it/fake_feishu.rs"]
mod fake_feishu;
#[allow(dead_code)]
#[path = "../tests/servers/fast_scim.rs"]
mod fast_scim;

use serde_json::{Value, json};
use std::time::{Duration, Instant};

const USERS: usize = 10_000;
const DEPTS: usize = 1_000;
/// Changes measured, one after another.
const CHANGES: usize = 15;
/// Users changing per day: 1 %.
const CHANGED_PER_DAY: usize = USERS / 100;
const WINDOW: &str = "1s";

/// What a vendor's fake is driven with.
trait Vendor {
    fn name(&self) -> &'static str;
    /// The `[source]` keys, events included.
    fn source(&self) -> String;
    /// Source API calls so far (the stream's own endpoint requests left out).
    fn calls(&self) -> usize;
    fn wait_connected(&self);
    /// Rename user `i` in the fake and send the event that says so.
    fn change(&self, i: usize, name: &str);
    /// The user's `userName` in the target.
    fn username(&self, i: usize) -> String;
}

struct DingTalk(fake_dingtalk::FakeDingTalk);

impl Vendor for DingTalk {
    fn name(&self) -> &'static str {
        "dingtalk (Stream)"
    }
    fn source(&self) -> String {
        format!(
            "kind = \"dingtalk\"\nbase_url = \"{b}\"\napp_key = \"{}\"\napp_secret = \"{}\"\nrate_limit = 20\n\
             [source.events]\ngateway_url = \"{b}\"\nwindow = \"{WINDOW}\"\n",
            fake_dingtalk::APP_KEY,
            fake_dingtalk::APP_SECRET,
            b = self.0.base
        )
    }
    fn calls(&self) -> usize {
        self.0.count("") - self.0.count("stream open")
    }
    fn wait_connected(&self) {
        self.0.wait_connections(1, "the Stream");
    }
    fn change(&self, i: usize, name: &str) {
        let id = format!("dt{i}");
        self.0.world.lock().unwrap().users.iter_mut().find(|u| u["userid"] == id.as_str()).unwrap()["name"] = json!(name);
        let frame = self.0.event_frame(&format!("ev-{name}"), "user_modify_org", &json!({"timeStamp": "1", "userId": [id]}));
        assert!(self.0.push_frame(&frame));
    }
    fn username(&self, i: usize) -> String {
        format!("dt{i}")
    }
}

struct Feishu(fake_feishu::FakeFeishu);

impl Vendor for Feishu {
    fn name(&self) -> &'static str {
        "feishu (long connection)"
    }
    fn source(&self) -> String {
        format!(
            "kind = \"feishu\"\nbase_url = \"{}\"\napp_id = \"{}\"\napp_secret = \"{}\"\nrate_limit = 50\n\
             [source.events]\nwindow = \"{WINDOW}\"\n",
            self.0.base,
            fake_feishu::APP_ID,
            fake_feishu::APP_SECRET
        )
    }
    fn calls(&self) -> usize {
        self.0.count("") - self.0.count("ws endpoint")
    }
    fn wait_connected(&self) {
        self.0.wait_connections(1, "the long connection");
    }
    fn change(&self, i: usize, name: &str) {
        let union = format!("on_{i:04}");
        self.0.world.lock().unwrap().users.iter_mut().find(|u| u["union_id"] == union.as_str()).unwrap()["name"] = json!(name);
        let event = json!({"schema": "2.0", "header": {"event_id": format!("ev-{name}"), "event_type": "contact.user.updated_v3",
            "create_time": "1700000000000", "token": "", "app_id": fake_feishu::APP_ID, "tenant_key": "tk"},
            "event": {"object": {"union_id": union}, "old_object": {"name": "before"}}});
        self.0.push_event(&event, 1);
    }
    fn username(&self, i: usize) -> String {
        format!("u{i}")
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The id of the service's last finished run, from `/status` (0 before
/// the first; `/status` lists only the last few runs).
fn finished(http: &reqwest::blocking::Client, port: u16) -> u64 {
    let Ok(r) = http.get(format!("http://127.0.0.1:{port}/status")).send() else { return 0 };
    let v: Value = r.json().unwrap_or_default();
    v["runs"].as_array().into_iter().flatten().filter(|r| r["status"] != "running").filter_map(|r| r["id"].as_u64()).max().unwrap_or(0)
}

fn wait(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(900);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn measure(v: &dyn Vendor) {
    let dir = tempfile::tempdir().unwrap();
    let scim = fast_scim::Server::start();
    let port = free_port();
    std::fs::write(dir.path().join("token"), "t\n").unwrap();
    std::fs::write(
        dir.path().join("orgsync.toml"),
        format!(
            "state_dir = \"state\"\n[source]\n{}[target]\nkind = \"scim\"\nbase_url = \"{}\"\ntoken_file = \"token\"\n\
             [schedule]\nmode = \"manual\"\nrun_on_start = true\n[daemon]\nlisten = \"127.0.0.1:{port}\"\n",
            v.source(),
            scim.base
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_orgsync"))
        .arg("--config")
        .arg(dir.path().join("orgsync.toml"))
        .arg("run")
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::blocking::Client::new();
    let t = Instant::now();
    wait("the first, full run", || finished(&http, port) == 1);
    let full_s = t.elapsed().as_secs_f64();
    let full = v.calls();
    v.wait_connected();
    let mut latencies = Vec::new();
    let mut event_calls = Vec::new();
    for k in 0..CHANGES {
        let i = (k * 613 + 7) % USERS;
        let name = format!("Changed {k}");
        let username = v.username(i);
        let before = v.calls();
        let t = Instant::now();
        v.change(i, &name);
        wait("the change in the target", || {
            scim.store
                .lock()
                .unwrap()
                .users
                .iter()
                .flatten()
                .any(|u| u["userName"] == username.as_str() && u["displayName"] == name.as_str())
        });
        latencies.push(t.elapsed().as_secs_f64());
        wait("the event run recorded", || finished(&http, port) == k as u64 + 2);
        event_calls.push(v.calls() - before);
    }
    let _ = std::process::Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    latencies.sort_by(f64::total_cmp);
    event_calls.sort_unstable();
    let per_event = event_calls[event_calls.len() / 2];
    let hourly = 24 * 30 * full;
    let daily_events = 30 * full + 30 * CHANGED_PER_DAY * per_event;
    println!("{}: {USERS} users in {DEPTS} departments", v.name());
    println!("  full run:                      {full:>9} calls ({full_s:.1} s)");
    println!(
        "  one changed user, by event:    {per_event:>9} calls (median of {CHANGES}; min {}, max {})",
        event_calls[0],
        event_calls[event_calls.len() - 1]
    );
    println!("  30 days, hourly full polling:  {hourly:>9} calls");
    println!(
        "  30 days, daily full + events:  {daily_events:>9} calls ({:.1} % of polling; {CHANGED_PER_DAY} changes a day, each its own run)",
        100.0 * daily_events as f64 / hourly as f64
    );
    println!(
        "  change in the fake -> in the target: median {:.2} s, max {:.2} s (window {WINDOW})",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
}

fn main() {
    let only: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| name.starts_with(o.as_str()));
    if wanted("dingtalk") {
        measure(&DingTalk(fake_dingtalk::FakeDingTalk::start_with_stream(fake_dingtalk::sized(DEPTS, USERS))));
    }
    if wanted("feishu") {
        measure(&Feishu(fake_feishu::FakeFeishu::start_with_long_connection(fake_feishu::sized(DEPTS, USERS))));
    }
}
