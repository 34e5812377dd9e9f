//! Run notifications through the binary, to a local receiver that checks
//! each vendor's request shape and signature (Feishu's and DingTalk's
//! documented algorithms, computed here independently) and answers as the
//! vendor would, or with 500, or not at all.

use crate::fake::{Common, Fake};
use crate::harness::Env;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FEISHU_SECRET: &str = "feishu-signing-secret-never-logged";
const DING_SECRET: &str = "SECdingtalk-signing-secret-never-logged";
const WECOM_KEY: &str = "wecom-robot-key-never-logged";

#[derive(Default)]
pub(crate) struct World {
    /// (path, what the message said), one per accepted request.
    got: Vec<(String, String)>,
    /// Requests whose shape or signature was wrong.
    bad: Vec<String>,
    /// Answer everything with 500, or not for this long.
    fail: bool,
    hang: Option<Duration>,
    common: Common,
}

impl crate::fake::World for World {
    fn common(&self) -> &Common {
        &self.common
    }

    fn common_mut(&mut self) -> &mut Common {
        &mut self.common
    }
}

type Shared = Arc<Mutex<World>>;

fn hmac(key: &[u8], msg: &[u8]) -> String {
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    m.update(msg);
    base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes())
}

async fn receive(State(w): State<Shared>, uri: Uri, Query(q): Query<HashMap<String, String>>, Json(body): Json<Value>) -> Response {
    let (fail, hang) = {
        let w = w.lock().unwrap();
        (w.fail, w.hang)
    };
    if let Some(d) = hang {
        tokio::time::sleep(d).await;
    }
    if fail {
        return (StatusCode::INTERNAL_SERVER_ERROR, "<html>500</html>").into_response();
    }
    let mut w = w.lock().unwrap();
    let path = uri.path().to_owned();
    let (text, ok) = match path.as_str() {
        "/feishu" => {
            let ts = body["timestamp"].as_str().unwrap_or_default();
            let want = hmac(format!("{ts}\n{FEISHU_SECRET}").as_bytes(), b"");
            let fresh = ts.parse::<i64>().is_ok_and(|t| (chrono::Utc::now().timestamp() - t).abs() < 3600);
            let ok = body["msg_type"] == "text" && body["sign"] == want.as_str() && fresh;
            if !ok {
                w.bad.push(format!("feishu: {body}"));
                return Json(json!({"code": 19021, "msg": "sign match fail or timestamp is not within one hour from current time"}))
                    .into_response();
            }
            (body["content"]["text"].as_str().unwrap_or_default().to_owned(), Json(json!({"code": 0, "msg": "success", "data": {}})))
        }
        "/dingtalk" => {
            let ts = q.get("timestamp").cloned().unwrap_or_default();
            let want = hmac(DING_SECRET.as_bytes(), format!("{ts}\n{DING_SECRET}").as_bytes());
            let ok = q.get("access_token").map(String::as_str) == Some("T") && q.get("sign") == Some(&want) && body["msgtype"] == "text";
            if !ok {
                w.bad.push(format!("dingtalk: {q:?} {body}"));
                return Json(json!({"errcode": 310000, "errmsg": "sign not match"})).into_response();
            }
            (body["text"]["content"].as_str().unwrap_or_default().to_owned(), Json(json!({"errcode": 0, "errmsg": "ok"})))
        }
        "/cgi-bin/webhook/send" => {
            if q.get("key").map(String::as_str) != Some(WECOM_KEY) || body["msgtype"] != "text" {
                w.bad.push(format!("wecom: {q:?} {body}"));
                return Json(json!({"errcode": 93000, "errmsg": "invalid webhook url"})).into_response();
            }
            (body["text"]["content"].as_str().unwrap_or_default().to_owned(), Json(json!({"errcode": 0, "errmsg": "ok"})))
        }
        _ => (body.to_string(), Json(json!({"ok": true}))),
    };
    w.got.push((path, text));
    ok.into_response()
}

pub(crate) fn receiver() -> Fake<World> {
    Fake::serve(World::default(), |w| Router::new().fallback(receive).with_state(w))
}

