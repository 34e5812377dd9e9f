//! Test harness: a private scim2-server per test on a free loopback port
//! (its access log counts our requests), a temp dir with the config and the
//! source file, and a runner for the built binary.
//!
//! scim2-server is found at `$SCIM2_SERVER` or `.venv-scim/bin/scim2-server`
//! (what `scripts/test.sh` installs). If it is missing the tests fail: they
//! never skip silently.

use serde_json::{Value, json};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "test-token-not-a-secret";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn scim2_server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SCIM2_SERVER") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-scim/bin/scim2-server");
    assert!(p.exists(), "scim2-server not found at {} and $SCIM2_SERVER is not set: run scripts/test.sh, which installs it", p.display());
    p
}

/// The Python of the venv the SCIM servers are installed in.
fn scim_python() -> PathBuf {
    if let Some(p) = std::env::var_os("SCIM_PYTHON") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-scim/bin/python");
    assert!(p.exists(), "no SCIM server venv at {} and $SCIM_PYTHON is not set: run scripts/test.sh, which installs it", p.display());
    p
}

/// A real SCIM server, started per test on a free loopback port, stopped
/// (by pid) when dropped.
pub struct Scim {
    server: Server,
    pub base: String,
    log: PathBuf,
    http: reqwest::blocking::Client,
}

/// A SCIM server's process, or one in this process.
enum Server {
    Child(Child),
    InProcess(crate::fast_scim::Server),
}

impl Scim {
    /// The in-memory SCIM server of tests/servers/fast_scim.rs, in this
    /// process: for tests about a source, not about a SCIM server.
    pub fn in_process() -> Scim {
        let server = crate::fast_scim::Server::logged();
        let base = server.base.clone();
        Scim { server: Server::InProcess(server), base, log: PathBuf::new(), http: reqwest::blocking::Client::new() }
    }

    /// scim2-server (Python, scim2-models).
    pub fn start(dir: &Path) -> Scim {
        let port = free_port();
        let log = dir.join(format!("scim-{port}.log"));
        let child = Command::new(scim2_server_bin())
            .args(["--hostname", "127.0.0.1", "--port", &port.to_string(), "--bearer-token", TOKEN])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start scim2-server");
        Self::ready(child, format!("http://127.0.0.1:{port}/v2"), log, "scim2-server")
    }

    /// django-scim2 in the minimal Django project of tests/servers/django_scim:
    /// users and groups share integer ids, members are users only, PATCH
    /// takes few attributes, filters are not supported.
    pub fn django(dir: &Path) -> Scim {
        Self::django_project(dir, "scimtest", "django-scim2")
    }

    /// django-scim2-server 1.1 (a different package) in tests/servers/django_scim/dss:
    /// Django's own users and groups; a deleted user stays listed, inactive;
    /// group members are users only, a group given as one is dropped (200
    /// all the same); a taken group name is a 500; `.test` addresses are refused.
    pub fn django_server(dir: &Path) -> Scim {
        Self::django_project(dir, "dss", "django-scim2-server")
    }

    fn django_project(dir: &Path, project: &str, what: &str) -> Scim {
        let port = free_port();
        let data = dir.join(format!("django-{port}"));
        std::fs::create_dir_all(&data).unwrap();
        let log = dir.join(format!("scim-{port}.log"));
        let serve = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/django_scim/serve.py");
        let child = Command::new(scim_python())
            .arg(serve)
            .args([&port.to_string(), data.to_str().unwrap(), TOKEN, project])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"));
        Self::ready(child, format!("http://127.0.0.1:{port}/scim/v2"), log, what)
    }

    /// SCIMMY (npm scimmy + scimmy-routers on express 4) over the in-memory
    /// store of tests/servers/scimmy.
    pub fn scimmy(dir: &Path) -> Scim {
        Self::scimmy_with(dir, &[])
    }

    /// [`Scim::scimmy`] with the store's options (`soft-delete`, `unique-groups`).
    pub fn scimmy_with(dir: &Path, options: &[&str]) -> Scim {
        let port = free_port();
        let log = dir.join(format!("scim-{port}.log"));
        let server = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/scimmy/server.mjs");
        assert!(
            server.with_file_name("node_modules").join("scimmy-routers").exists(),
            "SCIMMY is not installed in tests/servers/scimmy: run scripts/test.sh, which installs it"
        );
        let child = Command::new("node")
            .arg(server)
            .args([&port.to_string(), TOKEN])
            .args(options)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start SCIMMY (node)");
        Self::ready(child, format!("http://127.0.0.1:{port}/scim/v2"), log, "SCIMMY")
    }

