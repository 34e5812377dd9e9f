//! A real Keycloak (the server distribution from Maven Central,
//! `org.keycloak:keycloak-quarkus-dist`, fetched by scripts/test.sh into
//! `.keycloak/`), started once per test run in dev mode with an in-memory
//! database on free loopback ports, and stopped by pid when the test binary
//! exits (a watcher shell kills it). Each test gets its own realm with a
//! client-credentials service account, made through the admin API.

use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const ADMIN_PW: &str = "kc-admin-test-password";

pub struct Keycloak {
    pub base: String,
    http: Client,
    /// The shell that stops Keycloak once this process is gone.
    _watcher: std::process::Child,
}

/// The unpacked distribution: `$KEYCLOAK_HOME`, else `.keycloak/keycloak-*`.
fn home() -> PathBuf {
    if let Ok(h) = std::env::var("KEYCLOAK_HOME") {
        return PathBuf::from(h);
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".keycloak");
    std::fs::read_dir(&dir)
        .ok()
        .and_then(|mut d| d.find_map(|e| e.ok().map(|e| e.path()).filter(|p| p.join("bin/kc.sh").exists())))
        .unwrap_or_else(|| panic!("no Keycloak in {}: run scripts/test.sh, which fetches it", dir.display()))
}

static SHARED: OnceLock<Keycloak> = OnceLock::new();

impl Keycloak {
    /// The test run's Keycloak, started on first use.
    pub fn shared() -> &'static Keycloak {
        SHARED.get_or_init(Keycloak::start)
    }

    fn start() -> Keycloak {
        let home = home();
        let port = crate::slapd::free_port();
        let mgmt = crate::slapd::free_port();
        let log = std::env::temp_dir().join(format!("orgsync-keycloak-{port}.log"));
        // Killed when this test binary exits, whatever way it exits.
        let script = format!(
            "\"$KC\" start-dev --db=dev-mem --http-host=127.0.0.1 --http-port={port} --http-management-port={mgmt} \
             --hostname-strict=false >\"$LOG\" 2>&1 & kc=$!; \
             while kill -0 {parent} 2>/dev/null && kill -0 $kc 2>/dev/null; do sleep 1; done; \
             kill $kc 2>/dev/null; sleep 5; kill -9 $kc 2>/dev/null",
            parent = std::process::id()
        );
        let watcher = Command::new("sh")
            .args(["-c", &script])
            .env("KC", home.join("bin/kc.sh"))
            .env("LOG", &log)
            .env("KEYCLOAK_ADMIN", "admin")
            .env("KEYCLOAK_ADMIN_PASSWORD", ADMIN_PW)
            .env("JAVA_OPTS_APPEND", "-Xms64m -Xmx768m")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let kc = Keycloak {
            base: format!("http://127.0.0.1:{port}"),
            http: Client::builder().timeout(Duration::from_secs(60)).build().unwrap(),
            _watcher: watcher,
        };
        let deadline = Instant::now() + Duration::from_secs(240);
        while kc.http.get(format!("{}/realms/master", kc.base)).send().map(|r| r.status().as_u16()).ok() != Some(200) {
            assert!(Instant::now() < deadline, "Keycloak did not start:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
            std::thread::sleep(Duration::from_millis(500));
        }
        kc
    }

    fn admin_token(&self) -> String {
        let r: Value = self
            .http
            .post(format!("{}/realms/master/protocol/openid-connect/token", self.base))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("grant_type=password&client_id=admin-cli&username=admin&password={ADMIN_PW}"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        r["access_token"].as_str().unwrap().to_owned()
    }

    /// An admin API call; the JSON answer (null when none).
    pub fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}/admin/realms{path}", self.base);
        let mut req = self.http.request(method.parse().unwrap(), url).bearer_auth(self.admin_token());
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (s, v) = self.admin(method, path, body);
        assert!((200..300).contains(&s), "{method} {path}: {s} {v}");
        v
    }

    /// A new realm keeping unmanaged attributes, with a confidential client
    /// `orgsync` whose service account may manage users and query groups.
    /// Returns the client secret.
    pub fn realm(&self, realm: &str) -> String {
        self.realm_keeping(realm, true)
    }

    /// [`Keycloak::realm`]; with `unmanaged` false the realm keeps Keycloak's
    /// default: user attributes its profile does not declare are dropped.
    pub fn realm_keeping(&self, realm: &str, unmanaged: bool) -> String {
        self.ok("POST", "", Some(json!({"realm": realm, "enabled": true})));
        if unmanaged {
            let mut profile = self.ok("GET", &format!("/{realm}/users/profile"), None);
            profile["unmanagedAttributePolicy"] = json!("ENABLED");
            self.ok("PUT", &format!("/{realm}/users/profile"), Some(profile));
        }
        let secret = format!("secret-{realm}");
        self.ok(
            "POST",
            &format!("/{realm}/clients"),
            Some(json!({"clientId": "orgsync", "secret": secret, "publicClient": false, "serviceAccountsEnabled": true,
                        "standardFlowEnabled": false, "directAccessGrantsEnabled": false})),
        );
        let client = self.ok("GET", &format!("/{realm}/clients?clientId=orgsync"), None)[0]["id"].as_str().unwrap().to_owned();
        let sa = self.ok("GET", &format!("/{realm}/clients/{client}/service-account-user"), None)["id"].as_str().unwrap().to_owned();
        let rm = self.ok("GET", &format!("/{realm}/clients?clientId=realm-management"), None)[0]["id"].as_str().unwrap().to_owned();
        let roles: Vec<Value> = ["manage-users", "query-groups", "view-users", "query-users"]
            .iter()
            .map(|r| self.ok("GET", &format!("/{realm}/clients/{rm}/roles/{r}"), None))
            .collect();
        self.ok("POST", &format!("/{realm}/users/{sa}/role-mappings/clients/{rm}"), Some(Value::Array(roles)));
        secret
    }

    /// Every user of a realm (but the service account).
    pub fn users(&self, realm: &str) -> Vec<Value> {
        let all = self.ok("GET", &format!("/{realm}/users?first=0&max=100000&briefRepresentation=false"), None);
        all.as_array().unwrap().iter().filter(|u| !u["username"].as_str().unwrap().starts_with("service-account-")).cloned().collect()
    }

    /// Every group, flattened, with its parent id.
    pub fn groups(&self, realm: &str) -> Vec<Value> {
        let top =
            self.ok("GET", &format!("/{realm}/groups?briefRepresentation=false&populateHierarchy=true&search=&first=0&max=100000"), None);
        let mut out = Vec::new();
        let mut stack: Vec<Value> = top.as_array().unwrap().clone();
        while let Some(g) = stack.pop() {
            stack.extend(g["subGroups"].as_array().cloned().unwrap_or_default());
            out.push(g);
        }
        out
    }

    pub fn user_groups(&self, realm: &str, id: &str) -> Vec<String> {
        let g = self.ok("GET", &format!("/{realm}/users/{id}/groups"), None);
        g.as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap().to_owned()).collect()
    }
}
