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
//! `e2e: initial_file X.XXx, initial_scim X.XXx, idle_scim X.XXx, rss_mb N`.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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

// ---- the fast SCIM server ----

#[derive(Default)]
struct Store {
    users: Vec<Option<Value>>,
    groups: Vec<Option<Value>>,
    by_username: HashMap<String, usize>,
    requests: HashMap<&'static str, usize>,
}

type S = Arc<Mutex<Store>>;

fn count(s: &mut Store, what: &'static str) {
    *s.requests.entry(what).or_default() += 1;
}

fn err(status: StatusCode, detail: &str) -> Response {
    (
        status,
        axum::Json(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": status.as_u16().to_string(), "detail": detail}),
        ),
    )
        .into_response()
}

/// `attr eq "value"` filters (what orgsync sends).
fn matches(r: &Value, filter: &str) -> bool {
    let Some((attr, value)) = filter.split_once(" eq ") else { return false };
    let value: String = serde_json::from_str(value).unwrap_or_default();
    let eq = |v: &Value| v.as_str().is_some_and(|s| s.eq_ignore_ascii_case(&value));
    match attr.split_once('.') {
        Some((multi, sub)) if !attr.starts_with("urn:") => r[multi].as_array().is_some_and(|a| a.iter().any(|i| eq(&i[sub]))),
        _ => match attr.strip_prefix(&format!("{ENTERPRISE}:")) {
            Some(ext) => eq(&r[ENTERPRISE][ext]),
            None => eq(&r[attr]),
        },
    }
}

fn list(items: &[Option<Value>], q: &HashMap<String, String>) -> Response {
    let start: usize = q.get("startIndex").and_then(|s| s.parse().ok()).unwrap_or(1).max(1);
    let count: usize = q.get("count").and_then(|s| s.parse().ok()).unwrap_or(100).min(1000);
    let all: Vec<&Value> = items.iter().flatten().filter(|r| q.get("filter").is_none_or(|f| matches(r, f))).collect();
    let page: Vec<&Value> = all.iter().skip(start - 1).take(count).copied().collect();
    axum::Json(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": all.len(),
        "startIndex": start, "itemsPerPage": page.len(), "Resources": page}))
    .into_response()
}

fn set_path(r: &mut Value, path: &str, v: Option<Value>) {
    let (obj, key) = match path.strip_prefix(&format!("{ENTERPRISE}:")) {
        Some(ext) => {
            if !r[ENTERPRISE].is_object() {
                r[ENTERPRISE] = json!({});
            }
            (&mut r[ENTERPRISE], ext.to_owned())
        }
        None => match path.split_once('.') {
            Some((a, b)) => {
                if !r[a].is_object() {
                    r[a] = json!({});
                }
                (&mut r[a], b.to_owned())
            }
            None => (r, path.to_owned()),
        },
    };
    match v {
        Some(v) => obj[&key] = v,
        None => {
            obj.as_object_mut().map(|o| o.remove(&key));
        }
    }
}

fn patch(r: &mut Value, ops: &Value) {
    for op in ops["Operations"].as_array().into_iter().flatten() {
        let path = op["path"].as_str().unwrap_or_default();
        let kind = op["op"].as_str().unwrap_or_default().to_ascii_lowercase();
        if path == "members" || path.starts_with("members[") {
            let members = r["members"].as_array().cloned().unwrap_or_default();
            let mut members: Vec<Value> = members;
            match kind.as_str() {
                "add" => members.extend(op["value"].as_array().cloned().unwrap_or_default()),
                _ => {
                    let gone: Vec<String> = match path.strip_prefix("members[value eq ") {
                        Some(rest) => vec![serde_json::from_str(rest.trim_end_matches(']')).unwrap_or_default()],
                        None => {
                            op["value"].as_array().into_iter().flatten().filter_map(|m| m["value"].as_str().map(str::to_owned)).collect()
                        }
                    };
                    members.retain(|m| !gone.iter().any(|g| m["value"] == g.as_str()));
                }
            }
            r["members"] = Value::Array(members);
        } else if kind == "remove" {
            set_path(r, path, None);
        } else {
            set_path(r, path, Some(op["value"].clone()));
        }
    }
}

async fn users_get(State(s): State<S>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut s = s.lock().unwrap();
    count(&mut s, "GET");
    list(&s.users, &q)
}

async fn groups_get(State(s): State<S>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut s = s.lock().unwrap();
    count(&mut s, "GET");
    list(&s.groups, &q)
}