    fn ready(child: Child, base: String, log: PathBuf, what: &str) -> Scim {
        let http = reqwest::blocking::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = http.get(format!("{base}/ServiceProviderConfig")).bearer_auth(TOKEN).send().is_ok_and(|r| r.status().is_success());
            if ok {
                break;
            }
            assert!(Instant::now() < deadline, "{what} did not start; log:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
            std::thread::sleep(Duration::from_millis(100));
        }
        Scim { server: Server::Child(child), base, log, http }
    }

    /// Unfiltered reads of every user so far (the in-process server counts them).
    pub fn user_lists(&self) -> Option<usize> {
        match &self.server {
            Server::InProcess(s) => Some(s.user_lists()),
            _ => None,
        }
    }

    /// Requests seen by the server, as (method, path, status) lines.
    pub fn requests(&self) -> Vec<(String, String, u16)> {
        if let Server::InProcess(s) = &self.server {
            return s.log();
        }
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let q = l.split('"').nth(1)?;
                let mut parts = q.split(' ');
                let (m, p) = (parts.next()?, parts.next()?);
                let status = l.split('"').nth(2)?.split_whitespace().next()?.parse().ok()?;
                Some((m.to_owned(), p.to_owned(), status))
            })
            .collect()
    }

    /// Requests that change something (not GET).
    pub fn writes(&self) -> Vec<(String, String, u16)> {
        self.requests().into_iter().filter(|(m, _, _)| m != "GET").collect()
    }

    /// Every resource of an endpoint (pages of 1000, the server's cap).
    pub fn list(&self, what: &str) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let v: Value = self
                .http
                .get(format!("{}/{what}?startIndex={}&count=1000", self.base, out.len() + 1))
                .bearer_auth(TOKEN)
                .send()
                .unwrap()
                .json()
                .unwrap();
            let page = v["Resources"].as_array().cloned().unwrap_or_default();
            let total = v["totalResults"].as_u64().unwrap_or(0) as usize;
            let empty = page.is_empty();
            out.extend(page);
            if empty || out.len() >= total {
                return out;
            }
        }
    }

    pub fn users(&self) -> Vec<Value> {
        self.list("Users")
    }

    pub fn groups(&self) -> Vec<Value> {
        self.list("Groups")
    }

    pub fn user_by_name(&self, name: &str) -> Option<Value> {
        self.users().into_iter().find(|u| u["userName"] == name)
    }

    pub fn post(&self, what: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}/{what}", self.base))
            .bearer_auth(TOKEN)
            .header("Content-Type", "application/scim+json")
            .body(body.to_string())
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        r.json().unwrap()
    }
}

