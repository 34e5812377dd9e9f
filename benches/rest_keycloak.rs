//! Target `rest` with `preset = "keycloak"` on a real Keycloak (the test
//! harness's, tests/it/keycloak.rs): an initial sync of 2,000 users in 200
//! departments (a 3-level tree) and an idle resync through the release
//! binary, each next to a bare client making the same requests (the same
//! kinds and count, the same concurrency) against a fresh realm of the
//! same server in the same run.
//!
//!     cargo bench --bench rest_keycloak
//!
//! Needs Keycloak in .keycloak/ (scripts/test.sh fetches it) and Java 17.

#[allow(dead_code)]
#[path = "../tests/it/keycloak.rs"]
mod keycloak;
#[path = "../tests/it/slapd.rs"]
mod slapd;

use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const USERS: usize = 2_000;
const DEPTS: usize = 200;
const CONCURRENCY: usize = 4;

fn parent(i: usize) -> Option<usize> {
    (i > 0).then(|| (i - 1) / 14) // 1 + 14 + 185: three levels
}

fn org() -> Value {
    let departments: Vec<Value> = (0..DEPTS)
        .map(|i| json!({"id": format!("d{i}"), "parent_id": parent(i).map(|p| format!("d{p}")), "name": format!("Dept {i}")}))
        .collect();
    let users: Vec<Value> = (0..USERS)
        .map(|i| {
            json!({"id": format!("u{i}"), "username": format!("user{i}"), "name": format!("User {i}"),
                   "email": format!("user{i}@example.test"), "mobile": format!("+86 138{i:08}"), "employee_no": format!("E{i}"),
                   "department_ids": [format!("d{}", i % DEPTS)]})
        })
        .collect();
    json!({"departments": departments, "users": users})
}

