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
//! cargo bench --bench e2e                      # 100,000 users
//! cargo bench --bench e2e -- --quick           # 10,000 users
//! cargo bench --bench e2e -- --users 1000000   # any count
//! cargo bench --bench e2e -- --serve           # after the first SCIM sync, keep
//!                                              # its server up to profile runs by hand
//! ```
//!
//! Each run is `orgsync sync` in its own process: wall time and peak RSS
//! (VmHWM, polled). The idle runs and their floors are each the best of
//! three (one at a million users): a VM's timings vary by ±15 %. The
//! floors of the resyncs are the same reads (parsing the source document,
//! and the target document or the target's listing requests); a changed
//! run's floor adds the same writes (the target document once, or the
//! same count of PATCH requests). The initial file
//! sync is also set beside its floor extended by the mirror's SQLite writes
//! (a binding and a run item per object, in one transaction). It ends with
//! one line:
//! `e2e: users N, initial_file X.XXx (mirror X.XXx), idle_file X.XXx, changed_file X.XXx, initial_scim X.XXx, idle_scim X.XXx, changed_scim X.XXx, mapping X.XXx, rss_mb N`
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

/// The file resync's floor: the same reads, the source and the target
/// document parsed; with `write`, the target document written once.
fn file_resync_floor(dir: &std::path::Path, write: bool) -> Duration {
    let t = Instant::now();
    let source: Value = serde_json::from_slice(&std::fs::read(dir.join("org.json")).unwrap()).unwrap();
    let target: Value = serde_json::from_slice(&std::fs::read(dir.join("target.json")).unwrap()).unwrap();
    if write {
        std::fs::write(dir.join("floor.json"), serde_json::to_vec_pretty(&target).unwrap()).unwrap();
    }
    drop(std::hint::black_box(source));
    t.elapsed()
}

/// The mirror's floor: what an initial sync must keep on disk (one
/// binding and one run item per object) written the fastest way, in one
/// transaction with cached statements, into a mirror of orgsync's schema.
fn mirror_floor(doc: &Value) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    drop(orgsync::mirror::Mirror::open(dir.path()).unwrap());
    let mut c = rusqlite::Connection::open(dir.path().join("mirror.db")).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    c.pragma_update(None, "synchronous", "NORMAL").unwrap();
    let objects: Vec<(&str, &str)> = doc["departments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| ("department", d["id"].as_str().unwrap()))
        .chain(doc["users"].as_array().unwrap().iter().map(|u| ("user", u["id"].as_str().unwrap())))
        .collect();
    let t = Instant::now();
    let tx = c.transaction().unwrap();
    tx.execute("INSERT INTO runs (trigger, started_at, status) VALUES ('manual', '2026-01-01T00:00:00Z', 'running')", []).unwrap();
    let run = tx.last_insert_rowid();
    {
        let mut bind = tx
            .prepare("INSERT INTO bindings (kind, source_id, target_id, hash, updated_at) VALUES (?1, ?2, ?3, ?4, '2026-01-01T00:00:00Z')")
            .unwrap();
        let mut item = tx
            .prepare(
                "INSERT INTO run_items (run_id, kind, op, source_id, target_id, outcome, at) \
                 VALUES (?1, ?2, 'create', ?3, ?4, 'ok', '2026-01-01T00:00:00Z')",
            )
            .unwrap();
        for (k, (kind, id)) in objects.iter().enumerate() {
            let target = format!("t{k}");
            bind.execute(rusqlite::params![kind, id, target, "0123456789abcdef"]).unwrap();
            item.execute(rusqlite::params![run, kind, id, target]).unwrap();
        }
    }
    tx.commit().unwrap();
    t.elapsed()
}

/// The changed SCIM run's writes: a PATCH request to each of `ids` from a bare client,
/// same concurrency, each replacing one user's displayName.
fn patch_floor(server: &Server, ids: &[String]) -> Duration {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let http = reqwest::Client::new();
    let t = Instant::now();
    rt.block_on(async {
        futures::stream::iter(ids.iter().enumerate())
            .map(|(k, id)| {
                let (http, base) = (http.clone(), server.base.clone());
                async move {
                    let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "replace", "path": "displayName", "value": format!("Floor {k}")}]});
                    http.patch(format!("{base}/Users/{id}")).json(&body).send().await.unwrap().bytes().await.unwrap()
                }
            })
            .buffer_unordered(CONCURRENCY)
            .for_each(|_| async {})
            .await;
    });
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

/// The shortest of `n` (at least one) timings.
fn best(n: usize, mut time: impl FnMut() -> Duration) -> Duration {
    (0..n.max(1)).map(|_| time()).min().unwrap_or_default()
}

/// `orgsync sync` `n` times (none when `n` is 0): the shortest run, with the highest peak RSS.
fn sync_best(config: &std::path::Path, n: usize) -> Ran {
    (0..n).map(|_| sync(config)).reduce(Ran::best).unwrap_or(Ran { wall: Duration::MAX, rss_mb: 0.0 })
}

impl Ran {
    fn best(a: Ran, b: Ran) -> Ran {
        Ran { wall: a.wall.min(b.wall), rss_mb: a.rss_mb.max(b.rss_mb) }
    }
}

