//! The admin page in process: the router served on a loopback port with
//! the client's address set by the test (a peer beyond loopback), read
//! with a real HTTP client.

use crate::http::Shared;
use crate::mirror::{ItemRow, Mirror, ObjectCounts, RunStatus};
use crate::model::{Kind, SourceId, TargetId};
use crate::reconcile::{Outcome, Verb};
use crate::trigger::TriggerQueue;
use std::net::SocketAddr;
use std::sync::Arc;

// Secrets with characters HTML escapes: a mask applied after escaping would miss them.
const TOKEN: &str = "tok/3d9f&admin<secret>";
const SCIM_TOKEN: &str = "scim/bearer&77aa'secret";
const HOOK: &str = "http://127.0.0.1:9/hook/T0P&s3cret";
/// A secret known only after the mirror recorded it (a token added since):
/// the mirror keeps it as given, the page masks it.
const LATE: &str = "late/6c1e&secret";

struct Page {
    base: String,
    shared: Arc<Shared>,
    /// A reload: the config the service now runs with.
    reload: tokio::sync::watch::Sender<Arc<crate::settings::Config>>,
    _dir: tempfile::TempDir,
}

/// The service's state with `extra` config (under `[daemon]`), held-back
/// deletions in its last run, one quarantined object; served as if every
/// client were `peer`.
async fn serve(daemon: &str, peer: &str) -> Page {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("org.json"), r#"{"departments": [], "users": []}"#).unwrap();
    std::fs::write(dir.path().join("scim-token"), format!("{SCIM_TOKEN}\n")).unwrap();
    let path = dir.path().join("orgsync.toml");
    std::fs::write(
        &path,
        format!(
            "state_dir = \"state\"\n[source]\nkind = \"file\"\npath = \"org.json\"\n[target]\nkind = \"scim\"\n\
             base_url = \"http://127.0.0.1:9/scim/v2\"\ntoken_file = \"scim-token\"\nmax_retries = 0\n\
             [[notify]]\nkind = \"webhook\"\nurl = \"{HOOK}\"\n[daemon]\n{daemon}\n"
        ),
    )
    .unwrap();
    let config = crate::settings::load(&path).unwrap();
    crate::redact::register(TOKEN);
    crate::redact::register(SCIM_TOKEN);
    crate::redact::register(HOOK);
    let mirror = Arc::new(Mirror::open(&config.state_dir).unwrap());
    held_back_run(&mirror);
    crate::redact::register(LATE);
    // One quarantined object, one waiting for its next try.
    let failed = |id: &str, quarantined| {
        let f = crate::reconcile::retry::Failure { count: 5, error: "409".into(), next_at: chrono::Utc::now(), quarantined };
        ((Kind::User, id.to_owned()), f)
    };
    let changes = crate::reconcile::retry::Changes { failed: vec![failed("u7", true), failed("u8", false)], ..Default::default() };
    mirror.keep_failures(&changes).unwrap();
    let queue = Arc::new(TriggerQueue::new());
    let (reload, config_rx) = tokio::sync::watch::channel(Arc::new(config));
    let (_, next_rx) = tokio::sync::watch::channel(None);
    let shared = Arc::new(Shared {
        config: config_rx,
        queue: queue.clone(),
        events: crate::events::Events::new(queue),
        next_fire: next_rx,
        metrics: None,
        consecutive_failures: Default::default(),
        shutting_down: false.into(),
        started_at: chrono::Utc::now(),
        mirror,
        config_path: path,
        web: super::Sessions::default(),
    });
    let peer: SocketAddr = peer.parse().unwrap();
    let app = crate::http::router(shared.clone()).layer(axum::extract::connect_info::MockConnectInfo(peer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Page { base, shared, reload, _dir: dir }
}

/// A full run whose guard held back three user deletions, one of them
/// with a membership change; and an object quarantined.
fn held_back_run(m: &Mirror) {
    let run = m.start_run("schedule").unwrap();
    let ids: Vec<(SourceId, TargetId)> = (1..=3).map(|n| (SourceId(format!("u{n}")), TargetId(format!("t-{n}")))).collect();
    // A user's item on user `n` (1-3), with or without its target id.
    let row = |n: usize, op, outcome, error, targeted: bool| ItemRow {
        kind: Kind::User,
        op,
        source_id: Some(&ids[n - 1].0),
        target_id: targeted.then_some(&ids[n - 1].1),
        outcome,
        error,
        changes: None,
    };
    let mut rows: Vec<ItemRow<'_>> =
        (1..=3).map(|n| row(n, Verb::Delete, Outcome::HeldBack, Some("held back by the deletion guard: delete user"), true)).collect();
    rows.push(row(
        1,
        Verb::Update,
        Outcome::HeldBack,
        Some("membership change held back with the deletion of its department: update"),
        true,
    ));
    rows.push(ItemRow {
        changes: Some(r#"[{"field":"email","from":null,"to":"a@example.com"}]"#),
        ..row(2, Verb::Create, Outcome::Ok, None, false)
    });
    // What a careless server might echo: the page masks it (the mirror keeps what it was given).
    let echoed = format!("the server said: Authorization: Bearer {LATE}, hook {HOOK}");
    rows.push(row(3, Verb::Update, Outcome::Failed, Some(&echoed), true));
    m.record_all(run, &rows).unwrap();
    m.set_objects(run, &ObjectCounts::default()).unwrap();
    m.finish_run(run, RunStatus::Partial, Some("deletion guard held back 3 of 3 removals")).unwrap();
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// The session cookie a login sets (`name=value` and its attributes).
async fn login(p: &Page, headers: &[(&str, &str)]) -> (String, String) {
    login_for(p, headers, "/deletions").await
}

async fn login_for(p: &Page, headers: &[(&str, &str)], next: &str) -> (String, String) {
    let mut req = client().post(format!("{}/login", p.base)).form(&[("token", TOKEN), ("next", next)]);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], next);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    (set.split(';').next().unwrap().to_owned(), set)
}

async fn get(p: &Page, path: &str, cookie: Option<&str>) -> (u16, String) {
    let mut req = client().get(format!("{}{path}", p.base));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The CSRF token a page's forms carry.
fn csrf(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
    html[at..at + 64].to_owned()
}

fn digest(html: &str) -> String {
    let at = html.find("name=\"held\" value=\"").expect("the held set's digest") + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn beyond_loopback_the_token_is_asked_once_and_kept_in_a_strict_http_only_cookie() {
    let p = serve(&format!("listen = \"0.0.0.0:9464\"\nadmin_token = \"{TOKEN}\""), "10.1.2.3:5555").await;
    let r = client().get(format!("{}/runs/1?outcome=held_back", p.base)).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login?next=%2Fruns%2F1%3Foutcome%3Dheld_back");
    assert_eq!(get(&p, "/deletions", Some("orgsync_session=made-up")).await.0, 303);
    let wrong = client().post(format!("{}/login", p.base)).form(&[("token", "guess")]).send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());

    let (cookie, set) = login(&p, &[]).await;
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && !set.contains("Secure"), "{set}");
    let (status, html) = get(&p, "/deletions", Some(&cookie)).await;
    assert_eq!(status, 200);
    assert!(html.contains("t-3") && html.contains("<strong id=\"removals\">3</strong>"), "{html}");
    // Behind a TLS proxy the cookie is Secure.
    let (_, set) = login(&p, &[("x-forwarded-proto", "https")]).await;
    assert!(set.contains("; Secure"), "{set}");
    // A bearer client needs no session.
    let r = client().get(format!("{}/", p.base)).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Logged out: the session is gone.
    let (_, html) = get(&p, "/", Some(&cookie)).await;
    let out = client().post(format!("{}/logout", p.base)).header("cookie", &cookie).form(&[("csrf", csrf(&html))]).send().await.unwrap();
    assert_eq!(out.status(), 303);
    assert_eq!(get(&p, "/", Some(&cookie)).await.0, 303);
}

#[tokio::test]
async fn actions_need_the_csrf_token_web_actions_and_tls_beyond_loopback() {
    let post = |p: &Page, path: &str, cookie: &str, form: Vec<(&'static str, String)>| {
        client().post(format!("{}{path}", p.base)).header("cookie", cookie.to_owned()).form(&form).send()
    };
    // Read-only by default: the page says so and offers no button; a POST is refused.
    let p = serve(&format!("listen = \"0.0.0.0:9464\"\nadmin_token = \"{TOKEN}\""), "10.1.2.3:5555").await;
    let (cookie, _) = login(&p, &[]).await;
    let (_, html) = get(&p, "/deletions", Some(&cookie)).await;
    assert!(html.contains("id=\"read-only\"") && !html.contains("id=\"approve\""), "{html}");
    let r = post(&p, "/deletions/reject", &cookie, vec![("csrf", csrf(&html)), ("held", "x".into())]).await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("daemon.web_actions = true"));

    // Allowed, but over plain HTTP from beyond loopback: refused (the login came through a TLS proxy).
    let p = serve(&format!("listen = \"0.0.0.0:9464\"\nadmin_token = \"{TOKEN}\"\nweb_actions = true"), "10.1.2.3:5555").await;
    let (cookie, _) = login(&p, &[("x-forwarded-proto", "https")]).await;
    let (_, html) = get(&p, "/deletions", Some(&cookie)).await;
    assert!(html.contains("web_actions_over_plain_http"), "{html}");
    let r = post(&p, "/deletions/reject", &cookie, vec![("csrf", csrf(&html)), ("held", digest_of(&p))]).await.unwrap();
    assert_eq!(r.status(), 403);
    // Through a TLS proxy the page offers the buttons.
    let html = client()
        .get(format!("{}/deletions", p.base))
        .header("cookie", cookie.clone())
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("id=\"approve\"") && html.contains("id=\"reject\""), "{html}");
    let form = vec![("csrf", csrf(&html)), ("held", digest(&html))];
    // Through a TLS proxy: no CSRF token, a wrong one, a stale held set are refused; then it is recorded.
    let tls = |path: &'static str, form: Vec<(&'static str, String)>| {
        client().post(format!("{}{path}", p.base)).header("cookie", cookie.clone()).header("x-forwarded-proto", "https").form(&form).send()
    };
    assert_eq!(tls("/deletions/reject", vec![("held", digest_of(&p))]).await.unwrap().status(), 403);
    assert_eq!(tls("/deletions/reject", vec![("csrf", "0".repeat(64)), ("held", digest_of(&p))]).await.unwrap().status(), 403);
    assert_eq!(tls("/deletions/reject", vec![("csrf", csrf(&html)), ("held", "stale".into())]).await.unwrap().status(), 409);
    assert!(p.shared.mirror.actions(10).unwrap().is_empty(), "nothing refused is recorded");
    assert_eq!(tls("/deletions/reject", form.clone()).await.unwrap().status(), 200);
    let actions = p.shared.mirror.actions(10).unwrap();
    assert_eq!((actions[0].who.as_str(), actions[0].peer.as_str(), actions[0].action.as_str()), ("token", "10.1.2.3", "reject"));
    assert_eq!(p.shared.mirror.rejected().unwrap(), Some(digest_of(&p)));
    assert!(!p.shared.queue.is_running(), "a rejection starts no run");
    // Approve: a run allowed exactly the three removals (not the membership change).
    assert_eq!(tls("/deletions/approve", form).await.unwrap().status(), 200);
    let t = p.shared.queue.next().await.unwrap();
    let approved = u64::from_str_radix(&digest_of(&p), 16).ok();
    assert_eq!((t.kind, t.allow_deletes, t.approved, t.only), (crate::trigger::TriggerKind::Web, 0, approved, None));
    assert_eq!(p.shared.mirror.rejected().unwrap(), None, "an approval ends the rejection");

    // Plain HTTP beyond loopback allowed by the admin.
    let p = serve(
        &format!("listen = \"0.0.0.0:9464\"\nadmin_token = \"{TOKEN}\"\nweb_actions = true\nweb_actions_over_plain_http = true"),
        "10.1.2.3:5555",
    )
    .await;
    let (cookie, _) = login(&p, &[]).await;
    let (_, html) = get(&p, "/quarantine", Some(&cookie)).await;
    let r = post(&p, "/quarantine/retry", &cookie, vec![("csrf", csrf(&get(&p, "/", Some(&cookie)).await.1))]).await.unwrap();
    assert_eq!(r.status(), 200, "{html}");
    assert_eq!(p.shared.mirror.actions(1).unwrap()[0].detail, "all (2 released)");
    assert!(p.shared.mirror.failing().unwrap().is_empty());
}

