//! A real headless browser for the admin page: Debian's chromium, driven
//! through chromedriver's W3C WebDriver endpoints (a dozen JSON requests;
//! a client crate would bring a second HTTP stack into the test build).
//! JavaScript is off in every session: the page must work without it.
//! Started per test on a free loopback port, stopped by pid.

use crate::harness::free_port;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn binary(var: &str, default: &str) -> PathBuf {
    let p = std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        p.exists(),
        "{} not found and ${var} is not set: run scripts/test.sh, which installs chromium and chromium-driver",
        p.display()
    );
    p
}

/// Where the pages' screenshots are kept (test artefacts).
pub fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::blocking::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// chromedriver and a headless chromium session with JavaScript off.
    pub fn start() -> Browser {
        let port = free_port();
        let driver = Command::new(binary("CHROMEDRIVER", "/usr/bin/chromedriver"))
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(120)).build().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !http
            .get(format!("{base}/status"))
            .send()
            .ok()
            .and_then(|r| r.json::<Value>().ok())
            .is_some_and(|s| s["value"]["ready"] == true)
        {
            assert!(Instant::now() < deadline, "chromedriver did not become ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": binary("CHROMIUM", "/usr/bin/chromium"),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1024",
                     format!("--user-data-dir={}", profile.path().display()), "--lang=en-US"],
            "prefs": {"profile.managed_default_content_settings.javascript": 2, "intl.accept_languages": "en-US,en"},
        }}}});
        let mut b = Browser { driver, base, session: String::new(), http, _profile: profile };
        let v = b.call(reqwest::Method::POST, "/session", Some(caps));
        b.session = v["sessionId"].as_str().expect("a WebDriver session").to_owned();
        b
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url =
            if self.session.is_empty() { format!("{}{path}", self.base) } else { format!("{}/session/{}{path}", self.base, self.session) };
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().expect("chromedriver answers");
        let status = r.status();
        let v: Value = r.json().unwrap_or_default();
        assert!(status.is_success(), "WebDriver {path}: {status} {v}");
        v["value"].clone()
    }

    pub fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})));
    }

    pub fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None).as_str().unwrap_or_default().to_owned()
    }

    /// The page's HTML as the browser has it.
    pub fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None).as_str().unwrap_or_default().to_owned()
    }

    pub fn all(&self, css: &str) -> Vec<String> {
        let v = self.call(reqwest::Method::POST, "/elements", Some(json!({"using": "css selector", "value": css})));
        v.as_array().unwrap().iter().map(|e| e[ELEMENT].as_str().unwrap().to_owned()).collect()
    }

    pub fn find(&self, css: &str) -> String {
        self.all(css).into_iter().next().unwrap_or_else(|| panic!("no {css} on {}:\n{}", self.url(), self.source()))
    }

    pub fn text(&self, css: &str) -> String {
        let e = self.find(css);
        self.call(reqwest::Method::GET, &format!("/element/{e}/text"), None).as_str().unwrap_or_default().to_owned()
    }

    pub fn texts(&self, css: &str) -> Vec<String> {
        self.all(css)
            .into_iter()
            .map(|e| self.call(reqwest::Method::GET, &format!("/element/{e}/text"), None).as_str().unwrap_or_default().to_owned())
            .collect()
    }

    pub fn click(&self, css: &str) {
        let e = self.find(css);
        self.call(reqwest::Method::POST, &format!("/element/{e}/click"), Some(json!({})));
    }

    /// Click what loads another page (a link, a form's button), and wait
    /// until that page is there: the old document gone, the new one whole
    /// (its footer read). chromedriver may answer the click before that.
    pub fn click_to_load(&self, css: &str) {
        let old = self.find("html");
        self.click(css);
        let deadline = Instant::now() + Duration::from_secs(120);
        let url = |e: &str| format!("{}/session/{}/element/{e}/name", self.base, self.session);
        while self.http.get(url(&old)).send().is_ok_and(|r| r.status().is_success()) {
            assert!(Instant::now() < deadline, "clicking {css} loaded no page");
            std::thread::sleep(Duration::from_millis(50));
        }
        while self.all("footer").is_empty() {
            assert!(Instant::now() < deadline, "the page after {css} never finished loading");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.call(reqwest::Method::POST, &format!("/element/{e}/value"), Some(json!({"text": text})));
    }

    /// The window's size (a phone's: 390 × 844).
    pub fn resize(&self, width: u32, height: u32) {
        self.call(reqwest::Method::POST, "/window/rect", Some(json!({"width": width, "height": height})));
    }

    /// Keep a screenshot of the page as `name`.png.
    pub fn screenshot(&self, name: &str) {
        use base64::Engine as _;
        let png = self.call(reqwest::Method::GET, "/screenshot", None);
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(screenshots().join(format!("{name}.png")), bytes).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.http.delete(format!("{}/session/{}", self.base, self.session)).send();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
