//! Source `welink` through the binary, against the fake WeLink open platform
//! (tests/it/fake_welink.rs) and a real scim2-server.

use crate::fake_welink::{CLIENT_ID, CLIENT_SECRET, FakeWeLink, org};
use crate::harness::{Env, Scim};

fn welink_config(env: &Env, scim: &Scim, fake: &FakeWeLink, secret: &str, extra: &str, policy: &str) {
    std::fs::write(env.path("client-secret"), format!("{secret}\n")).unwrap();
    let source = format!(
        "kind = \"welink\"\nbase_url = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret_file = \"client-secret\"\n{extra}",
        fake.base
    );
    env.scim_config_with_source(scim, &source, policy);
}

fn message(env: &Env) -> String {
    env.status_json()["runs"][0]["message"].as_str().unwrap().to_owned()
}

#[test]
fn welink_full_sync_three_levels_deep_then_a_move_and_a_closed_account() {
    let env = Env::new();
    let scim = Scim::in_process();
    let fake = FakeWeLink::start(org());
    welink_config(&env, &scim, &fake, CLIENT_SECRET, "", "");

    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(fake.unexpected(), Vec::<String>::new());
    assert_eq!(scim.users().len(), 167, "every page of every department, each user once; the 3 never active are not created");
    assert_eq!(fake.count("users 1022 page"), 3, "the big department: 130 members in pages of 50");
    let groups = scim.groups();
    assert_eq!(groups.len(), 22);
    let u0 = scim.user_by_name("user0@welink").unwrap();
    assert_eq!(u0["displayName"], "用户0");
    assert_eq!(u0["phoneNumbers"][0]["value"], "+8615800000000", "E.164");
    assert_eq!(u0["emails"][0]["value"], "user0@example.test");
    let ext = &u0["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"];
    assert_eq!((ext["employeeNumber"].as_str(), ext["department"].as_str()), (Some("36000"), Some("部门0")));
    // Status "3" is active; "1" (not opened), "2" (opening) and "4" (closed) are not, and are not created.
    assert_eq!(scim.user_by_name("user3@welink").unwrap()["active"], true);
    for name in ["user1@welink", "user2@welink", "user4@welink"] {
        assert!(scim.user_by_name(name).is_none(), "{name}");
    }
    // user0 is in two departments: a member of both groups.
    let id0 = u0["id"].as_str().unwrap();
    let holding: Vec<&str> = groups
        .iter()
        .filter(|g| g["members"].as_array().into_iter().flatten().any(|m| m["value"] == id0))
        .filter_map(|g| g["externalId"].as_str())
        .collect();
    assert_eq!(holding.len(), 2, "{holding:?}");
    assert!(!r.stderr.contains(CLIENT_SECRET) && !r.stdout.contains("wlk-0"), "a secret or token leaked");

    // Move 部门0.0.0 under 部门2; close user 7's account.
    {
        let mut w = fake.world.lock().unwrap();
        let under = w.departments.iter().find(|d| d.2 == "部门2").unwrap().0.clone();
        w.departments.iter_mut().find(|d| d.2 == "部门0.0.0").unwrap().1 = under;
        w.users[7].0["userStatus"] = serde_json::json!("4");
    }
    let writes = scim.writes().len();
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(!scim.writes()[writes..].iter().any(|(m, _, _)| m == "POST"), "nothing recreated");
    assert_eq!(scim.user_by_name("user7@welink").unwrap()["active"], false, "a closed account is pushed inactive");
    assert!(env.sync(&["--dry-run"]).stdout.contains("Nothing to do"));
    assert_eq!(fake.unexpected(), Vec::<String>::new());
}

