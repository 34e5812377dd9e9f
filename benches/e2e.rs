//! End to end, through the release binary: a file source of 100,000 users
//! in 10,000 departments (generated here: a tree, 1-3 departments per user,
//! emails, mobiles, employee numbers, 3 % inactive) to the file target and
//! to an in-process fast SCIM server (in memory, on loopback), each next to
//! its floor measured in the same run:
//! - file: reading the source document and writing a target document once;
//! - SCIM: a bare reqwest client making the same requests (same count and
//!   kinds, same concurrency) to a fresh server; for the idle run, the same
//!   listing requests.
//!
//! ```text
//! cargo bench --bench e2e              # 100,000 users
//! cargo bench --bench e2e -- --quick   # 10,000 users
//! ```
//!
//! Each run is `orgsync sync` in its own process: wall time and peak RSS
//! (VmHWM, polled). It ends with one line:
//! `e2e: initial_file X.XXx, initial_scim X.XXx, idle_scim X.XXx, mapping X.XXx, rss_mb N`
//! (`mapping`: an idle run with every field from a `[mapping]` expression,
//! as a ratio to the same run with the fixed mapping).

use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const CONCURRENCY: usize = 8;
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn org(users: usize) -> Value {
    let depts = users / 10;
    let departments: Vec<Value> = (0..depts)
        .map(|i| json!({"id": format!("d{i}"), "parent_id": if i == 0 { Value::Null } else { json!(format!("d{}", (i - 1) / 8)) }, "name": format!("Department {i}")}))
        .collect();
    let users: Vec<Value> = (0..users)
        .map(|i| {
            let n = 1 + i % 3;
            let ds: Vec<String> = (0..n).map(|k| format!("d{}", (i * 7 + k * 13) % depts)).collect();
            json!({"id": format!("u{i}"), "username": format!("user{i}"), "name": format!("User Number {i}"),
                   "email": format!("user{i}@example.test"), "mobile": format!("+86 138{i:08}"), "employee_no": format!("E{i:06}"),
                   "department_ids": ds, "active": i % 33 != 0})
        })
        .collect();
    json!({"departments": departments, "users": users})
}

#[allow(dead_code)]
#[path = "../tests/servers/fast_scim.rs"]
mod fast_scim;
use fast_scim::Server;

// ---- running orgsync ----

struct Ran {
    wall: Duration,
    rss_mb: f64,
}

/// `orgsync --config CONFIG sync` in its own process: wall time and peak RSS.
fn sync(config: &std::path::Path) -> Ran {
    let t = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_orgsync"))
        .arg("--config")
        .arg(config)
        .arg("sync")
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut hwm_kb = 0u64;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status)
            && let Some(line) = text.lines().find(|l| l.starts_with("VmHWM:"))
        {
            hwm_kb = hwm_kb.max(line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0));
        }
        if let Some(code) = child.try_wait().unwrap() {
            assert!(code.code().is_some_and(|c| c == 0 || c == 3), "orgsync sync failed: {code}");
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ran { wall: t.elapsed(), rss_mb: hwm_kb as f64 / 1024.0 }
}

fn line(what: &str, ran: &Ran, floor: Option<Duration>) -> f64 {
    let ratio = floor.map_or(0.0, |f| ran.wall.as_secs_f64() / f.as_secs_f64());
    match floor {
        Some(f) => println!(
            "{what:<26} {:>8.2} s  floor {:>7.2} s  {ratio:>6.2}x  peak RSS {:>6.0} MB",
            ran.wall.as_secs_f64(),
            f.as_secs_f64(),
            ran.rss_mb
        ),
        None => println!("{what:<26} {:>8.2} s  {:>31}  peak RSS {:>6.0} MB", ran.wall.as_secs_f64(), "", ran.rss_mb),
    }
    ratio
}