/// Peak RSS over the runs so far, and each run kind's.
#[derive(Default)]
struct Peaks(Vec<(&'static str, f64)>);

impl Peaks {
    fn add(&mut self, what: &'static str, ran: &Ran) {
        self.0.push((what, ran.rss_mb));
    }

    fn max(&self) -> f64 {
        self.0.iter().map(|p| p.1).fold(0.0, f64::max)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n = match args.iter().position(|a| a == "--users") {
        Some(i) => args.get(i + 1).and_then(|v| v.replace('_', "").parse().ok()).expect("--users N"),
        None if args.iter().any(|a| a == "--quick") => 10_000,
        None => 100_000,
    };
    let doc = org(n);
    // The idle runs and their floors: the best of three (of one at a million users).
    let reps = if n > 200_000 { 1 } else { 3 };
    println!("e2e: {n} users in {} departments, release binary, concurrency {CONCURRENCY}", n / 10);
    let mut peaks = Peaks::default();

    // file -> file
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("org.json"), serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let config = write_config(dir.path(), "kind = \"file\"\npath = \"target.json\"");
    let floor = file_floor(dir.path());
    let r = sync(&config);
    peaks.add("file initial", &r);
    let initial_file = line("file: initial sync", &r, Some(floor));
    let with_mirror = floor + mirror_floor(&doc);
    let initial_file_mirror = r.wall.as_secs_f64() / with_mirror.as_secs_f64();
    println!(
        "{:<26} {:>8.2} s  floor {:>7.2} s  {initial_file_mirror:>6.2}x  (the floor with a binding and an item per object in SQLite)",
        "file: initial, mirror",
        r.wall.as_secs_f64(),
        with_mirror.as_secs_f64()
    );
    let idle_floor_file = best(reps, || file_resync_floor(dir.path(), false));
    let r = sync_best(&config, reps);
    peaks.add("file idle", &r);
    let idle_file = line("file: idle resync", &r, Some(idle_floor_file));
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
    let r = sync_best(&config, reps);
    peaks.add("file idle, mapping", &r);
    line("file: idle, [mapping]", &r, Some(idle_floor_file));
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
    let changed_floor = file_resync_floor(dir.path(), true);
    let r = sync(&config);
    peaks.add("file 1 % changed", &r);
    let changed_file = line("file: 1 % changed", &r, Some(changed_floor));
    std::fs::remove_dir_all(dir.path().join("state")).unwrap();
    let r = sync(&config);
    peaks.add("file re-bind", &r);
    line("file: re-bind, empty mirror", &r, Some(idle_floor_file));
    println!("{:<26} {:>8.1} MB", "file: mirror on disk", mirror_mb(dir.path()));
    drop(dir);

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
    if args.iter().any(|a| a == "--serve") {
        // To profile a SCIM run by hand: the server and the synced directory stay up until stdin closes.
        println!("serving: orgsync --config {} sync (stdin closes to stop)", config.display());
        std::io::copy(&mut std::io::stdin(), &mut std::io::sink()).unwrap();
        return;
    }
    peaks.add("scim initial", &r);
    let floor = scim_floor(&doc, &initial_requests);
    let initial_scim = line("scim: initial sync", &r, Some(floor));
    println!("{:<26} {:?}", "scim: initial requests", initial_requests);
    let r = sync(&config);
    let idle_requests = server.requests();
    let r = Ran::best(r, sync_best(&config, reps - 1));
    server.requests();
    peaks.add("scim idle", &r);
    let (users_in, groups_in) = {
        let s = server.store.lock().unwrap();
        (s.users.iter().flatten().count(), s.groups.iter().flatten().count())
    };
    let idle_floor_scim = best(reps, || idle_floor(&server, &idle_requests, users_in, groups_in));
    server.requests();
    let idle_scim = line("scim: idle resync", &r, Some(idle_floor_scim));
    println!("{:<26} {:?}", "scim: idle requests", idle_requests);
    std::fs::write(dir.path().join("org.json"), serde_json::to_vec_pretty(&changed).unwrap()).unwrap();
    let r = sync(&config);
    peaks.add("scim 1 % changed", &r);
    let changed_requests = server.requests();
    let changed_run = r;
    println!("{:<26} {:?}", "scim: 1 % requests", changed_requests);
    std::fs::remove_dir_all(dir.path().join("state")).unwrap();
    let r = sync(&config);
    peaks.add("scim re-bind", &r);
    line("scim: re-bind, empty mirror", &r, Some(idle_floor_scim));
    println!("{:<26} {:?}", "scim: re-bind requests", server.requests());
    let (cycled, groups_touched) = change_cycle(&changed);
    std::fs::write(dir.path().join("org.json"), serde_json::to_vec_pretty(&cycled).unwrap()).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}[policy.users]\ntarget_only = \"delete\"\n")).unwrap();
    let r = sync(&config);
    peaks.add("scim change cycle", &r);
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
    // The 1 % changed run's floor: the idle reads and as many PATCH requests
    // as it wrote, made last (they change the server's names).
    let written: usize = changed_requests.iter().filter(|(m, _)| **m != "GET").map(|(_, n)| n).sum();
    let ids: Vec<String> = {
        let s = server.store.lock().unwrap();
        let all: Vec<&str> = s.users.iter().flatten().filter_map(|u| u["id"].as_str()).collect();
        (0..written).map(|k| all[(k * 100) % all.len()].to_owned()).collect()
    };
    let changed_floor = idle_floor_scim + patch_floor(&server, &ids);
    let changed_scim = line("scim: 1 % changed", &changed_run, Some(changed_floor));
    println!("{:<26} {}", "peak RSS per run (MB)", peaks.0.iter().map(|(w, mb)| format!("{w} {mb:.0}")).collect::<Vec<_>>().join(", "));
    println!(
        "e2e: users {n}, initial_file {initial_file:.2}x (mirror {initial_file_mirror:.2}x), idle_file {idle_file:.2}x, \
         changed_file {changed_file:.2}x, initial_scim {initial_scim:.2}x, idle_scim {idle_scim:.2}x, changed_scim {changed_scim:.2}x, \
         mapping {mapping_ratio:.2}x, rss_mb {:.0}",
        peaks.max()
    );
}