#[test]
fn welink_token_expired_mid_fetch_and_throttling_recover_within_the_rate() {
    let env = Env::new();
    let scim = Scim::in_process();
    let mut world = org();
    world.common.knobs.revoke_after = Some(9);
    world.common.knobs.throttle_every = Some(7);
    let fake = FakeWeLink::start(world);
    welink_config(&env, &scim, &fake, CLIENT_SECRET, "rate_limit = 20\n", "");
    let r = env.sync(&["--dry-run"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("189 operations"), "22 departments and 167 active users: {}", r.stdout);
    assert_eq!(fake.count("token"), 2, "one refresh after the token expired");
    assert!(fake.peak_per_second() <= 21, "rate_limit 20/s exceeded: {}", fake.peak_per_second());
    assert_eq!(fake.unexpected(), Vec::<String>::new());
}

#[test]
fn welink_a_failure_on_page_2_fails_the_run_with_zero_writes() {
    let env = Env::new();
    let scim = Scim::in_process();
    let mut world = org();
    world.common.knobs.fail_page = Some(("1022".into(), 2));
    let fake = FakeWeLink::start(world);
    welink_config(&env, &scim, &fake, CLIENT_SECRET, "max_retries = 1\n", "[policy.users]\ntarget_only = \"delete\"\n");
    let r = env.sync(&[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(scim.writes().is_empty(), "{:?}", scim.writes());
    let msg = message(&env);
    assert!(msg.contains("WeLink /api/contact/v1/user/users") && msg.contains("HTTP 500"), "{msg}");
    assert_eq!(fake.count("users 1022 page 2"), 2, "retried once");
}

#[test]
fn welink_a_wrong_secret_fails_naming_the_key_and_a_locked_client_is_not_retried() {
    let env = Env::new();
    let scim = Scim::in_process();
    let mut world = org();
    world.lock_after = Some(2);
    let fake = FakeWeLink::start(world);
    welink_config(&env, &scim, &fake, "wrong-secret", "", "");
    let r = env.sync(&[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let msg = message(&env);
    assert!(msg.contains("code 10007") && msg.contains("source.client_secret"), "{msg}");
    for text in [&msg, &r.stdout, &r.stderr] {
        assert!(!text.contains("wrong-secret"), "the secret leaked: {text}");
    }
    assert_eq!(fake.count("token refused"), 1, "a wrong secret is not retried");
    assert_eq!(env.sync(&[]).code, 1);
    // Locked now: the right secret is refused too, once, and said so.
    welink_config(&env, &scim, &fake, CLIENT_SECRET, "", "");
    let r = env.sync(&[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let msg = message(&env);
    assert!(msg.contains("code 41403") && msg.contains("not retried"), "{msg}");
    assert_eq!(fake.count("token refused"), 3);
    assert!(scim.writes().is_empty());
}

#[test]
fn welink_unreadable_user_records_are_invalid_items_and_nobody_is_disabled() {
    let env = Env::new();
    let scim = Scim::in_process();
    let fake = FakeWeLink::start(org());
    welink_config(&env, &scim, &fake, CLIENT_SECRET, "", "[policy.users]\ntarget_only = \"disable\"\n");
    assert_eq!(env.sync(&[]).code, 0);
    let active = scim.users().iter().filter(|u| u["active"] == true).count();
    {
        let mut w = fake.world.lock().unwrap();
        w.users[5].0.as_object_mut().unwrap().remove("userId");
        w.users[6].0["userEmail"] = serde_json::json!(["not", "text"]);
    }
    let r = env.sync(&[]);
    crate::harness::assert_unreadable_records_change_nothing(&env, &scim, &r, active);
}

/// `[scope] include_departments` naming a department below the top: it is a
/// root of the synced forest, with its subtree and every member in it.
#[test]
fn welink_an_included_department_below_the_top_is_a_root_with_its_subtree() {
    let env = Env::new();
    let fake = FakeWeLink::start(org());
    std::fs::write(env.path("client-secret"), format!("{CLIENT_SECRET}\n")).unwrap();
    let world = org();
    let subtree: Vec<String> =
        world.departments.iter().filter(|d| d.2 == "部门1.0" || d.2.starts_with("部门1.0.")).map(|d| d.0.clone()).collect();
    let users = world.users.iter().filter(|(_, ds)| ds.iter().any(|d| subtree.contains(d))).count();
    assert!(users > 0);
    let source =
        format!("kind = \"welink\"\nbase_url = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret_file = \"client-secret\"\n", fake.base);
    crate::harness::sync_scoped_to(&env, &source, &subtree[0], "部门1.0", &["部门1.0.0", "部门1.0.1"], users);
    assert_eq!(fake.unexpected(), Vec::<String>::new());
}

/// `orgsync explain` and `sync --only` read one user by `users?userId=`;
/// WeLink has no one-department call, so the department tree is listed,
/// never the members.
#[test]
fn welink_explains_and_syncs_one_user_by_id() {
    let env = Env::new();
    let scim = Scim::in_process();
    let fake = FakeWeLink::start(org());
    welink_config(&env, &scim, &fake, CLIENT_SECRET, "[scope]\nexclude_users = [\"user8@welink\"]\n", "");
    let add_hire = || {
        let mut w = fake.world.lock().unwrap();
        w.departments.push(("1900".into(), "1001".into(), "New Team".into(), 0));
        w.users.push((crate::fake_welink::user(900, "1900", "3"), vec!["1900".into()]));
    };
    let rename = || fake.world.lock().unwrap().users[7].0["userNameCn"] = "Renamed Seven".into();
    let members = || fake.count("users");
    let sent = crate::explain::check(&crate::explain::Case {
        env: &env,
        scim: &scim,
        bound: ("user7@welink", "user7@welink"),
        excluded: "user8@welink",
        hire: ("user900@welink", "user900@welink", "New Team"),
        renamed: "Renamed Seven",
        add_hire: &add_hire,
        rename: &rename,
        requests: &|| Some(fake.count("")),
    });
    // A token, the user, the top level and each top department's subtree.
    crate::explain::read_by_id(&env, "user900@welink", (sent, 7), Some(7), ("corpUserId", "36900"), &members);
    assert_eq!(fake.unexpected(), Vec::<String>::new());
}

/// `[source.events]`: WeLink's callback (AES-GCM, the client secret the
/// key, the timestamp within 30 minutes). The `test` event and every event
/// are answered with the encrypted success echoing the timestamp; a hire
/// is a run of the user it names, read by id; another key, a stale
/// timestamp or a plain body is refused; a redelivery is not acted on again.
#[test]
fn welink_events_are_decrypted_checked_and_synced_alone() {
    use crate::daemon::{Daemon, finished, trigger_and_status};
    use orgsync::sources::welink::events::Callback;
    use serde_json::json;
    use std::time::Duration;
    let env = Env::new();
    let scim = Scim::in_process();
    let fake = FakeWeLink::start(org());
    let port = crate::harness::free_port();
    welink_config(
        &env,
        &scim,
        &fake,
        CLIENT_SECRET,
        "[source.events]\nwindow = \"0s\"\n",
        &format!("[schedule]\nmode = \"manual\"\nrun_on_start = true\n[daemon]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let d = Daemon::start(&env, port);
    d.wait_runs("the first run", Duration::from_secs(60), |r| finished(r) == 1);
    let welink = Callback::new(CLIENT_SECRET).unwrap();
    let http = reqwest::blocking::Client::new();
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let send = |c: &Callback, event: serde_json::Value| {
        let r = http.post(d.url("/events/welink")).json(&json!({ "encrypt": c.seal(&event.to_string(), [6; 16]) })).send().unwrap();
        (r.status().as_u16(), r.json::<serde_json::Value>().unwrap_or_default())
    };
    let ts = now().to_string();
    let (code, answer) = send(&welink, json!({"eventType": "test", "timestamp": ts}));
    assert_eq!(code, 200);
    let opened: serde_json::Value = serde_json::from_str(&welink.open(answer["encrypt"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(opened, json!({"msg": "success", "timestamp": ts}));
    let other = Callback::new("another-key-of-thirty-two-chars!").unwrap();
    assert_eq!(send(&other, json!({"eventType": "test", "timestamp": ts})).0, 403, "another key");
    let stale = (now() - 3600).to_string();
    assert_eq!(send(&welink, json!({"eventType": "userChange", "timestamp": stale, "userId": "user7@welink"})).0, 403, "stale");
    let plain = http.post(d.url("/events/welink")).json(&json!({"eventType": "test"})).send().unwrap();
    assert_eq!(plain.status().as_u16(), 403, "not encrypted");

    {
        let mut w = fake.world.lock().unwrap();
        w.departments.push(("1900".into(), "1001".into(), "New Team".into(), 0));
        w.users.push((crate::fake_welink::user(900, "1900", "3"), vec!["1900".into()]));
    }
    let (listed, read) = (fake.count("users"), fake.count("user "));
    let hire = json!({"eventType": "userAdd", "timestamp": now().to_string(), "userId": "user900@welink"});
    assert_eq!(send(&welink, hire.clone()).0, 200);
    let runs = d.wait_runs("the hire's run", Duration::from_secs(60), |r| finished(r) == 2);
    assert_eq!(trigger_and_status(&runs[0]), ("event user:user900@welink", "succeeded"), "{runs:#?}");
    assert!(scim.user_by_name("user900@welink").is_some());
    assert_eq!(send(&welink, hire).0, 200, "a redelivery is answered");
    assert_eq!(d.metric("orgsync_events_total{source=\"welink\",outcome=\"duplicate\"}"), 1.0);
    assert_eq!(d.metric("orgsync_events_total{source=\"welink\",outcome=\"refused\"}"), 3.0);
    assert_eq!((fake.count("users"), fake.count("user ")), (listed, read + 1), "one user read by id, no member list");
    assert!(!d.log().contains(CLIENT_SECRET), "a secret in the log");
    assert_eq!(fake.unexpected(), Vec::<String>::new());
}
