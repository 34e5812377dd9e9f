//! Source `wecom` through the binary, against the fake WeCom contact API
//! (tests/it/fake_wecom.rs) and a real scim2-server.

use crate::fake_wecom::{CORP_ID, CORP_SECRET, FakeWeCom, org};
use crate::harness::{Env, Scim};
use serde_json::json;

fn wecom_config(env: &Env, scim: &Scim, fake: &FakeWeCom, secret: &str, extra: &str) {
    std::fs::write(env.path("corp-secret"), format!("{secret}\n")).unwrap();
    let source =
        format!("kind = \"wecom\"\nbase_url = \"{}\"\ncorp_id = \"{CORP_ID}\"\ncorp_secret_file = \"corp-secret\"\n{extra}", fake.base);
    env.scim_config_with_source(scim, &source, "");
}

fn message(env: &Env) -> String {
    env.status_json()["runs"][0]["message"].as_str().unwrap().to_owned()
}

fn set_status(fake: &FakeWeCom, i: usize, status: i64) {
    fake.world.lock().unwrap().users[i]["status"] = status.into();
}

#[test]
fn wecom_full_sync_matched_by_userid_then_a_move_and_disabled_left_and_unactivated_users() {
    let env = Env::new();
    let scim = Scim::in_process();
    // An account that already exists in the target, with no email (WeCom gives none).
    let existing = scim.post("Users", json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "wc3"}));
    let fake = FakeWeCom::start(org());
    wecom_config(&env, &scim, &fake, CORP_SECRET, "");

    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(fake.unexpected(), Vec::<String>::new());
    assert_eq!(scim.users().len(), 270, "every user once, the existing account bound, not duplicated");
    assert_eq!(scim.user_by_name("wc3").unwrap()["id"], existing["id"], "matched by userid (the wecom default match_by)");
    assert_eq!(scim.groups().len(), 31, "the company root is not a department");
    let u5 = scim.user_by_name("wc5").unwrap();
    let dept = &u5["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"];
    assert_eq!(dept, "Dept 0.1.1", "the primary department is main_department: {u5}");
    assert_eq!(fake.count("user/get"), 270, "the default api: user/list_id + user/get");
    assert_eq!(fake.count("department/list "), 0);
    assert!(!r.stderr.contains(CORP_SECRET) && !r.stdout.contains("wcfake"), "a secret or token leaked");

    // Move a leaf under another branch; 7 disabled, 8 left, 9 not activated.
    {
        let mut w = fake.world.lock().unwrap();
        w.departments[3].1 = w.departments[21].0;
    }
    set_status(&fake, 7, 2);
    set_status(&fake, 8, 5);
    set_status(&fake, 9, 4);
    let writes = scim.writes().len();
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(!scim.writes()[writes..].iter().any(|(m, _, _)| m == "POST"), "nothing recreated");
    for u in ["wc7", "wc8", "wc9"] {
        assert_eq!(scim.user_by_name(u).unwrap()["active"], false, "{u}");
    }
    assert_eq!(scim.user_by_name("wc10").unwrap()["active"], true);
    assert!(env.sync(&["--dry-run"]).stdout.contains("Nothing to do"));
}

#[test]
fn wecom_token_expiry_mid_fetch_and_throttling_recover_within_the_rate_with_either_api() {
    for (api, requests) in [("simplelist", "user/get"), ("list", "user/list")] {
        let env = Env::new();
        let scim = Scim::in_process();
        let mut world = org();
        world.common.knobs.revoke_after = Some(10);
        world.common.knobs.throttle_every = Some(15);
        let fake = FakeWeCom::start(world);
        wecom_config(&env, &scim, &fake, CORP_SECRET, &format!("api = \"{api}\"\nrate_limit = 20\n"));
        let r = env.sync(&["--dry-run"]);
        assert_eq!(r.code, 0, "{api}: {}\n{}", r.stdout, r.stderr);
        assert!(r.stdout.contains("301 operations"), "{api}: 31 departments and 270 users: {}", r.stdout);
        assert_eq!(fake.count("token"), 2, "{api}: one refresh after the token expired (42001)");
        assert!(fake.peak_per_second() <= 21, "{api}: rate_limit 20/s exceeded: {}", fake.peak_per_second());
        assert!(fake.count(requests) > 0, "{api}");
        assert_eq!(fake.unexpected(), Vec::<String>::new(), "{api}");
    }
}