fn mirror_mb(dir: &std::path::Path) -> f64 {
    ["mirror.db", "mirror.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join("state").join(f)).ok())
        .map(|m| m.len() as f64)
        .sum::<f64>()
        / 1e6
}

/// The file floor: read the source document, write a target document once.
fn file_floor(dir: &std::path::Path) -> Duration {
    let t = Instant::now();
    let doc: Value = serde_json::from_slice(&std::fs::read(dir.join("org.json")).unwrap()).unwrap();
    std::fs::write(dir.join("floor.json"), serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    t.elapsed()
}

/// The SCIM floor: the same requests from a bare client, same concurrency.
fn scim_floor(doc: &Value, requests: &HashMap<&'static str, usize>) -> Duration {
    let server = Server::start();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let http = reqwest::Client::new();
    let base = server.base.clone();
    let users = doc["users"].as_array().unwrap();
    let depts = doc["departments"].as_array().unwrap();
    let posts = requests.get("POST").copied().unwrap_or(0);
    let patches = requests.get("PATCH").copied().unwrap_or(0);
    let gets = requests.get("GET").copied().unwrap_or(0);
    let t = Instant::now();
    rt.block_on(async {
        let post = |path: &'static str, body: Value| {
            let (http, base) = (http.clone(), base.clone());
            async move { http.post(format!("{base}{path}")).json(&body).send().await.unwrap().bytes().await.unwrap() }
        };
        let groups: Vec<Value> = depts.iter().map(|d| json!({"displayName": d["name"], "externalId": d["id"]})).collect();
        let bodies: Vec<(&'static str, Value)> = groups
            .into_iter()
            .map(|b| ("/Groups", b))
            .chain(users.iter().map(|u| ("/Users", json!({"userName": u["username"], "externalId": u["id"], "displayName": u["name"],
                "emails": [{"value": u["email"], "type": "work", "primary": true}], "phoneNumbers": [{"value": u["mobile"], "type": "mobile"}],
                ENTERPRISE: {"employeeNumber": u["employee_no"]}, "active": u["active"]}))))
            .take(posts)
            .collect();
        futures::stream::iter(bodies).map(|(p, b)| post(p, b)).buffer_unordered(CONCURRENCY).for_each(|_| async {}).await;
        let per_group = users.len().div_ceil(depts.len().max(1)) * 2;
        futures::stream::iter(0..patches)
            .map(|g| {
                let (http, base) = (http.clone(), base.clone());
                let members: Vec<Value> = (0..per_group).map(|k| json!({"value": format!("U{}", (g * per_group + k) % users.len()), "type": "User"})).collect();
                async move {
                    let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "add", "path": "members", "value": members}]});
                    http.patch(format!("{base}/Groups/G{}", g % depts.len().max(1))).json(&body).send().await.unwrap().bytes().await.unwrap()
                }
            })
            .buffer_unordered(CONCURRENCY)
            .for_each(|_| async {})
            .await;
        let _ = gets;
    });
    t.elapsed()
}

/// The idle floor: the listing requests orgsync's idle run made (discovery,
/// every page of users and groups), one after another as orgsync reads
/// them, against the same full server.
fn idle_floor(server: &Server, requests: &HashMap<&'static str, usize>, users: usize, groups: usize) -> Duration {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let http = reqwest::Client::new();
    let mut urls: Vec<String> =
        ["ServiceProviderConfig", "ResourceTypes", "Schemas"].iter().map(|p| format!("{}/{p}", server.base)).collect();
    urls.extend((0..users.div_ceil(1000)).map(|k| format!("{}/Users?startIndex={}&count=1000", server.base, 1 + k * 1000)));
    urls.extend((0..groups.div_ceil(1000)).map(|k| format!("{}/Groups?startIndex={}&count=1000", server.base, 1 + k * 1000)));
    urls.truncate(requests.get("GET").copied().unwrap_or(0));
    let t = Instant::now();
    rt.block_on(async {
        for u in urls {
            let body = http.get(u).send().await.unwrap().bytes().await.unwrap();
            // Parsed, as any client must.
            let _: Value = serde_json::from_slice(&body).unwrap_or_default();
        }
    });
    t.elapsed()
}