fn digest_of(p: &Page) -> String {
    let items = p.shared.mirror.items(crate::mirror::RunId(1)).unwrap();
    crate::mirror::held_back(&items).1.unwrap()
}

#[tokio::test]
async fn on_loopback_without_a_token_the_viewer_is_loopback_and_forms_still_need_their_csrf_token() {
    let p = serve("web_actions = true", "127.0.0.1:40000").await;
    let r = client().get(format!("{}/deletions", p.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let html = r.text().await.unwrap();
    assert!(html.contains("loopback") && html.contains("id=\"approve\""), "{html}");
    let form = |csrf: Option<String>| {
        let mut f = vec![("held", digest_of(&p))];
        f.extend(csrf.map(|c| ("csrf", c)));
        client().post(format!("{}/deletions/approve", p.base)).header("cookie", cookie.clone()).form(&f).send()
    };
    assert_eq!(form(None).await.unwrap().status(), 403, "a cross-site form has no token");
    assert_eq!(form(Some(csrf(&html))).await.unwrap().status(), 200);
    assert_eq!(p.shared.mirror.actions(1).unwrap()[0].who, "loopback");
}

#[tokio::test]
async fn pages_follow_accept_language_and_the_switch() {
    let p = serve("", "127.0.0.1:40000").await;
    let html = |lang: Option<&str>, cookie: Option<&str>| {
        let mut r = client().get(format!("{}/", p.base));
        if let Some(l) = lang {
            r = r.header("accept-language", l);
        }
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        async move { r.send().await.unwrap().text().await.unwrap() }
    };
    assert!(html(None, None).await.contains("Run history"));
    assert!(html(Some("zh-CN,zh;q=0.9,en;q=0.8"), None).await.contains("同步记录"));
    assert!(html(Some("fr, en;q=0.5, zh;q=0.7"), None).await.contains("同步记录"), "zh is preferred over en");
    let r = client().get(format!("{}/lang/zh?back=%2Fruns%2F1", p.base)).send().await.unwrap();
    assert_eq!(r.headers()["location"], "/runs/1");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    assert!(html(Some("en"), Some(&cookie)).await.contains("<html lang=\"zh\">"));
    // Never a redirect off the site.
    let r = client().get(format!("{}/lang/en?back=%2F%2Fevil.example", p.base)).send().await.unwrap();
    assert_eq!(r.headers()["location"], "/");
}

#[tokio::test]
async fn every_page_renders_and_no_secret_reaches_any() {
    let p = serve(&format!("admin_token = \"{TOKEN}\"\nweb_actions = true"), "127.0.0.1:40000").await;
    let (cookie, _) = login(&p, &[]).await;
    for (path, want) in [
        ("/", 200),
        ("/?page=2", 200),
        ("/?page=99999999999999999999", 200),
        ("/runs/1", 200),
        ("/runs/1?kind=user&op=delete&outcome=held_back", 200),
        ("/runs/1?outcome=failed", 200),
        ("/runs/1?page=18446744073709551615", 200),
        ("/runs/1?outcome=bogus", 400),
        ("/runs/99", 404),
        ("/deletions", 200),
        ("/quarantine", 200),
        ("/lookup", 200),
        ("/lookup?q=u1", 502),
        ("/check", 200),
        ("/check?run=1", 200),
        ("/login", 200),
    ] {
        let (status, html) = get(&p, path, Some(&cookie)).await;
        assert_eq!(status, want, "{path}: {html}");
        assert!(html.starts_with("<!doctype html>"), "{path}: {html}");
        // No part of a secret, raw or escaped.
        for part in ["3d9f", "77aa", "T0P", "6c1e"] {
            assert!(!html.contains(part), "{path} shows a secret: {html}");
        }
    }
    let (_, run) = get(&p, "/runs/1?outcome=held_back&kind=user", Some(&cookie)).await;
    assert_eq!(run.matches("<tr class=\"item\">").count(), 4, "{run}");
    let (_, run) = get(&p, "/runs/1?op=create", Some(&cookie)).await;
    assert!(run.contains("a@example.com") && run.matches("<tr class=\"item\">").count() == 1, "{run}");
    let (_, run) = get(&p, "/runs/1?outcome=failed", Some(&cookie)).await;
    assert!(run.contains("Authorization: Bearer &lt;redacted&gt;, hook &lt;redacted&gt;"), "the echo is shown, masked: {run}");
    let (_, check) = get(&p, "/check?run=1", Some(&cookie)).await;
    assert!(check.contains("id=\"config-ok\""), "{check}");
    let (_, home) = get(&p, "/", Some(&cookie)).await;
    assert!(home.contains("<span id=\"held-count\">3</span>"), "three removals, not the membership change: {home}");
    let (_, q) = get(&p, "/quarantine", Some(&cookie)).await;
    assert!(q.contains("u7") && q.contains("u8") && q.contains("quarantined") && q.contains("retry later"), "{q}");
}

#[tokio::test]
async fn retry_releases_the_one_object_named() {
    let p = serve("web_actions = true", "127.0.0.1:40000").await;
    let r = client().get(format!("{}/quarantine", p.base)).send().await.unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let html = r.text().await.unwrap();
    let form = [("csrf", csrf(&html)), ("id", "u7".to_owned())];
    let r = client().post(format!("{}/quarantine/retry", p.base)).header("cookie", &cookie).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("(1)"));
    let left: Vec<String> = p.shared.mirror.failing().unwrap().into_iter().map(|f| f.id).collect();
    assert_eq!(left, ["u8"]);
    assert_eq!(p.shared.mirror.actions(1).unwrap()[0].detail, "u7 (1 released)");
}

#[tokio::test]
async fn redirects_stay_on_the_site_and_a_foreign_host_is_refused_without_a_token() {
    let p = serve("", "127.0.0.1:40000").await;
    for back in ["%2F%2Fevil.example", "%2F%09%2Fevil.example", "%2F%5C%5Cevil.example", "https%3A%2F%2Fevil.example", "%2F%0A%2Fevil"] {
        let r = client().get(format!("{}/lang/en?back={back}", p.base)).send().await.unwrap();
        assert_eq!(r.headers()["location"], "/", "{back}");
    }
    // A page of another site whose name resolves here (DNS rebinding) gets nothing.
    let r = client().get(format!("{}/deletions", p.base)).header("host", "evil.example:9464").send().await.unwrap();
    assert_eq!(r.status(), 421);
    let r = client().get(format!("{}/deletions", p.base)).header("host", "localhost:9464").send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Nor does a proxy on this host forward strangers to a page without a token.
    let r = client().get(format!("{}/", p.base)).header("x-forwarded-for", "203.0.113.9").send().await.unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn a_session_opened_over_plain_http_never_acts_and_a_new_token_ends_old_sessions() {
    let p = serve(&format!("listen = \"0.0.0.0:9464\"\nadmin_token = \"{TOKEN}\"\nweb_actions = true"), "10.1.2.3:5555").await;
    // Logged in over plain HTTP: the cookie crossed the network in clear.
    let (cookie, _) = login(&p, &[]).await;
    let page = |headers: Vec<(&'static str, String)>| {
        let mut r = client().get(format!("{}/deletions", p.base)).header("cookie", cookie.clone());
        for (k, v) in headers {
            r = r.header(k, v);
        }
        async move { r.send().await.unwrap().text().await.unwrap() }
    };
    // A forged X-Forwarded-Proto does not make that session one that may act.
    let html = page(vec![("x-forwarded-proto", "https".into())]).await;
    assert!(html.contains("id=\"read-only\""), "{html}");
    let form = [("csrf", csrf(&html)), ("held", digest_of(&p))];
    let r = client()
        .post(format!("{}/deletions/reject", p.base))
        .header("cookie", &cookie)
        .header("x-forwarded-proto", "https")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A reload with another token ends the sessions of the old one.
    let mut config = (**p.reload.borrow()).clone();
    config.daemon.admin_token = Some(crate::config::Secret::new("a-new-admin-token"));
    p.reload.send(Arc::new(config)).unwrap();
    assert_eq!(get(&p, "/deletions", Some(&cookie)).await.0, 303);
    // A local proxy forwarding for someone is beyond loopback too, and recorded so.
    let q = serve(&format!("admin_token = \"{TOKEN}\"\nweb_actions = true"), "127.0.0.1:40000").await;
    let (cookie, _) = login_for(&q, &[("x-forwarded-for", "203.0.113.9"), ("x-forwarded-proto", "https")], "/").await;
    let html = client()
        .get(format!("{}/deletions", q.base))
        .header("cookie", &cookie)
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("web_actions_over_plain_http"), "plain HTTP through the proxy: {html}");
    let r = client()
        .post(format!("{}/deletions/reject", q.base))
        .header("cookie", &cookie)
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .form(&[("csrf", csrf(&html)), ("held", digest_of(&q))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(q.shared.mirror.actions(1).unwrap()[0].peer, "127.0.0.1 for 203.0.113.9");
}