#[test]
fn wecom_token_is_refreshed_before_it_expires() {
    let env = Env::new();
    let scim = Scim::in_process();
    let mut world = org();
    // orgsync refreshes 5 minutes ahead: a 302 s token is refreshed after 2 s.
    world.common.knobs.token_ttl = Some(302);
    let fake = FakeWeCom::start(world);
    wecom_config(&env, &scim, &fake, CORP_SECRET, "api = \"list\"\nrate_limit = 5\n");
    let r = env.sync(&["--dry-run"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(fake.count("token") >= 3, "about 34 requests at 5/s take 7 s: {} tokens", fake.count("token"));
    assert_eq!(fake.world.lock().unwrap().common.refused, 0, "no request was sent with an old token");
}

#[test]
fn wecom_a_failure_on_page_3_fails_the_run_with_zero_writes() {
    let env = Env::new();
    let scim = Scim::in_process();
    let mut world = org();
    world.common.knobs.fail_page = Some(("all".into(), 3));
    let fake = FakeWeCom::start(world);
    wecom_config(&env, &scim, &fake, CORP_SECRET, "max_retries = 1\npage_size = 100\n");
    let r = env.sync(&[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(scim.writes().is_empty(), "{:?}", scim.writes());
    let msg = message(&env);
    assert!(msg.contains("WeCom /cgi-bin/user/list_id") && msg.contains("HTTP 500"), "{msg}");
    assert_eq!(fake.count("user/list_id all page 3"), 2, "retried once");
    assert_eq!(fake.count("user/get"), 0, "no details fetched for an incomplete list");
}

#[test]
fn wecom_wrong_credentials_and_an_untrusted_ip_fail_with_the_code_and_what_to_check() {
    let env = Env::new();
    let scim = Scim::in_process();
    let fake = FakeWeCom::start(org());
    wecom_config(&env, &scim, &fake, "wrong-secret", "");
    let r = env.sync(&[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let msg = message(&env);
    assert!(msg.contains("code 40001") && msg.contains("check source.corp_secret"), "{msg}");
    assert!(!msg.contains("wrong-secret") && !r.stderr.contains("wrong-secret"));

    fake.world.lock().unwrap().untrusted_ip = true;
    wecom_config(&env, &scim, &fake, CORP_SECRET, "");
    let r = env.sync(&[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let msg = message(&env);
    assert!(msg.contains("WeCom") && msg.contains("code 60020") && msg.contains("this server's IP is not trusted by the app"), "{msg}");
    assert!(scim.writes().is_empty());
}

#[test]
fn wecom_a_post_2022_app_keeps_every_email_and_phone_and_a_real_emptying_still_clears() {
    let env = Env::new();
    let scim = Scim::in_process();
    let mut world = org();
    world.full_app = true;
    let fake = FakeWeCom::start(world);
    wecom_config(&env, &scim, &fake, CORP_SECRET, "api = \"list\"\nrate_limit = 150\n");
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let with = |field: &str| scim.users().iter().filter(|u| u[field][0]["value"].is_string()).count();
    let (emails, phones) = (with("emails"), with("phoneNumbers"));
    assert_eq!((emails, phones), (270, 270));

    // The same org read through an app created after 2022-06-20: no email, no mobile.
    fake.world.lock().unwrap().full_app = false;
    let before = scim.writes().len();
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(scim.writes()[before..], [], "absent fields changed the target");
    assert_eq!((with("emails"), with("phoneNumbers")), (emails, phones), "emails and phones intact");
    assert!(r.stderr.contains("withheld") && r.stderr.contains("email"), "said once: {}", r.stderr);
    let r = env.sync(&["--dry-run"]);
    assert!(r.stdout.contains("Nothing to do"), "{}", r.stdout);

    // Back on the full app, one user's email and business mail are really emptied.
    {
        let mut w = fake.world.lock().unwrap();
        w.full_app = true;
        w.users[7]["email"] = json!("");
        w.users[7]["biz_mail"] = json!("");
    }
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(with("emails"), emails - 1, "an emptied email is cleared");
    let wc7 = scim.user_by_name(fake.world.lock().unwrap().users[7]["userid"].as_str().unwrap()).unwrap();
    assert!(wc7["emails"].as_array().is_none_or(|e| e.is_empty()), "{wc7}");
}

#[test]
fn sigterm_during_the_fetch_records_a_partial_run_that_changed_nothing() {
    let env = Env::new();
    let scim = Scim::in_process();
    let fake = FakeWeCom::start(org());
    // 1 request a second: the fetch takes minutes.
    wecom_config(&env, &scim, &fake, CORP_SECRET, "rate_limit = 1\n");
    let child = env.command(&["sync"]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    while fake.count("") < 2 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let sent = std::time::Instant::now();
    assert!(std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    // The fetch alone would take minutes: exiting well before proves it was abandoned.
    assert!(sent.elapsed() < std::time::Duration::from_secs(60), "took {:?}", sent.elapsed());
    assert_eq!(out.status.code(), Some(3), "partial: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(scim.writes(), [], "nothing is applied after a stop during the fetch");
    let s = env.status_json();
    assert_eq!(s["runs"][0]["status"], "partial", "{s:#}");
    assert!(message(&env).contains("stopped by shutdown before anything was applied"), "{}", message(&env));
}

#[test]
fn wecom_a_repeating_cursor_fails_the_fetch_naming_the_endpoint() {
    let env = Env::new();
    let scim = Scim::in_process();
    let mut world = org();
    world.common.knobs.repeat_cursor = true;
    let fake = FakeWeCom::start(world);
    wecom_config(&env, &scim, &fake, CORP_SECRET, "page_size = 100\n");
    let r = env.sync(&[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(scim.writes().is_empty(), "{:?}", scim.writes());
    let msg = message(&env);
    assert!(msg.contains("WeCom /cgi-bin/user/list_id") && msg.contains("came a second time"), "{msg}");
    assert_eq!(fake.count("user/get"), 0, "no details fetched for an unfinished list");
}

#[test]
fn wecom_unreadable_user_records_are_invalid_items_and_nobody_is_disabled() {
    let env = Env::new();
    let scim = Scim::in_process();
    let fake = FakeWeCom::start(org());
    std::fs::write(env.path("corp-secret"), format!("{CORP_SECRET}\n")).unwrap();
    let source = format!(
        "kind = \"wecom\"\nbase_url = \"{}\"\ncorp_id = \"{CORP_ID}\"\ncorp_secret_file = \"corp-secret\"\napi = \"list\"\n",
        fake.base
    );
    env.scim_config_with_source(&scim, &source, "[policy.users]\ntarget_only = \"disable\"\n");
    assert_eq!(env.sync(&[]).code, 0);
    let active = scim.users().iter().filter(|u| u["active"] == true).count();
    {
        let mut w = fake.world.lock().unwrap();
        w.users[4].as_object_mut().unwrap().remove("userid");
        w.users[6]["position"] = json!(true);
    }
    let r = env.sync(&[]);
    crate::harness::assert_unreadable_records_change_nothing(&env, &scim, &r, active);
}

/// `[scope] include_departments` with the whole organisation as `roots`:
/// only the included subtree is read (the department itself kept), and the
/// result is what the scope keeps.
#[test]
fn wecom_an_included_department_narrows_the_fetch_to_its_subtree() {
    let env = Env::new();
    let fake = FakeWeCom::start(org());
    std::fs::write(env.path("corp-secret"), format!("{CORP_SECRET}\n")).unwrap();
    let world = org();
    let subtree: Vec<String> =
        world.departments.iter().filter(|d| d.2 == "Dept 1.0" || d.2.starts_with("Dept 1.0.")).map(|d| d.0.to_string()).collect();
    let source = format!("kind = \"wecom\"\nbase_url = \"{}\"\ncorp_id = \"{CORP_ID}\"\ncorp_secret_file = \"corp-secret\"\n", fake.base);
    crate::harness::sync_scoped_to_dept_1_0(&env, &source, &subtree[0], crate::harness::users_in(&world.users, "department", &subtree));
    assert_eq!(fake.unexpected(), Vec::<String>::new());
    // The organisation's root (1) was never listed.
    assert_eq!(fake.count("department/simplelist 1 ") + fake.count("department/list 1 "), 0);
}

/// `orgsync explain` and `sync --only` read one user by `user/get` and its
/// departments by `department/get`, never the whole corp.
#[test]
fn wecom_explains_and_syncs_one_user_by_id() {
    let env = Env::new();
    let scim = Scim::in_process();
    let fake = FakeWeCom::start(org());
    wecom_config(&env, &scim, &fake, CORP_SECRET, "[scope]\nexclude_users = [\"wc6\"]\n");
    let add_hire = || {
        let mut w = fake.world.lock().unwrap();
        w.departments.push((900, 2, "New Team".into(), 0));
        w.users.push(crate::fake_wecom::user(900, &[900], 900));
    };
    let rename = || fake.world.lock().unwrap().users[5]["name"] = "Renamed Five".into();
    let listings = || fake.count("department/simplelist") + fake.count("department/list") + fake.count("user/list");
    let sent = crate::explain::check(&crate::explain::Case {
        env: &env,
        scim: &scim,
        bound: ("wc5", "wc5"),
        excluded: "wc6",
        hire: ("wc900", "wc900", "New Team"),
        renamed: "Renamed Five",
        add_hire: &add_hire,
        rename: &rename,
        requests: &|| Some(fake.count("")),
    });
    // A token, the user, its new department and that one's parent.
    crate::explain::read_by_id(&env, "wc900", (sent, 4), Some(4), ("alias", "alias900"), &listings);
    assert_eq!(fake.unexpected(), Vec::<String>::new());
}

/// `[source.events]`: WeCom's callback on the service's listener. The URL
/// verification answers the decrypted echostr; each signed, encrypted
/// change event is queued as a run of what it names (a new hire arrives
/// with its new department, a deleted user is disabled as the policy says);
/// a forged request is refused and counted, never acted on; the token and
/// key never reach the log.
#[test]
fn wecom_change_events_are_verified_decrypted_and_synced_alone() {
    use crate::daemon::{Daemon, finished};
    use orgsync::config::Secret;
    use orgsync::sources::wecom::events::Callback;
    use std::time::Duration;
    const TOKEN: &str = "wecom-event-token-never-logged";
    const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
    let env = Env::new();
    let scim = Scim::in_process();
    let fake = FakeWeCom::start(org());
    let port = crate::harness::free_port();
    std::fs::write(env.path("corp-secret"), format!("{CORP_SECRET}\n")).unwrap();
    let source = format!(
        "kind = \"wecom\"\nbase_url = \"{}\"\ncorp_id = \"{CORP_ID}\"\ncorp_secret_file = \"corp-secret\"\n\
         [source.events]\ntoken = \"{TOKEN}\"\nencoding_aes_key = \"{KEY}\"\n",
        fake.base
    );
    env.scim_config_with_source(
        &scim,
        &source,
        &format!(
            "[policy.users]\ntarget_only = \"disable\"\n[schedule]\nmode = \"manual\"\nrun_on_start = true\n\
             [daemon]\nlisten = \"127.0.0.1:{port}\"\n"
        ),
    );
    let wecom = Callback::new(Secret::new(TOKEN), KEY, CORP_ID).unwrap();
    let d = Daemon::start(&env, port);
    d.wait_runs("the first run", Duration::from_secs(60), |r| finished(r) == 1);
    let http = reqwest::blocking::Client::new();
    let url = d.url("/events/wecom");

    // The URL verification: the decrypted echostr, as is.
    let echo = wecom.seal("4711080815", [7; 16]);
    let sig = wecom.signature("1700000000", "n1", &echo);
    let r = http
        .get(&url)
        .query(&[("msg_signature", sig.as_str()), ("timestamp", "1700000000"), ("nonce", "n1"), ("echostr", &echo)])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.text().unwrap(), "4711080815");
    let r = http
        .get(&url)
        .query(&[("msg_signature", "0".repeat(40).as_str()), ("timestamp", "1700000000"), ("nonce", "n1"), ("echostr", &echo)])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403, "a wrong signature");

    let post = |change: &str, user: &str, signed: bool| {
        let event = format!(
            "<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>\
             <CreateTime>1700000001</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event>\
             <ChangeType>{change}</ChangeType><UserID><![CDATA[{user}]]></UserID></xml>"
        );
        let sealed = wecom.seal(&event, [3; 16]);
        let sig = if signed { wecom.signature("1700000001", "n2", &sealed) } else { "f".repeat(40) };
        let body = format!(
            "<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><Encrypt><![CDATA[{sealed}]]></Encrypt><AgentID><![CDATA[]]></AgentID></xml>"
        );
        http.post(&url)
            .query(&[("msg_signature", sig.as_str()), ("timestamp", "1700000001"), ("nonce", "n2")])
            .body(body)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };

    // A forged event: refused, nothing runs.
    assert_eq!(post("create_user", "wc1", false), 403);
    // A new hire in a new department.
    {
        let mut w = fake.world.lock().unwrap();
        w.departments.push((900, 2, "New Team".into(), 0));
        w.users.push(crate::fake_wecom::user(900, &[900], 900));
    }
    assert_eq!(post("create_user", "wc900", true), 200);
    let runs = d.wait_runs("the event's run", Duration::from_secs(60), |r| finished(r) == 2);
    assert_eq!(crate::daemon::trigger_and_status(&runs[0]), ("event user:wc900", "succeeded"), "{runs:#?}");
    let hire = scim.user_by_name("wc900").expect("the new hire is there");
    let team = scim.groups().into_iter().find(|g| g["displayName"] == "New Team").expect("with its department");
    assert!(team["members"].as_array().unwrap().iter().any(|m| m["value"] == hire["id"]));
    // A leaver: gone from WeCom (user/get: 60111), disabled per the policy.
    fake.world.lock().unwrap().users.retain(|u| u["userid"] != "wc7");
    assert_eq!(post("delete_user", "wc7", true), 200);
    let runs = d.wait_runs("the leaver's run", Duration::from_secs(60), |r| finished(r) == 3);
    assert_eq!(crate::daemon::trigger_and_status(&runs[0]), ("event user:wc7", "succeeded"), "{runs:#?}");
    assert_eq!(scim.user_by_name("wc7").unwrap()["active"], false);
    assert_eq!(scim.user_by_name("wc8").unwrap()["active"], true, "nobody else");

    assert_eq!(d.metric("orgsync_events_total{source=\"wecom\",outcome=\"accepted\"}"), 2.0);
    assert_eq!(d.metric("orgsync_events_total{source=\"wecom\",outcome=\"refused\"}"), 2.0);
    assert_eq!(d.metric("orgsync_runs_total{trigger=\"event\",status=\"succeeded\"}"), 2.0);
    let log = d.log();
    assert!(!log.contains(TOKEN) && !log.contains(KEY), "a secret in the log");
    assert_eq!(fake.unexpected(), Vec::<String>::new());
}

/// A wrong `[source.events]` names its key: a key that is not 43
/// characters of base64, a missing token, a key that is not known.
#[test]
fn wecom_events_config_errors_name_the_key() {
    let env = Env::new();
    std::fs::write(
        env.path("orgsync.toml"),
        "state_dir = \"state\"\n[source]\nkind = \"wecom\"\ncorp_id = \"ww1\"\ncorp_secret = \"x\"\n\
         [source.events]\nencoding_aes_key = \"short\"\ntokn = \"t\"\n[target]\nkind = \"file\"\npath = \"out.json\"\n",
    )
    .unwrap();
    let r = env.orgsync(&["check-config"]);
    assert_eq!(r.code, 2);
    for line in [
        "source.events.encoding_aes_key: is not an EncodingAESKey",
        "source.events.token: is required (or token_file)",
        "source.events.tokn: unknown key",
    ] {
        assert!(r.stderr.contains(line), "{line:?} in {}", r.stderr);
    }
}

/// A department WeCom no longer has (department/get: 60123), synced alone,
/// is gone: the run does not fail on it.
#[test]
fn wecom_a_department_gone_from_wecom_synced_alone_does_not_fail_the_run() {
    let env = Env::new();
    let scim = Scim::in_process();
    let fake = FakeWeCom::start(org());
    wecom_config(&env, &scim, &fake, CORP_SECRET, "");
    assert_eq!(env.sync(&[]).code, 0);
    fake.world.lock().unwrap().departments.retain(|d| d.0 != 7);
    let r = env.sync(&["--only", "department:7"]);
    assert!(r.code == 0 || r.code == 3, "{}{}", r.stdout, r.stderr);
    assert_ne!(env.status_json()["runs"][0]["status"], "failed");
}
