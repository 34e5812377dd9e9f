//! Source `feishu` through the binary, against the fake Feishu open
//! platform (tests/it/fake_feishu.rs) and a real scim2-server.

use crate::fake_feishu::{APP_SECRET, FakeFeishu, org};
use crate::harness::{Env, Scim};

fn feishu_config(env: &Env, scim: &Scim, fake: &FakeFeishu, secret: &str, extra: &str) {
    config_of_kind(env, scim, fake, "feishu", secret, extra);
}

fn config_of_kind(env: &Env, scim: &Scim, fake: &FakeFeishu, kind: &str, secret: &str, extra: &str) {
    std::fs::write(env.path("app-secret"), format!("{secret}\n")).unwrap();
    let source = format!(
        "kind = \"{kind}\"\nbase_url = \"{}\"\napp_id = \"{}\"\napp_secret_file = \"app-secret\"\n{extra}",
        fake.base,
        crate::fake_feishu::APP_ID
    );
    env.scim_config_with_source(scim, &source, "");
}

fn set_status(fake: &FakeFeishu, i: usize, key: &str) {
    let mut w = fake.world.lock().unwrap();
    w.users[i]["status"][key] = true.into();
}

#[test]
fn feishu_full_sync_three_levels_deep_then_a_move_a_frozen_and_a_resigned_user() {
    let env = Env::new();
    let scim = Scim::in_process();
    let fake = FakeFeishu::start(org());
    feishu_config(&env, &scim, &fake, APP_SECRET, "");

    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(scim.users().len(), 230, "every page of every department, each user once");
    assert_eq!(scim.groups().len(), 31);
    let u5 = scim.user_by_name("u5").unwrap();
    let dept = &u5["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"];
    assert_eq!(dept, "Dept 0.1.1", "the primary department from orders[].is_primary_dept: {u5}");
    assert_eq!(fake.unexpected(), Vec::<String>::new());
    assert!(!r.stderr.contains(APP_SECRET) && !r.stdout.contains("t-fake"), "a secret or token leaked");

    // Move a leaf under another branch, freeze one user and resign another.
    {
        let mut w = fake.world.lock().unwrap();
        w.departments[2].1 = "od-2".into();
    }
    set_status(&fake, 7, "is_frozen");
    set_status(&fake, 8, "is_resigned");
    let writes = scim.writes().len();
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(!scim.writes()[writes..].iter().any(|(m, _, _)| m == "POST"), "nothing recreated");
    assert_eq!(scim.user_by_name("u7").unwrap()["active"], false);
    assert_eq!(scim.user_by_name("u8").unwrap()["active"], false);
    assert!(env.sync(&["--dry-run"]).stdout.contains("Nothing to do"));
}