fn orgsync(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_orgsync"))
        .arg("--config")
        .arg(dir.join("orgsync.toml"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Requests by method in run `id`'s request log.
fn kinds(dir: &std::path::Path, id: &str) -> BTreeMap<String, usize> {
    let log: Vec<Value> = serde_json::from_str(&orgsync(dir, &["runs", "requests", id, "--output", "json"])).unwrap();
    let mut m = BTreeMap::new();
    for r in log {
        *m.entry(r["method"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    m
}

struct Bare {
    http: reqwest::Client,
    base: String,
    realm: String,
    token: String,
    requests: usize,
}

impl Bare {
    async fn new(base: &str, realm: &str, secret: &str) -> Bare {
        let http = reqwest::Client::new();
        let body = format!("grant_type=client_credentials&client_id=orgsync&client_secret={secret}");
        let t: Value = http
            .post(format!("{base}/realms/{realm}/protocol/openid-connect/token"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Bare { http, base: base.to_owned(), realm: realm.to_owned(), token: t["access_token"].as_str().unwrap().to_owned(), requests: 1 }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/admin/realms/{}{path}", self.base, self.realm)
    }

    async fn send(&self, method: reqwest::Method, path: String, body: Option<Value>) -> (u16, Option<String>, Value) {
        let mut r = self.http.request(method, self.url(&path)).bearer_auth(&self.token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let loc = resp.headers().get("location").and_then(|l| l.to_str().ok()).map(|l| l.rsplit('/').next().unwrap().to_owned());
        let body = resp.bytes().await.unwrap();
        (status, loc, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// Every page of a `first`/`max` listing, and how many requests it took.
    async fn pages(&self, path: &str, stop_empty: bool) -> (Vec<Value>, usize) {
        let mut all = Vec::new();
        let mut n_requests = 0;
        for page in 0.. {
            let sep = if path.contains('?') { '&' } else { '?' };
            let (_, _, v) = self.send(reqwest::Method::GET, format!("{path}{sep}first={}&max=100", page * 100), None).await;
            n_requests += 1;
            let items = v.as_array().cloned().unwrap_or_default();
            let n = items.len();
            all.extend(items);
            if (stop_empty && n == 0) || (!stop_empty && n < 100) {
                break;
            }
        }
        (all, n_requests)
    }

    /// The idle run's reads: groups (hierarchy), every group's members, users.
    async fn read_all(&mut self) {
        let (groups, n) = self.pages("/groups?briefRepresentation=false&populateHierarchy=true&search=", true).await;
        self.requests += n;
        let mut ids = Vec::new();
        let mut stack = groups;
        while let Some(g) = stack.pop() {
            stack.extend(g["subGroups"].as_array().cloned().unwrap_or_default());
            ids.push(g["id"].as_str().unwrap().to_owned());
        }
        ids.sort();
        ids.dedup();
        let me = &*self;
        let n: usize = futures::stream::iter(ids)
            .map(|id| async move { me.pages(&format!("/groups/{id}/members?briefRepresentation=true"), false).await.1 })
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .sum();
        self.requests += n;
        let (_, n) = self.pages("/users?briefRepresentation=false", false).await;
        self.requests += n;
        // The realm's user profile, read before writing.
        self.send(reqwest::Method::GET, "/users/profile".into(), None).await;
        self.requests += 1;
    }

    /// The initial run's writes: groups level by level, then each user and its membership.
    async fn write_all(&mut self, doc: &Value) {
        let mut gid: Vec<Option<String>> = vec![None; DEPTS];
        let depth = |mut i: usize| {
            let mut d = 0;
            while let Some(p) = parent(i) {
                d += 1;
                i = p;
            }
            d
        };
        for level in 0..3 {
            let todo: Vec<usize> = (0..DEPTS).filter(|i| depth(*i) == level).collect();
            let me = &*self;
            let gid_ref = &gid;
            let made: Vec<(usize, String)> = futures::stream::iter(todo)
                .map(|i| async move {
                    let path = match parent(i) {
                        Some(p) => format!("/groups/{}/children", gid_ref[p].as_ref().unwrap()),
                        None => "/groups".to_owned(),
                    };
                    let body = json!({"name": format!("Dept {i}"), "attributes": {"orgsync_id": [format!("d{i}")]}});
                    let (s, loc, _) = me.send(reqwest::Method::POST, path, Some(body)).await;
                    assert_eq!(s, 201);
                    (i, loc.unwrap())
                })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
            self.requests += made.len();
            for (i, id) in made {
                gid[i] = Some(id);
            }
        }
        let me = &*self;
        let gid_ref = &gid;
        let n: usize = futures::stream::iter(doc["users"].as_array().unwrap().iter().enumerate())
            .map(|(i, u)| async move {
                let body = json!({"username": u["username"], "email": u["email"], "firstName": u["name"], "enabled": true,
                    "attributes": {"orgsync_id": [u["id"]], "mobile": [u["mobile"]], "employee_no": [u["employee_no"]]}});
                let (s, loc, _) = me.send(reqwest::Method::POST, "/users".into(), Some(body)).await;
                assert_eq!(s, 201);
                let g = gid_ref[i % DEPTS].as_ref().unwrap();
                let (s, _, _) = me.send(reqwest::Method::PUT, format!("/users/{}/groups/{g}", loc.unwrap()), None).await;
                assert_eq!(s, 204);
                2
            })
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .sum();
        self.requests += n;
    }
}

fn main() {
    let kc = keycloak::Keycloak::shared();
    let dir = tempfile::tempdir().unwrap();
    let doc = org();
    std::fs::write(dir.path().join("org.json"), serde_json::to_vec(&doc).unwrap()).unwrap();
    println!("Keycloak 25 (dev mode, in-memory H2) on loopback, {USERS} users in {DEPTS} departments, concurrency {CONCURRENCY}");

    let secret = kc.realm("bench-orgsync");
    std::fs::write(dir.path().join("secret"), &secret).unwrap();
    std::fs::write(
        dir.path().join("orgsync.toml"),
        format!(
            "state_dir = \"state\"\n[source]\nkind = \"file\"\npath = \"org.json\"\n[target]\nkind = \"rest\"\npreset = \"keycloak\"\n\
             base_url = \"{}\"\nconcurrency = {CONCURRENCY}\nrate_limit = 1000\n[target.params]\nrealm = \"bench-orgsync\"\n\
             [target.auth]\nclient_secret_file = \"secret\"\n",
            kc.base
        ),
    )
    .unwrap();
    let t = Instant::now();
    orgsync(dir.path(), &["sync"]);
    let initial = t.elapsed();
    let initial_kinds = kinds(dir.path(), "1");
    let t = Instant::now();
    orgsync(dir.path(), &["sync"]);
    let idle = t.elapsed();
    let idle_kinds = kinds(dir.path(), "2");

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let secret = kc.realm("bench-bare");
    let (bare_initial, bare_initial_n, bare_idle, bare_idle_n) = rt.block_on(async {
        let mut b = Bare::new(&kc.base, "bench-bare", &secret).await;
        let t = Instant::now();
        b.read_all().await;
        b.write_all(&doc).await;
        let initial = (t.elapsed(), b.requests);
        let mut b = Bare::new(&kc.base, "bench-bare", &secret).await;
        let t = Instant::now();
        b.read_all().await;
        (initial.0, initial.1, t.elapsed(), b.requests)
    });
    let n = |m: &BTreeMap<String, usize>| m.values().sum::<usize>();
    let line = |label: &str, ours: Duration, k: &BTreeMap<String, usize>, bare: Duration, bare_n: usize| {
        println!(
            "{label:<22} orgsync {:>6.1} s ({} requests: {k:?})   bare client {:>6.1} s ({bare_n} requests)   {:.2}x",
            ours.as_secs_f64(),
            n(k),
            bare.as_secs_f64(),
            ours.as_secs_f64() / bare.as_secs_f64()
        );
    };
    line("initial sync", initial, &initial_kinds, bare_initial, bare_initial_n);
    line("idle resync", idle, &idle_kinds, bare_idle, bare_idle_n);
    println!(
        "rest_keycloak: initial {:.2}x, idle {:.2}x (to a bare client making the same requests)",
        initial.as_secs_f64() / bare_initial.as_secs_f64(),
        idle.as_secs_f64() / bare_idle.as_secs_f64()
    );
}