/// A file source and target, and the four channels to `r`.
fn config(env: &Env, r: &Fake<World>, extra: &str) {
    std::fs::write(env.path("wecom-url"), format!("{}/cgi-bin/webhook/send?key={WECOM_KEY}\n", r.base)).unwrap();
    std::fs::write(env.path("ding-secret"), format!("{DING_SECRET}\n")).unwrap();
    let text = format!(
        "state_dir = \"state\"\n[source]\nkind = \"file\"\npath = \"org.json\"\n[target]\nkind = \"file\"\npath = \"target.json\"\n\
         [daemon]\npublic_url = \"https://orgsync.example.test\"\n\
         [[notify]]\nkind = \"webhook\"\nurl = \"{0}/hook\"\non = [\"failed\", \"partial\", \"recovered\", \"held_back\"]\n{extra}\n\
         [[notify]]\nkind = \"feishu\"\nurl = \"{0}/feishu\"\nsecret = \"{FEISHU_SECRET}\"\n{extra}\n\
         [[notify]]\nkind = \"dingtalk\"\nurl = \"{0}/dingtalk?access_token=T\"\nsecret_file = \"ding-secret\"\nlanguage = \"zh\"\n{extra}\n\
         [[notify]]\nkind = \"wecom\"\nurl_file = \"wecom-url\"\n{extra}\n",
        r.base
    );
    std::fs::write(env.path("orgsync.toml"), text).unwrap();
}

pub(crate) fn got(r: &Fake<World>) -> Vec<(String, String)> {
    std::mem::take(&mut r.world.lock().unwrap().got)
}

#[test]
fn a_failure_is_announced_once_a_repeat_stays_silent_and_a_recovery_is_announced_at_once() {
    let env = Env::new();
    let r = receiver();
    config(&env, &r, "");
    std::fs::write(env.path("org.json"), "{ not json").unwrap();
    let run = env.sync(&[]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let first = got(&r);
    let paths: Vec<&str> = first.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths.len(), 4, "every channel: {first:?}");
    let hook: Value = serde_json::from_str(&first.iter().find(|(p, _)| p == "/hook").unwrap().1).unwrap();
    assert_eq!((hook["event"].as_str(), hook["status"].as_str(), hook["run_id"].as_i64()), (Some("failed"), Some("failed"), Some(1)));
    assert_eq!(hook["status_url"], "https://orgsync.example.test/status");
    assert!(hook["next"][0].as_str().unwrap().contains("orgsync runs show 1"), "{hook}");
    let feishu = &first.iter().find(|(p, _)| p == "/feishu").unwrap().1;
    assert!(feishu.contains("run 1 from file FAILED") && feishu.contains("See: orgsync runs show 1"), "{feishu}");
    let ding = &first.iter().find(|(p, _)| p == "/dingtalk").unwrap().1;
    assert!(ding.contains("同步 #1 失败"), "Chinese for this channel: {ding}");
    assert_eq!(r.world.lock().unwrap().bad, Vec::<String>::new(), "shapes and signatures");

    // Failed again, within min_interval and in a new process: silent.
    assert_eq!(env.sync(&[]).code, 1);
    assert_eq!(got(&r), vec![]);
    // Fixed: the recovery, at once (on the channels that announce it: all by default).
    env.write_org(&crate::harness::org(2, 3));
    assert_eq!(env.sync(&[]).code, 0);
    let recovered = got(&r);
    assert_eq!(recovered.len(), 4, "{recovered:?}");
    assert!(recovered.iter().any(|(p, t)| p == "/cgi-bin/webhook/send" && t.contains("recovered")), "{recovered:?}");
    // A success after the recovery says nothing.
    assert_eq!(env.sync(&[]).code, 0);
    assert_eq!(got(&r), vec![]);

    // No secret anywhere a person or a log sees.
    let mirror = std::fs::read(env.path("state/mirror.db")).unwrap();
    let outputs = [env.sync(&[]).stderr, env.orgsync(&["status", "--output", "json"]).stdout];
    for secret in [FEISHU_SECRET, DING_SECRET, WECOM_KEY] {
        assert!(!mirror.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} in the mirror");
        for o in &outputs {
            assert!(!o.contains(secret), "{secret} in {o}");
        }
    }
}

#[test]
fn a_receiver_that_fails_or_hangs_never_delays_the_run_beyond_the_timeout() {
    let env = Env::new();
    let r = receiver();
    config(&env, &r, "timeout = \"1s\"");
    std::fs::write(env.path("org.json"), "{ not json").unwrap();
    // Hung for longer than any loaded machine could take over the rest.
    r.world.lock().unwrap().hang = Some(Duration::from_secs(300));
    let t = Instant::now();
    let run = env.sync(&[]);
    assert_eq!(run.code, 1, "the run's own status: {}", run.stderr);
    assert!(t.elapsed() < Duration::from_secs(300), "the run waited out a hung receiver: {:?}", t.elapsed());
    assert!(run.stderr.contains("Could not notify"), "{}", run.stderr);
    // Not announced, so the next failure is tried again; a 500 is a failure too.
    {
        let mut w = r.world.lock().unwrap();
        w.hang = None;
        w.fail = true;
    }
    let run = env.sync(&[]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("HTTP 500"), "{}", run.stderr);
    r.world.lock().unwrap().fail = false;
    assert_eq!(env.sync(&[]).code, 1);
    assert_eq!(got(&r).len(), 4, "announced once the receiver answers");
}