/// A change cycle on `doc`: every 100th department (from d1) renamed,
/// every 200th user (from u50) moved from its first department to the
/// next or, every other one, into a renamed department, every 100th user
/// (from u7) gone. With it, the groups whose name or
/// members change: the fewest writes are one PATCH per such group (name
/// and members together), plus one request per user update or delete the
/// run carried out.
fn change_cycle(doc: &Value) -> (Value, usize) {
    use std::collections::HashSet;
    let mut out = doc.clone();
    let depts = doc["departments"].as_array().unwrap().len();
    let renamed: HashSet<String> = (1..depts).step_by(100).map(|i| format!("d{i}")).collect();
    for d in out["departments"].as_array_mut().unwrap() {
        if renamed.contains(d["id"].as_str().unwrap()) {
            d["name"] = json!(format!("{} (renamed)", d["name"].as_str().unwrap()));
        }
    }
    let mut groups = renamed.clone();
    let mut kept = Vec::new();
    for (i, u) in out["users"].as_array().unwrap().iter().enumerate() {
        let mut u = u.clone();
        let ds: Vec<String> = u["department_ids"].as_array().unwrap().iter().map(|d| d.as_str().unwrap().to_owned()).collect();
        if i % 100 == 7 {
            groups.extend(ds);
            continue;
        }
        if i % 200 == 50 {
            // Every other one into a renamed department: its rename and members in one PATCH.
            let n: usize = ds[0][1..].parse().unwrap();
            let new =
                if i % 400 == 50 { format!("d{}", 1 + 100 * ((i / 400) % depts.div_ceil(100))) } else { format!("d{}", (n + 1) % depts) };
            let mut moved = ds.clone();
            if ds.contains(&new) {
                moved.remove(0);
            } else {
                moved[0] = new.clone();
                groups.insert(new);
            }
            groups.insert(ds[0].clone());
            u["department_ids"] = json!(moved);
        }
        kept.push(u);
    }
    out["users"] = Value::Array(kept);
    (out, groups.len())
}

/// The last run's count of `key` (`user.update.ok`).
fn last_count(config: &std::path::Path, key: &str) -> usize {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_orgsync"))
        .arg("--config")
        .arg(config)
        .args(["status", "--output", "json"])
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    status["runs"][0]["counts"][key].as_u64().unwrap_or(0) as usize
}