impl Drop for Scim {
    fn drop(&mut self) {
        if let Server::Child(child) = &mut self.server {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A temp dir with `orgsync.toml`, `org.json` and a state dir.
pub struct Env {
    pub dir: tempfile::TempDir,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Env {
    pub fn new() -> Env {
        Env { dir: tempfile::tempdir().unwrap() }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// Write a config for the SCIM target with extra TOML appended.
    pub fn scim_config(&self, scim: &Scim, extra: &str) {
        self.scim_config_with_source(scim, "kind = \"file\"\npath = \"org.json\"\n", extra);
    }

    /// The same with `source` as the `[source]` table's keys.
    pub fn scim_config_with_source(&self, scim: &Scim, source: &str, extra: &str) {
        std::fs::write(self.path("token"), format!("{TOKEN}\n")).unwrap();
        let text = format!(
            "state_dir = \"state\"\n[source]\n{source}\
             [target]\nkind = \"scim\"\nbase_url = \"{}\"\ntoken_file = \"token\"\n{extra}\n",
            scim.base
        );
        std::fs::write(self.path("orgsync.toml"), text).unwrap();
    }

    pub fn write_org(&self, org: &Value) {
        std::fs::write(self.path("org.json"), serde_json::to_vec_pretty(org).unwrap()).unwrap();
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_orgsync"));
        c.arg("--config").arg(self.path("orgsync.toml")).args(args).env("RUST_LOG", "warn");
        c
    }

    pub fn orgsync(&self, args: &[&str]) -> Run {
        self.command(args).output().unwrap().into()
    }

    /// `orgsync sync` plus extra args; returns the run.
    pub fn sync(&self, args: &[&str]) -> Run {
        let mut a = vec!["sync"];
        a.extend_from_slice(args);
        self.orgsync(&a)
    }

    pub fn status_json(&self) -> Value {
        let r = self.orgsync(&["status", "--output", "json"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        serde_json::from_str(&r.stdout).unwrap()
    }
}

/// A generated org: `depts` departments in a 3-level tree, `users` users.
pub fn org(depts: usize, users: usize) -> Value {
    let departments: Vec<Value> = (0..depts)
        .map(|i| {
            let parent = if i == 0 { Value::Null } else { json!(format!("d{}", (i - 1) / 3)) };
            json!({"id": format!("d{i}"), "parent_id": parent, "name": format!("Dept {i}")})
        })
        .collect();
    let users: Vec<Value> = (0..users)
        .map(|i| {
            json!({
                "id": format!("u{i}"),
                "username": format!("user{i}"),
                "name": format!("User {i}"),
                "email": format!("user{i}@example.test"),
                "department_ids": if depts > 0 { json!([format!("d{}", i % depts)]) } else { json!([]) },
            })
        })
        .collect();
    json!({"departments": departments, "users": users})
}

/// What an unreadable-records run must show: exit 3, `invalid` items
/// naming both records, and no account disabled or deleted.
pub fn assert_unreadable_records_change_nothing(env: &Env, scim: &Scim, run: &Run, active_before: usize) {
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    let shown: Value = serde_json::from_str(&env.orgsync(&["runs", "show", "2", "--output", "json"]).stdout).unwrap();
    let items = shown["items"].as_array().unwrap();
    let invalid: Vec<&str> = items.iter().filter(|i| i["outcome"] == "invalid").filter_map(|i| i["error"].as_str()).collect();
    assert!(invalid.iter().any(|m| m.contains("record without")), "no item for the record without an id: {invalid:?}");
    assert!(invalid.iter().any(|m| m.contains("not text")), "no item for the wrong-typed field: {invalid:?}");
    assert!(!items.iter().any(|i| (i["op"] == "disable" || i["op"] == "delete") && i["outcome"] == "ok"), "{items:#?}");
    let active = scim.users().iter().filter(|u| u["active"] == true).count();
    assert_eq!(active, active_before, "an account was disabled");
    assert!(!scim.writes().iter().any(|(m, _, _)| m == "DELETE"), "a delete was sent");
}

/// A sync of `source` (the `[source]` table's keys) into a file target with
/// `[scope] include_departments = [include]`, in each SaaS fake's shape:
/// `include` is Dept 1.0, below the top, with 2 children. Checks that the
/// run succeeded, that the target holds Dept 1.0's subtree with Dept 1.0 as
/// a root, and `users` users each in a department; what was read is the
/// caller's to check.
pub fn sync_scoped_to_dept_1_0(env: &Env, source: &str, include: &str, users: usize) {
    sync_scoped_to(env, source, include, "Dept 1.0", &["Dept 1.0.0", "Dept 1.0.1"], users);
}

/// [`sync_scoped_to_dept_1_0`] for any department below the top: `root`
/// (the included one, by name) and `children` (its subtree's names).
pub fn sync_scoped_to(env: &Env, source: &str, include: &str, root: &str, children: &[&str], users: usize) {
    std::fs::write(
        env.path("orgsync.toml"),
        format!(
            "state_dir = \"state\"\n[source]\n{source}[target]\nkind = \"file\"\npath = \"out.json\"\n\
             [scope]\ninclude_departments = [\"{include}\"]\n"
        ),
    )
    .unwrap();
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let doc: Value = serde_json::from_slice(&std::fs::read(env.path("out.json")).unwrap()).unwrap();
    let departments = doc["departments"].as_array().unwrap();
    let names: std::collections::BTreeSet<&str> = departments.iter().map(|d| d["name"].as_str().unwrap()).collect();
    let want: std::collections::BTreeSet<&str> = children.iter().copied().chain([root]).collect();
    assert_eq!(names, want, "{root} and its subtree");
    for d in departments {
        assert_eq!(d["parent"].is_null(), d["name"] == root, "{root} is the one root: {d}");
    }
    let kept = doc["users"].as_array().unwrap();
    assert_eq!(kept.len(), users, "the users the scope keeps");
    assert!(kept.iter().all(|u| !u["departments"].as_array().unwrap().is_empty()), "a user without a department");
}

/// How many of `users` have a department (listed under `key`, ids as
/// strings or numbers) in the subtree `ids`.
pub fn users_in(users: &[Value], key: &str, ids: &[String]) -> usize {
    users.iter().filter(|u| u[key].as_array().unwrap().iter().any(|d| ids.contains(&d.to_string().trim_matches('"').to_owned()))).count()
}

/// Sales/Team and Support/Team: one name, two departments, a user in each
/// (`seller` in Sales' Team, `helper` in Support's).
pub fn same_named_teams() -> Value {
    json!({
        "departments": [
            {"id": "d0", "name": "HQ"},
            {"id": "sales", "parent_id": "d0", "name": "Sales"},
            {"id": "support", "parent_id": "d0", "name": "Support"},
            {"id": "sales-team", "parent_id": "sales", "name": "Team"},
            {"id": "support-team", "parent_id": "support", "name": "Team"},
        ],
        "users": [
            {"id": "u0", "username": "seller", "name": "Seller", "email": "seller@example.test", "department_ids": ["sales-team"]},
            {"id": "u1", "username": "helper", "name": "Helper", "email": "helper@example.test", "department_ids": ["support-team"]},
        ]
    })
}