async fn users_post(State(s): State<S>, body: axum::body::Bytes) -> Response {
    let mut s = s.lock().unwrap();
    count(&mut s, "POST");
    let mut v: Value = serde_json::from_slice(&body).unwrap_or_default();
    let name = v["userName"].as_str().unwrap_or_default().to_ascii_lowercase();
    if s.by_username.contains_key(&name) {
        return err(StatusCode::CONFLICT, "userName is taken");
    }
    let i = s.users.len();
    v["id"] = json!(format!("U{i}"));
    s.by_username.insert(name, i);
    s.users.push(Some(v.clone()));
    (StatusCode::CREATED, axum::Json(v)).into_response()
}

async fn groups_post(State(s): State<S>, body: axum::body::Bytes) -> Response {
    let mut s = s.lock().unwrap();
    count(&mut s, "POST");
    let mut v: Value = serde_json::from_slice(&body).unwrap_or_default();
    let i = s.groups.len();
    v["id"] = json!(format!("G{i}"));
    s.groups.push(Some(v.clone()));
    (StatusCode::CREATED, axum::Json(v)).into_response()
}

fn index(id: &str) -> Option<usize> {
    id.get(1..)?.parse().ok()
}

async fn user_one(State(s): State<S>, method: axum::http::Method, Path(id): Path<String>, body: axum::body::Bytes) -> Response {
    let mut s = s.lock().unwrap();
    count(&mut s, if method == axum::http::Method::PATCH { "PATCH" } else { "DELETE" });
    let Some(i) = index(&id).filter(|i| s.users.get(*i).is_some_and(Option::is_some)) else { return err(StatusCode::NOT_FOUND, "no user") };
    if method == axum::http::Method::DELETE {
        s.users[i] = None;
        return StatusCode::NO_CONTENT.into_response();
    }
    let ops: Value = serde_json::from_slice(&body).unwrap_or_default();
    let u = s.users[i].as_mut().unwrap();
    patch(u, &ops);
    axum::Json(u.clone()).into_response()
}

async fn group_one(State(s): State<S>, method: axum::http::Method, Path(id): Path<String>, body: axum::body::Bytes) -> Response {
    let mut s = s.lock().unwrap();
    count(&mut s, if method == axum::http::Method::PATCH { "PATCH" } else { "DELETE" });
    let Some(i) = index(&id).filter(|i| s.groups.get(*i).is_some_and(Option::is_some)) else {
        return err(StatusCode::NOT_FOUND, "no group");
    };
    if method == axum::http::Method::DELETE {
        s.groups[i] = None;
        return StatusCode::NO_CONTENT.into_response();
    }
    let ops: Value = serde_json::from_slice(&body).unwrap_or_default();
    patch(s.groups[i].as_mut().unwrap(), &ops);
    StatusCode::NO_CONTENT.into_response()
}

async fn spc() -> Response {
    axum::Json(json!({"patch": {"supported": true}, "filter": {"supported": true, "maxResults": 1000}, "bulk": {"supported": false}}))
        .into_response()
}

async fn resource_types() -> Response {
    axum::Json(json!({"Resources": [{"id": "User", "name": "User", "endpoint": "/Users", "schemaExtensions": [{"schema": ENTERPRISE, "required": false}]},
        {"id": "Group", "name": "Group", "endpoint": "/Groups"}]}))
    .into_response()
}

struct Server {
    base: String,
    store: S,
    _rt: tokio::runtime::Runtime,
}

impl Server {
    fn start() -> Server {
        let store: S = Arc::default();
        let app = Router::new()
            .route("/v2/Users", get(users_get).post(users_post))
            .route("/v2/Users/{id}", axum::routing::patch(user_one).delete(user_one))
            .route("/v2/Groups", get(groups_get).post(groups_post))
            .route("/v2/Groups/{id}", axum::routing::patch(group_one).delete(group_one))
            .route("/v2/ServiceProviderConfig", get(spc))
            .route("/v2/ResourceTypes", get(resource_types))
            .with_state(store.clone());
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let base = format!("http://{}/v2", listener.local_addr().unwrap());
        rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
        Server { base, store, _rt: rt }
    }

    fn requests(&self) -> HashMap<&'static str, usize> {
        std::mem::take(&mut self.store.lock().unwrap().requests)
    }
}

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
    println!("{:<26} {:>8.1} MB", "scim: mirror on disk", mirror_mb(dir.path()));
    println!("e2e: initial_file {initial_file:.2}x, initial_scim {initial_scim:.2}x, idle_scim {idle_scim:.2}x, rss_mb {rss_max:.0}");
}