fn write_config(dir: &std::path::Path, target: &str) -> std::path::PathBuf {
    let p = dir.join("orgsync.toml");
    std::fs::write(dir.join("token"), "t\n").unwrap();
    std::fs::write(&p, format!("state_dir = \"state\"\n[source]\nkind = \"file\"\npath = \"org.json\"\n[target]\n{target}\n[policy.guard]\nmax_deletes = 1000000\nmax_delete_percent = 100\n")).unwrap();
    p
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 10_000 } else { 100_000 };
    let doc = org(n);
    println!("e2e: {n} users in {} departments, release binary, concurrency {CONCURRENCY}", n / 10);
    let mut rss_max: f64 = 0.0;

    // file -> file
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("org.json"), serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let config = write_config(dir.path(), "kind = \"file\"\npath = \"target.json\"");
    let floor = file_floor(dir.path());
    let r = sync(&config);
    rss_max = rss_max.max(r.rss_mb);
    let initial_file = line("file: initial sync", &r, Some(floor));
    let r = sync(&config);
    rss_max = rss_max.max(r.rss_mb);
    line("file: idle resync", &r, Some(floor));
    let idle = r.wall;
    // The same run with every field from an expression ([mapping], issue 29):
    // the values come out the same, so it is idle too; its cost is the ratio.
    let fixed = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{fixed}[mapping.users]\nusername = \"email | email_local\"\nname = \"name | trim\"\nemail = \"email | lower\"\n\
             mobile = \"mobile\"\nemployee_no = \"employee_no\"\nnickname = \"nickname\"\ntitle = \"title or none\"\n\
             [mapping.departments]\nname = \"name\"\n"
        ),
    )
    .unwrap();
    let r = sync(&config);
    rss_max = rss_max.max(r.rss_mb);
    line("file: idle, [mapping]", &r, Some(floor));
    let mapping_ratio = r.wall.as_secs_f64() / idle.as_secs_f64();
    println!(
        "{:<26} {mapping_ratio:>8.2}x the fixed mapping's idle run ({:.2} s more per {n} users)",
        "mapping: cost",
        (r.wall.as_secs_f64() - idle.as_secs_f64()).max(0.0)
    );
    std::fs::write(&config, fixed).unwrap();
    let mut changed = doc.clone();
    for u in changed["users"].as_array_mut().unwrap().iter_mut().step_by(100) {
        u["name"] = json!(format!("{} (changed)", u["name"].as_str().unwrap()));
    }
    std::fs::write(dir.path().join("org.json"), serde_json::to_vec_pretty(&changed).unwrap()).unwrap();
    let r = sync(&config);
    line("file: 1 % changed", &r, Some(floor));
    std::fs::remove_dir_all(dir.path().join("state")).unwrap();
    let r = sync(&config);
    line("file: re-bind, empty mirror", &r, Some(floor));
    println!("{:<26} {:>8.1} MB", "file: mirror on disk", mirror_mb(dir.path()));

    // file -> SCIM
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("org.json"), serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let server = Server::start();
    let config = write_config(
        dir.path(),
        &format!("kind = \"scim\"\nbase_url = \"{}\"\ntoken_file = \"token\"\nconcurrency = {CONCURRENCY}", server.base),
    );
    let r = sync(&config);
    let initial_requests = server.requests();
    rss_max = rss_max.max(r.rss_mb);
    let floor = scim_floor(&doc, &initial_requests);
    let initial_scim = line("scim: initial sync", &r, Some(floor));
    println!("{:<26} {:?}", "scim: initial requests", initial_requests);
    let r = sync(&config);
    let idle_requests = server.requests();
    rss_max = rss_max.max(r.rss_mb);
    let (users_in, groups_in) = {
        let s = server.store.lock().unwrap();
        (s.users.iter().flatten().count(), s.groups.iter().flatten().count())
    };
    let floor = idle_floor(&server, &idle_requests, users_in, groups_in);
    server.requests();
    let idle_scim = line("scim: idle resync", &r, Some(floor));
    println!("{:<26} {:?}", "scim: idle requests", idle_requests);
    std::fs::write(dir.path().join("org.json"), serde_json::to_vec_pretty(&changed).unwrap()).unwrap();
    let r = sync(&config);
    line("scim: 1 % changed", &r, None);
    println!("{:<26} {:?}", "scim: 1 % requests", server.requests());
    std::fs::remove_dir_all(dir.path().join("state")).unwrap();
    let r = sync(&config);
    line("scim: re-bind, empty mirror", &r, None);
    println!("{:<26} {:?}", "scim: re-bind requests", server.requests());
    let (cycled, groups_touched) = change_cycle(&changed);
    std::fs::write(dir.path().join("org.json"), serde_json::to_vec_pretty(&cycled).unwrap()).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}[policy.users]\ntarget_only = \"delete\"\n")).unwrap();
    let r = sync(&config);
    line("scim: change cycle", &r, None);
    let cycle_requests = server.requests();
    let minimum = groups_touched + last_count(&config, "user.update.ok") + last_count(&config, "user.delete.ok");
    let writes: usize = cycle_requests.iter().filter(|(m, _)| **m != "GET").map(|(_, n)| n).sum();
    println!(
        "{:<26} {:?}: {writes} writes, minimum {minimum} ({:.2}x), {} reads (idle: {})",
        "scim: change cycle requests",
        cycle_requests,
        writes as f64 / minimum as f64,
        cycle_requests.get("GET").copied().unwrap_or(0),
        idle_requests.get("GET").copied().unwrap_or(0)
    );
    println!("{:<26} {:>8.1} MB", "scim: mirror on disk", mirror_mb(dir.path()));
    println!(
        "e2e: initial_file {initial_file:.2}x, initial_scim {initial_scim:.2}x, idle_scim {idle_scim:.2}x, mapping {mapping_ratio:.2}x, rss_mb {rss_max:.0}"
    );
}