#[test]
fn feishu_token_revoked_mid_fetch_and_throttling_recover_within_the_rate() {
    let env = Env::new();
    let scim = Scim::in_process();
    let mut world = org();
    world.common.knobs.revoke_after = Some(10);
    world.common.knobs.throttle_every = Some(15);
    let fake = FakeFeishu::start(world);
    feishu_config(&env, &scim, &fake, APP_SECRET, "rate_limit = 20\n");
    let r = env.sync(&["--dry-run"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("261 operations"), "31 departments and 230 users: {}", r.stdout);
    assert_eq!(fake.count("token"), 2, "one refresh after the token was revoked");
    assert!(fake.peak_per_second() <= 21, "rate_limit 20/s exceeded: {}", fake.peak_per_second());
}

#[test]
fn feishu_a_failure_on_page_3_fails_the_run_with_zero_writes() {
    let env = Env::new();
    let scim = Scim::in_process();
    let mut world = org();
    world.common.knobs.fail_page = Some(("od-big".into(), 3));
    let fake = FakeFeishu::start(world);
    feishu_config(&env, &scim, &fake, APP_SECRET, "max_retries = 1\n");
    let r = env.sync(&[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(scim.writes().is_empty(), "{:?}", scim.writes());
    let msg = env.status_json()["runs"][0]["message"].as_str().unwrap().to_owned();
    assert!(msg.contains("Feishu /open-apis/contact/v3/users/find_by_department") && msg.contains("HTTP 500"), "{msg}");
    assert_eq!(fake.count("users od-big page 3"), 2, "retried once");
}

#[test]
fn feishu_wrong_credentials_fail_with_the_vendor_code_and_what_to_check() {
    let env = Env::new();
    let scim = Scim::in_process();
    let fake = FakeFeishu::start(org());
    feishu_config(&env, &scim, &fake, "wrong-secret", "");
    let r = env.sync(&[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let msg = env.status_json()["runs"][0]["message"].as_str().unwrap().to_owned();
    assert!(msg.contains("code 10014") && msg.contains("check source.app_secret"), "{msg}");
    assert!(!msg.contains("wrong-secret") && !r.stderr.contains("wrong-secret"));
    assert!(scim.writes().is_empty());
}

#[test]
fn lark_is_the_same_api_under_its_own_name() {
    let env = Env::new();
    let scim = Scim::in_process();
    let fake = FakeFeishu::start(org());
    config_of_kind(&env, &scim, &fake, "lark", "wrong-secret", "");
    let r = env.sync(&[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let msg = env.status_json()["runs"][0]["message"].as_str().unwrap().to_owned();
    assert!(msg.contains("(lark): Lark /open-apis/auth/v3/tenant_access_token/internal: code 10014"), "{msg}");

    config_of_kind(&env, &scim, &fake, "lark", APP_SECRET, "");
    let r = env.sync(&["--dry-run"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("261 operations"), "{}", r.stdout);
    assert_eq!(fake.unexpected(), Vec::<String>::new());
}

#[test]
fn feishu_a_repeating_page_token_fails_the_fetch_naming_the_endpoint() {
    let env = Env::new();
    let scim = Scim::in_process();
    let mut world = org();
    world.common.knobs.repeat_cursor = true;
    let fake = FakeFeishu::start(world);
    feishu_config(&env, &scim, &fake, APP_SECRET, "");
    let r = env.sync(&[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(scim.writes().is_empty(), "{:?}", scim.writes());
    let msg = env.status_json()["runs"][0]["message"].as_str().unwrap().to_owned();
    assert!(msg.contains("Feishu /open-apis/contact/v3/") && msg.contains("came a second time"), "{msg}");
}

#[test]
fn feishu_unreadable_user_records_are_invalid_items_and_nobody_is_disabled() {
    let env = Env::new();
    let scim = Scim::in_process();
    let fake = FakeFeishu::start(org());
    std::fs::write(env.path("app-secret"), format!("{APP_SECRET}\n")).unwrap();
    let source = format!(
        "kind = \"feishu\"\nbase_url = \"{}\"\napp_id = \"{}\"\napp_secret_file = \"app-secret\"\n",
        fake.base,
        crate::fake_feishu::APP_ID
    );
    env.scim_config_with_source(&scim, &source, "[policy.users]\ntarget_only = \"disable\"\n");
    assert_eq!(env.sync(&[]).code, 0);
    let active = scim.users().iter().filter(|u| u["active"] == true).count();
    {
        let mut w = fake.world.lock().unwrap();
        w.users[4].as_object_mut().unwrap().remove("union_id");
        w.users[6]["name"] = serde_json::json!(["not", "text"]);
    }
    let r = env.sync(&[]);
    crate::harness::assert_unreadable_records_change_nothing(&env, &scim, &r, active);
}

/// `[scope] include_departments` with the whole tenant as `roots`: only the
/// included subtree is read (its own record too), and the result is what
/// the scope keeps.
#[test]
fn feishu_an_included_department_narrows_the_fetch_to_its_subtree() {
    let env = Env::new();
    let fake = FakeFeishu::start(org());
    std::fs::write(env.path("app-secret"), format!("{APP_SECRET}\n")).unwrap();
    let world = org();
    let subtree: Vec<String> =
        world.departments.iter().filter(|d| d.0 == "od-1-0" || d.0.starts_with("od-1-0-")).map(|d| d.0.clone()).collect();
    let source = format!(
        "kind = \"feishu\"\nbase_url = \"{}\"\napp_id = \"{}\"\napp_secret_file = \"app-secret\"\n",
        fake.base,
        crate::fake_feishu::APP_ID
    );
    crate::harness::sync_scoped_to_dept_1_0(&env, &source, "od-1-0", crate::harness::users_in(&world.users, "department_ids", &subtree));
    assert_eq!(fake.unexpected(), Vec::<String>::new());
    // Read: the one department, its subtree, and the members of those 3 only.
    assert_eq!(fake.count("department"), 1);
    assert_eq!(fake.count("users"), 3, "members listed for the subtree only");
}

/// `orgsync explain` and `sync --only` read one user by `users/:id` and
/// its departments by `departments/:id`, never the whole tenant.
#[test]
fn feishu_explains_and_syncs_one_user_by_id() {
    let env = Env::new();
    let scim = Scim::in_process();
    let fake = FakeFeishu::start(org());
    feishu_config(&env, &scim, &fake, APP_SECRET, "[scope]\nexclude_users = [\"u6\"]\n");
    let add_hire = || {
        let mut w = fake.world.lock().unwrap();
        w.departments.push(("od-new".into(), "od-1".into(), "New Team".into(), 0));
        w.users.push(crate::fake_feishu::user(230, vec!["od-new".into()], 0));
    };
    let rename = || fake.world.lock().unwrap().users[5]["name"] = "Renamed Five".into();
    let listings = || fake.count("children") + fake.count("users");
    let sent = crate::explain::check(&crate::explain::Case {
        env: &env,
        scim: &scim,
        bound: ("on_0005", "u5"),
        excluded: "on_0006",
        hire: ("on_0230", "u230", "New Team"),
        renamed: "Renamed Five",
        add_hire: &add_hire,
        rename: &rename,
        requests: &|| Some(fake.count("")),
    });
    // A token, the user, its new department and that one's parent: no listing.
    crate::explain::read_by_id(&env, "on_0230", (sent, 4), Some(4), ("open_id", "ou_0230"), &listings);
    assert_eq!(fake.unexpected(), Vec::<String>::new());
}

/// `[source.events]` with an Encrypt Key: the encrypted URL verification
/// is answered with its challenge; a signed, encrypted contact event is
/// queued as a run of the user it names (the new hire arrives with its new
/// department); an unsigned or wrongly signed one is refused and counted.
#[test]
fn feishu_contact_events_are_verified_decrypted_and_synced_alone() {
    use crate::daemon::{Daemon, finished};
    use orgsync::config::Secret;
    use orgsync::sources::feishu::events::Callback;
    use std::time::Duration;
    const TOKEN: &str = "feishu-verification-token-never-logged";
    const KEY: &str = "feishu-encrypt-key-never-logged";
    let env = Env::new();
    let scim = Scim::in_process();
    let fake = FakeFeishu::start(org());
    let port = crate::harness::free_port();
    std::fs::write(env.path("app-secret"), format!("{APP_SECRET}\n")).unwrap();
    let source = format!(
        "kind = \"feishu\"\nbase_url = \"{}\"\napp_id = \"{}\"\napp_secret_file = \"app-secret\"\n\
         [source.events]\nverification_token = \"{TOKEN}\"\nencrypt_key = \"{KEY}\"\n",
        fake.base,
        crate::fake_feishu::APP_ID
    );
    env.scim_config_with_source(
        &scim,
        &source,
        &format!("[schedule]\nmode = \"manual\"\nrun_on_start = true\n[daemon]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let feishu = Callback::new(Secret::new(TOKEN), Some(Secret::new(KEY)), "union_id", "open_department_id");
    let d = Daemon::start(&env, port);
    d.wait_runs("the first run", Duration::from_secs(60), |r| finished(r) == 1);
    let http = reqwest::blocking::Client::new();
    let url = d.url("/events/feishu");
    let send = |plain: &str, sign: Option<&str>| {
        let body = feishu.seal(plain, [5; 16]);
        let mut req = http.post(&url).header("content-type", "application/json").body(body.clone());
        if let Some(nonce) = sign {
            let sig = feishu.signature("1700000000", "n1", body.as_bytes()).unwrap();
            req =
                req.header("X-Lark-Request-Timestamp", "1700000000").header("X-Lark-Request-Nonce", nonce).header("X-Lark-Signature", sig);
        }
        let r = req.send().unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    let (code, body) = send(&format!(r#"{{"challenge":"ch-42","token":"{TOKEN}","type":"url_verification"}}"#), None);
    assert_eq!((code, body.as_str()), (200, r#"{"challenge":"ch-42"}"#));

    {
        let mut w = fake.world.lock().unwrap();
        w.departments.push(("od-new".into(), "od-1".into(), "New Team".into(), 0));
        w.users.push(crate::fake_feishu::user(230, vec!["od-new".into()], 0));
    }
    let created = serde_json::json!({"schema": "2.0", "header": {"event_id": "e1", "event_type": "contact.user.created_v3",
        "create_time": "1700000000000", "token": TOKEN, "app_id": crate::fake_feishu::APP_ID, "tenant_key": "tk"},
        "event": {"object": {"open_id": "ou_0230", "union_id": "on_0230", "department_ids": ["od-new"]}}})
    .to_string();
    assert_eq!(send(&created, None).0, 403, "unsigned");
    assert_eq!(send(&created, Some("n2")).0, 403, "signed over another nonce");
    assert_eq!(send(&created, Some("n1")), (200, r#"{"msg":"success"}"#.to_owned()));
    let runs = d.wait_runs("the event's run", Duration::from_secs(60), |r| finished(r) == 2);
    assert_eq!(crate::daemon::trigger_and_status(&runs[0]), ("event user:on_0230", "succeeded"), "{runs:#?}");
    let hire = scim.user_by_name("u230").expect("the new hire is there");
    let team = scim.groups().into_iter().find(|g| g["displayName"] == "New Team").expect("with its department");
    assert!(team["members"].as_array().unwrap().iter().any(|m| m["value"] == hire["id"]));
    // Feishu pushes again when unsure of delivery, with the same event_id: not acted on again.
    assert_eq!(send(&created, Some("n1")), (200, r#"{"msg":"success"}"#.to_owned()));
    assert_eq!(d.metric("orgsync_events_total{source=\"feishu\",outcome=\"duplicate\"}"), 1.0);
    assert_eq!(d.metric("orgsync_events_total{source=\"feishu\",outcome=\"refused\"}"), 2.0);
    assert_eq!(d.metric("orgsync_events_total{source=\"feishu\",outcome=\"accepted\"}"), 1.0);
    let log = d.log();
    assert!(!log.contains(TOKEN) && !log.contains(KEY), "a secret in the log");
    assert_eq!(fake.unexpected(), Vec::<String>::new());
}

/// With `roots` below the top, a user read by id is what a whole read
/// under those roots lists: one in a department outside them is not
/// synced, and no department above or beside the roots is created.
#[test]
fn feishu_a_user_read_by_id_outside_the_roots_is_not_synced() {
    let env = Env::new();
    let scim = Scim::in_process();
    let fake = FakeFeishu::start(org());
    feishu_config(&env, &scim, &fake, APP_SECRET, "roots = [\"od-1\"]\n");
    assert_eq!(env.sync(&[]).code, 0);
    let groups_before = scim.groups().len();
    {
        let mut w = fake.world.lock().unwrap();
        w.departments.push(("od-new".into(), "od-1".into(), "New Team".into(), 0));
        w.users.push(crate::fake_feishu::user(230, vec!["od-new".into()], 0));
        w.users.push(crate::fake_feishu::user(231, vec!["od-2-0".into()], 0));
    }
    let r = env.sync(&["--only", "user:on_0230", "--only", "user:on_0231"]);
    assert!(r.code == 0 || r.code == 3, "{}{}", r.stdout, r.stderr);
    assert!(scim.user_by_name("u230").is_some(), "under the root: synced");
    assert!(scim.user_by_name("u231").is_none(), "outside the roots: not listed by a whole read, not synced");
    let names: Vec<String> = scim.groups().iter().map(|g| g["displayName"].as_str().unwrap().to_owned()).collect();
    assert_eq!(names.len(), groups_before + 1, "only New Team: {names:?}");
    assert!(names.contains(&"New Team".to_owned()) && !names.iter().any(|n| n == "Dept 1" || n.starts_with("Dept 2")), "{names:?}");
    // A whole run agrees: nothing to do.
    assert!(env.sync(&["--dry-run"]).stdout.contains("Nothing to do"));
}

/// `[source.events]` over the long connection (no public URL): the
/// endpoint request with the app's credentials, the WebSocket with its
/// device and service ids, pings at the interval the server gives, and
/// each event (whole, or in parts) acknowledged with its own frame and
/// `{"code":200}`, then run by id: a hire into a new department, a leaver
/// (Feishu keeps resigned users: read by id, disabled). A redelivered event
/// is not acted on again; nothing is listed.
#[test]
fn feishu_long_connection_events_are_acknowledged_and_synced_by_id() {
    use crate::daemon::{Daemon, finished, trigger_and_status};
    use serde_json::json;
    use std::time::Duration;
    let env = Env::new();
    let scim = Scim::in_process();
    let mut world = org();
    world.long.ping_interval = Some(5);
    let fake = FakeFeishu::start_with_long_connection(world);
    let port = crate::harness::free_port();
    std::fs::write(env.path("app-secret"), format!("{APP_SECRET}\n")).unwrap();
    let source = format!(
        "kind = \"feishu\"\nbase_url = \"{}\"\napp_id = \"{}\"\napp_secret_file = \"app-secret\"\n[source.events]\nwindow = \"100ms\"\n",
        fake.base,
        crate::fake_feishu::APP_ID
    );
    env.scim_config_with_source(
        &scim,
        &source,
        &format!(
            "[policy.users]\ntarget_only = \"disable\"\n[schedule]\nmode = \"manual\"\nrun_on_start = true\n\
             [daemon]\nlisten = \"127.0.0.1:{port}\"\n"
        ),
    );
    let d = Daemon::start(&env, port);
    d.wait_runs("the first run", Duration::from_secs(60), |r| finished(r) == 1);
    fake.wait_connections(1, "the long connection");
    let service = crate::fake_feishu::SERVICE_ID;
    wait_until(|| fake.frames().iter().any(|f| f.method == 0 && f.header("type") == Some("ping") && f.service == service), "a ping");
    let listed = fake.count("children") + fake.count("users ");
    let acked = |id: &str| {
        fake.frames().into_iter().find(|f| f.method == 1 && f.header("message_id") == Some(id)).map(|f| {
            assert!(f.header("biz_rt").is_some(), "the answer says how long it took");
            serde_json::from_slice::<serde_json::Value>(&f.payload.unwrap()).unwrap()
        })
    };
    let event = |event_id: &str, event_type: &str, object: serde_json::Value| {
        json!({"schema": "2.0", "header": {"event_id": event_id, "event_type": event_type, "create_time": "1700000000000",
            "token": "", "app_id": crate::fake_feishu::APP_ID, "tenant_key": "tk"}, "event": {"object": object}})
    };

    {
        let mut w = fake.world.lock().unwrap();
        w.departments.push(("od-new".into(), "od-1".into(), "New Team".into(), 0));
        w.users.push(crate::fake_feishu::user(230, vec!["od-new".into()], 0));
    }
    let hire =
        event("ev-hire", "contact.user.created_v3", json!({"open_id": "ou_0230", "union_id": "on_0230", "department_ids": ["od-new"]}));
    let id = fake.push_event(&hire, 3);
    wait_until(|| acked(&id).is_some(), "the hire's acknowledgement");
    assert_eq!(acked(&id).unwrap()["code"], 200);
    let runs = d.wait_runs("the hire's run", Duration::from_secs(60), |r| finished(r) == 2);
    assert_eq!(trigger_and_status(&runs[0]), ("event user:on_0230", "succeeded"), "{runs:#?}");
    let hire_account = scim.user_by_name("u230").expect("the new hire is there");
    let team = scim.groups().into_iter().find(|g| g["displayName"] == "New Team").expect("with its department");
    assert!(team["members"].as_array().unwrap().iter().any(|m| m["value"] == hire_account["id"]));

    // A leaver: resigned, out of every department; read by id, disabled.
    {
        let mut w = fake.world.lock().unwrap();
        w.users[7]["status"]["is_resigned"] = true.into();
        w.users[7]["department_ids"] = json!([]);
    }
    let left =
        event("ev-left", "contact.user.deleted_v3", json!({"open_id": "ou_0007", "union_id": "on_0007", "status": {"is_resigned": true}}));
    fake.push_event(&left, 1);
    let runs = d.wait_runs("the leaver's run", Duration::from_secs(60), |r| finished(r) == 3);
    assert_eq!(trigger_and_status(&runs[0]), ("event user:on_0007", "succeeded"), "{runs:#?}");
    assert_eq!(scim.user_by_name("u7").unwrap()["active"], false);
    // Pushed again (same event_id): acknowledged, not acted on again.
    let again = fake.push_event(&left, 1);
    wait_until(|| acked(&again).is_some(), "the redelivery's acknowledgement");
    assert_eq!(d.metric("orgsync_events_total{source=\"feishu\",outcome=\"duplicate\"}"), 1.0);
    assert_eq!(fake.count("children") + fake.count("users "), listed, "events are read by id: no list request since the first run");
    assert_eq!(d.status()["event_stream"]["connected"], true);
    assert_eq!(fake.world.lock().unwrap().long.socket.connections, 1, "pongs keep the one connection open");

    // An event during a full run is acknowledged at once; its run waits for the full run.
    let stall = fake.world.lock().unwrap().stall.clone();
    stall.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(d.post_sync("", None).0, 202);
    wait_until(|| d.status()["run_in_progress"] == true, "the full run");
    fake.world.lock().unwrap().users[9]["name"] = json!("Changed Nine");
    let id = fake.push_event(&event("ev-nine", "contact.user.updated_v3", json!({"union_id": "on_0009"})), 1);
    wait_until(|| acked(&id).is_some(), "the acknowledgement, during the run");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(finished(&d.status()["runs"].as_array().unwrap().clone()), 3, "the event's run has not started beside the full run");
    stall.store(false, std::sync::atomic::Ordering::SeqCst);
    let runs = d.wait_runs("the full run, then the event's", Duration::from_secs(60), |r| finished(r) == 5);
    assert_eq!(trigger_and_status(&runs[1]), ("http", "succeeded"), "{runs:#?}");
    assert_eq!(trigger_and_status(&runs[0]), ("event user:on_0009", "succeeded"), "{runs:#?}");
    assert!(runs[0]["started_at"].as_str() >= runs[1]["finished_at"].as_str(), "never overlapping: {runs:#?}");
    assert_eq!(scim.user_by_name("u9").unwrap()["displayName"], "Changed Nine");
    let log = d.log();
    assert!(!log.contains(APP_SECRET), "a secret in the log");
    assert_eq!(fake.unexpected(), Vec::<String>::new());
}

fn wait_until(f: impl Fn() -> bool, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