/// A receiver that answers 500 slowly: the timeout cuts the retries short,
/// and what is said is the 500 it answered, not "no answer".
#[test]
fn retries_cut_short_by_the_timeout_say_what_the_receiver_answered() {
    let env = Env::new();
    let r = receiver();
    config(&env, &r, "timeout = \"1s\"");
    std::fs::write(env.path("org.json"), "{ not json").unwrap();
    {
        // Three attempts take at least 3 × 0.3 s plus 0.2 s and 0.4 s between them.
        let mut w = r.world.lock().unwrap();
        w.hang = Some(Duration::from_millis(300));
        w.fail = true;
    }
    let run = env.sync(&[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let said: Vec<&str> = run.stderr.lines().filter(|l| l.contains("Could not notify")).collect();
    assert_eq!(said.len(), 4, "{}", run.stderr);
    for l in said {
        assert!(l.contains("HTTP 500") && l.contains("retries cut short by the timeout of 1s"), "{l}");
    }
}

#[test]
fn notify_test_sends_through_each_channel_and_reports_each() {
    let env = Env::new();
    let r = receiver();
    config(&env, &r, "");
    env.write_org(&crate::harness::org(1, 1));
    let out = env.orgsync(&["notify", "test"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.stdout.matches(": ok").count(), 4, "{}", out.stdout);
    assert_eq!(got(&r).len(), 4);
    r.world.lock().unwrap().fail = true;
    let out = env.orgsync(&["notify", "test"]);
    assert_eq!(out.code, 1);
    assert_eq!(out.stdout.matches("failed: HTTP 500").count(), 4, "{}", out.stdout);
    assert!(!out.stdout.contains(WECOM_KEY) && !out.stdout.contains("access_token=T"), "{}", out.stdout);
}

#[test]
fn the_service_announces_from_its_own_task() {
    let env = Env::new();
    let r = receiver();
    let port = crate::harness::free_port();
    std::fs::write(env.path("org.json"), "{ not json").unwrap();
    let text = format!(
        "state_dir = \"state\"\n[source]\nkind = \"file\"\npath = \"org.json\"\n[target]\nkind = \"file\"\npath = \"target.json\"\n\
         [daemon]\nlisten = \"127.0.0.1:{port}\"\n[[notify]]\nkind = \"webhook\"\nurl = \"{}/hook\"\n",
        r.base
    );
    std::fs::write(env.path("orgsync.toml"), text).unwrap();
    let mut child = env.command(&["run"]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while r.world.lock().unwrap().got.is_empty() {
        assert!(Instant::now() < deadline, "the run on start was not announced");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let hook: Value = serde_json::from_str(&got(&r)[0].1).unwrap();
    assert_eq!((hook["event"].as_str(), hook["run_id"].as_i64()), (Some("failed"), Some(1)));
}

#[test]
fn a_slow_bot_and_a_run_every_second_announce_a_condition_once_per_channel() {
    let env = Env::new();
    let r = receiver();
    let port = crate::harness::free_port();
    config(&env, &r, "timeout = \"10s\"");
    // Every run fails, one a second; each announcement takes 2.5 s to be answered.
    std::fs::write(env.path("org.json"), "{ not json").unwrap();
    let mut text = std::fs::read_to_string(env.path("orgsync.toml")).unwrap();
    text =
        text.replace("[daemon]\n", &format!("[schedule]\nmode = \"interval\"\nevery = \"1s\"\n[daemon]\nlisten = \"127.0.0.1:{port}\"\n"));
    std::fs::write(env.path("orgsync.toml"), text).unwrap();
    r.world.lock().unwrap().hang = Some(Duration::from_millis(2500));
    let d = crate::daemon::Daemon::start(&env, port);
    // Runs go on while the first announcements wait for their answers.
    d.wait_runs("five failed runs", Duration::from_secs(120), |runs| runs.iter().filter(|r| r["status"] == "failed").count() >= 5);
    // Every announcement sent by now has been answered (2.5 s each, all channels at once).
    std::thread::sleep(Duration::from_secs(4));
    let seen = got(&r);
    let mut per_channel: HashMap<&str, usize> = HashMap::new();
    for (p, _) in &seen {
        *per_channel.entry(p.as_str()).or_default() += 1;
    }
    assert_eq!(per_channel.len(), 4, "every channel announced: {seen:?}");
    assert!(per_channel.values().all(|n| *n == 1), "announced more than once within min_interval: {per_channel:?}");
    assert!(seen.iter().all(|(_, t)| !t.contains("orgsync sync --allow-deletes")), "the service names `trigger`");
}
