//! Source `dingtalk` through the binary, against the fake DingTalk oapi
//! (tests/it/fake_dingtalk.rs) and a real scim2-server.

use crate::fake_dingtalk::{APP_KEY, APP_SECRET, FakeDingTalk, ID_BASE, org};
use crate::harness::{Env, Scim};

fn dingtalk_config(env: &Env, scim: &Scim, fake: &FakeDingTalk, secret: &str, extra: &str, policy: &str) {
    std::fs::write(env.path("app-secret"), format!("{secret}\n")).unwrap();
    let source = format!(
        "kind = \"dingtalk\"\nbase_url = \"{}\"\napp_key = \"{APP_KEY}\"\napp_secret_file = \"app-secret\"\nagent_id = \"3001\"\n{extra}",
        fake.base
    );
    env.scim_config_with_source(scim, &source, policy);
}

fn message(env: &Env) -> String {
    env.status_json()["runs"][0]["message"].as_str().unwrap().to_owned()
}

#[test]
fn dingtalk_full_sync_three_levels_deep_then_a_move_and_a_leaver() {
    let env = Env::new();
    let scim = Scim::in_process();
    let fake = FakeDingTalk::start(org());
    dingtalk_config(&env, &scim, &fake, APP_SECRET, "", "[policy.users]\ntarget_only = \"disable\"\n");

    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(fake.unexpected(), Vec::<String>::new());
    assert_eq!(scim.users().len(), 270, "every page of every department, each user once");
    let groups = scim.groups();
    assert_eq!(groups.len(), 31);
    let first = ID_BASE.to_string();
    assert!(groups.iter().any(|g| g["externalId"].as_str() == Some(first.as_str())), "int64 ids kept exactly: {groups:?}");
    let u5 = scim.user_by_name("dt5").unwrap();
    let ext = &u5["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"];
    assert_eq!(ext["department"], "Dept 0.1.1", "the primary is the first by department order: {u5}");
    assert_eq!(ext["employeeNumber"], "J5");
    assert_eq!(u5["emails"][0]["value"], "dt5@example.test", "the organisation email");
    assert!(!r.stderr.contains(APP_SECRET) && !r.stdout.contains("dtfake"), "a secret or token leaked");

    // Move a leaf under another branch; user 8 leaves (DingTalk lists drop leavers).
    {
        let mut w = fake.world.lock().unwrap();
        w.departments[2].1 = w.departments[20].0;
        w.users.retain(|u| u["userid"] != "dt8");
    }
    let writes = scim.writes().len();
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(!scim.writes()[writes..].iter().any(|(m, _, _)| m == "POST"), "nothing recreated");
    assert_eq!(scim.user_by_name("dt8").unwrap()["active"], false, "the leaver is disabled, as the policy says");
    assert!(env.sync(&["--dry-run"]).stdout.contains("Nothing to do"));
}

#[test]
fn dingtalk_token_revoked_mid_fetch_and_throttling_recover_within_the_rate() {
    let env = Env::new();
    let scim = Scim::in_process();
    let mut world = org();
    world.common.knobs.revoke_after = Some(10);
    world.common.knobs.throttle_every = Some(15);
    let fake = FakeDingTalk::start(world);
    dingtalk_config(&env, &scim, &fake, APP_SECRET, "rate_limit = 15\n", "");
    let r = env.sync(&["--dry-run"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("301 operations"), "31 departments and 270 users: {}", r.stdout);
    assert_eq!(fake.count("token"), 2, "one refresh after the token was revoked");
    assert!(fake.peak_per_second() <= 16, "rate_limit 15/s exceeded: {}", fake.peak_per_second());
    assert_eq!(fake.unexpected(), Vec::<String>::new());
}

#[test]
fn dingtalk_a_failure_on_page_3_fails_the_run_with_zero_writes() {
    let env = Env::new();
    let scim = Scim::in_process();
    let world = org();
    let big = world.departments.last().unwrap().0.to_string();
    let mut world = world;
    world.common.knobs.fail_page = Some((big.clone(), 3));
    let fake = FakeDingTalk::start(world);
    dingtalk_config(&env, &scim, &fake, APP_SECRET, "max_retries = 1\n", "");
    let r = env.sync(&[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(scim.writes().is_empty(), "{:?}", scim.writes());
    let msg = message(&env);
    assert!(msg.contains("DingTalk /topapi/v2/user/list") && msg.contains("HTTP 500"), "{msg}");
    assert_eq!(fake.count(&format!("users {big} page 3")), 2, "retried once");
}

#[test]
fn dingtalk_wrong_credentials_and_an_ip_ban_fail_with_the_code_and_what_to_check() {
    let env = Env::new();
    let scim = Scim::in_process();
    let fake = FakeDingTalk::start(org());
    dingtalk_config(&env, &scim, &fake, "wrong-secret", "", "");
    let r = env.sync(&[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let msg = message(&env);
    assert!(msg.contains("code 40096") && msg.contains("check source.app_key and source.app_secret"), "{msg}");
    assert!(!msg.contains("wrong-secret") && !r.stderr.contains("wrong-secret"));

    fake.world.lock().unwrap().ip_banned = true;
    dingtalk_config(&env, &scim, &fake, APP_SECRET, "", "");
    let r = env.sync(&[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let msg = message(&env);
    assert!(msg.contains("code 1111") && msg.contains("lower source.rate_limit"), "{msg}");
    assert_eq!(fake.count("listsubid"), 1, "a ban is not retried (that would extend it)");
    assert!(scim.writes().is_empty());
}

#[test]
fn dingtalk_a_repeating_cursor_fails_the_fetch_naming_the_endpoint() {
    let env = Env::new();
    let scim = Scim::in_process();
    let mut world = org();
    world.common.knobs.repeat_cursor = true;
    let fake = FakeDingTalk::start(world);
    dingtalk_config(&env, &scim, &fake, APP_SECRET, "", "");
    let r = env.sync(&[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(scim.writes().is_empty(), "{:?}", scim.writes());
    let msg = message(&env);
    assert!(msg.contains("DingTalk /topapi/v2/user/list") && msg.contains("came a second time"), "{msg}");
}

#[test]
fn dingtalk_unreadable_user_records_are_invalid_items_and_nobody_is_disabled() {
    let env = Env::new();
    let scim = Scim::in_process();
    let fake = FakeDingTalk::start(org());
    dingtalk_config(&env, &scim, &fake, APP_SECRET, "", "[policy.users]\ntarget_only = \"disable\"\n");
    assert_eq!(env.sync(&[]).code, 0);
    let active = scim.users().iter().filter(|u| u["active"] == true).count();
    {
        let mut w = fake.world.lock().unwrap();
        w.users[4].as_object_mut().unwrap().remove("userid");
        w.users[6]["title"] = serde_json::json!({"not": "text"});
    }
    let r = env.sync(&[]);
    crate::harness::assert_unreadable_records_change_nothing(&env, &scim, &r, active);
}

/// `[scope] include_departments` with the whole organisation as `roots`:
/// only the included subtree is read (its own record too), and the result
/// is what the scope keeps.
#[test]
fn dingtalk_an_included_department_narrows_the_fetch_to_its_subtree() {
    let env = Env::new();
    let fake = FakeDingTalk::start(org());
    std::fs::write(env.path("app-secret"), format!("{APP_SECRET}\n")).unwrap();
    let world = org();
    let subtree: Vec<String> =
        world.departments.iter().filter(|d| d.2 == "Dept 1.0" || d.2.starts_with("Dept 1.0.")).map(|d| d.0.to_string()).collect();
    let source = format!("kind = \"dingtalk\"\nbase_url = \"{}\"\napp_key = \"{APP_KEY}\"\napp_secret_file = \"app-secret\"\n", fake.base);
    crate::harness::sync_scoped_to_dept_1_0(&env, &source, &subtree[0], crate::harness::users_in(&world.users, "dept_id_list", &subtree));
    assert_eq!(fake.unexpected(), Vec::<String>::new());
    // Members listed for the 3 departments of the subtree only, never for the whole organisation.
    assert_eq!(fake.count("users 1 "), 0);
    assert_eq!(fake.count("listsubid 1 "), 0);
}

/// `orgsync explain` and `sync --only` read one user by `user/get` and its
/// departments by `department/get`, never the whole organisation.
#[test]
fn dingtalk_explains_and_syncs_one_user_by_id() {
    let env = Env::new();
    let scim = Scim::in_process();
    let fake = FakeDingTalk::start(org());
    dingtalk_config(&env, &scim, &fake, APP_SECRET, "", "[scope]\nexclude_users = [\"dt6\"]\n");
    let add_hire = || {
        let mut w = fake.world.lock().unwrap();
        let new = ID_BASE + 500;
        w.departments.push((new, ID_BASE, "New Team".into(), 0));
        w.users.push(crate::fake_dingtalk::user(900, &[new]));
    };
    let rename = || fake.world.lock().unwrap().users[5]["name"] = "Renamed Five".into();
    let listings = || fake.count("listsubid") + fake.count("users");
    let sent = crate::explain::check(&crate::explain::Case {
        env: &env,
        scim: &scim,
        bound: ("dt5", "dt5"),
        excluded: "dt6",
        hire: ("dt900", "dt900", "New Team"),
        renamed: "Renamed Five",
        add_hire: &add_hire,
        rename: &rename,
        requests: &|| Some(fake.count("")),
    });
    // A token, the user, its new department and that one's parent.
    crate::explain::read_by_id(&env, "dt900", (sent, 4), Some(4), ("org_email", "dt900@example.test"), &listings);
    assert_eq!(fake.unexpected(), Vec::<String>::new());
}

/// `[source.events]` (HTTP push): the URL check and each signed, encrypted
/// event are answered with the encrypted "success"; a user_add_org is a
/// run of the new hire, a user_leave_org (user/get: 60121) disables the
/// leaver per the policy; a forged event is refused and counted.
#[test]
fn dingtalk_events_are_verified_decrypted_and_synced_alone() {
    use crate::daemon::{Daemon, finished};
    use orgsync::config::Secret;
    use orgsync::sources::dingtalk::events::Callback;
    use std::time::Duration;
    const TOKEN: &str = "dingtalk-event-token-never-logged";
    const KEY: &str = "o5fLqJ3bPq9YzK2sXwVtUr8MnLkJhGfDsA1qW2eR3tY";
    let env = Env::new();
    let scim = Scim::in_process();
    let fake = FakeDingTalk::start(org());
    let port = crate::harness::free_port();
    dingtalk_config(
        &env,
        &scim,
        &fake,
        APP_SECRET,
        &format!("[source.events]\ntoken = \"{TOKEN}\"\naes_key = \"{KEY}\"\n"),
        &format!(
            "[policy.users]\ntarget_only = \"disable\"\n[schedule]\nmode = \"manual\"\nrun_on_start = true\n\
             [daemon]\nlisten = \"127.0.0.1:{port}\"\n"
        ),
    );
    let ding = Callback::new(Secret::new(TOKEN), KEY, APP_KEY).unwrap();
    let d = Daemon::start(&env, port);
    d.wait_runs("the first run", Duration::from_secs(60), |r| finished(r) == 1);
    let http = reqwest::blocking::Client::new();
    let url = d.url("/events/dingtalk");
    let send = |plain: &str, signed: bool| {
        let encrypt = ding.seal(plain, [4; 16]);
        let sig = if signed { ding.signature("1700000000", "n1", &encrypt) } else { "0".repeat(40) };
        let r = http
            .post(&url)
            .query(&[("msg_signature", sig.as_str()), ("timestamp", "1700000000"), ("nonce", "n1")])
            .json(&serde_json::json!({ "encrypt": encrypt }))
            .send()
            .unwrap();
        let code = r.status().as_u16();
        (code, r.json::<serde_json::Value>().unwrap_or_default())
    };
    // The URL check: the encrypted "success", signed.
    let (code, answer) = send(r#"{"EventType":"check_url"}"#, true);
    assert_eq!(code, 200);
    let opened = ding.open(answer["msg_signature"].as_str().unwrap(), "1700000000", "n1", answer["encrypt"].as_str().unwrap());
    assert_eq!(opened.as_deref(), Ok("success"));
    assert_eq!(send(r#"{"EventType":"user_add_org","UserId":["dt1"]}"#, false).0, 403, "forged");

    {
        let mut w = fake.world.lock().unwrap();
        let new = ID_BASE + 500;
        w.departments.push((new, ID_BASE, "New Team".into(), 0));
        w.users.push(crate::fake_dingtalk::user(900, &[new]));
    }
    let hire = r#"{"CorpId":"ding1","EventType":"user_add_org","UserId":["dt900"],"TimeStamp":"1700000000000"}"#;
    assert_eq!(send(hire, true).0, 200);
    let runs = d.wait_runs("the event's run", Duration::from_secs(60), |r| finished(r) == 2);
    assert!(runs[0]["trigger"].as_str().unwrap().contains("(events: user_add_org "), "the run lists its event: {runs:#?}");
    assert_eq!(crate::daemon::trigger_and_status(&runs[0]), ("event user:dt900", "succeeded"), "{runs:#?}");
    assert!(scim.user_by_name("dt900").is_some());
    // The same message again (a redelivery): answered, not acted on again
    // (the leaver's run below is the next run).
    assert_eq!(send(hire, true).0, 200);
    assert_eq!(d.metric("orgsync_events_total{source=\"dingtalk\",outcome=\"duplicate\"}"), 1.0);
    fake.world.lock().unwrap().users.retain(|u| u["userid"] != "dt7");
    assert_eq!(send(r#"{"EventType":"user_leave_org","UserId":["dt7"]}"#, true).0, 200);
    let runs = d.wait_runs("the leaver's run", Duration::from_secs(60), |r| finished(r) == 3);
    assert_eq!(crate::daemon::trigger_and_status(&runs[0]), ("event user:dt7", "succeeded"), "{runs:#?}");
    assert_eq!(scim.user_by_name("dt7").unwrap()["active"], false);
    assert_eq!(d.metric("orgsync_events_total{source=\"dingtalk\",outcome=\"refused\"}"), 1.0);
    let log = d.log();
    assert!(!log.contains(TOKEN) && !log.contains(KEY), "a secret in the log");
    assert_eq!(fake.unexpected(), Vec::<String>::new());
}

/// `[source.events]` in Stream mode: the service opens the connection
/// (`connections/open`, then the WebSocket), acknowledges each frame,
/// answers pings, and runs what each contact event names, read by id:
/// a hire into a new department, a change, a move, a leaver, each with no
/// list request. A redelivered event is acknowledged and not acted on; an
/// event about someone out of scope writes nothing. When the stream drops
/// and the gateway refuses to reopen it, /readyz, /status and the metric
/// say so; once back, a full run catches the change missed meanwhile.
#[test]
fn dingtalk_stream_events_reach_the_target_read_by_id() {
    use crate::daemon::{Daemon, finished, trigger_and_status};
    use serde_json::json;
    use std::time::Duration;
    let env = Env::new();
    let scim = Scim::in_process();
    let fake = FakeDingTalk::start_with_stream(org());
    let port = crate::harness::free_port();
    dingtalk_config(
        &env,
        &scim,
        &fake,
        APP_SECRET,
        &format!("[source.events]\ngateway_url = \"{}\"\nwindow = \"200ms\"\n", fake.base),
        &format!(
            "[policy.users]\ntarget_only = \"disable\"\n[scope]\nexclude_users = [\"dt3\"]\n\
             [schedule]\nmode = \"manual\"\nrun_on_start = true\n[daemon]\nlisten = \"127.0.0.1:{port}\"\n"
        ),
    );
    let d = Daemon::start(&env, port);
    d.wait_runs("the first run", Duration::from_secs(60), |r| finished(r) == 1);
    fake.wait_connections(1, "the stream");
    assert_eq!(d.get("/readyz").0, 200);
    assert_eq!(d.status()["event_stream"]["connected"], true);

    // A ping's data is echoed.
    let ping = fake.system_frame("ping", r#"{"opaque":"p-1"}"#);
    assert!(fake.push_frame(&ping));
    let id = ping["headers"]["messageId"].as_str().unwrap().to_owned();
    let ack = wait_for(|| fake.ack_of(&id), "the ping's answer");
    assert_eq!((ack["code"].as_u64(), ack["data"].as_str()), (Some(200), Some(r#"{"opaque":"p-1"}"#)));

    let lists = |fake: &FakeDingTalk| fake.count("listsubid") + fake.count("users ");
    let listed = lists(&fake);
    let mut runs_so_far = 1;
    let mut event = |event_id: &str, event_type: &str, data: serde_json::Value, what: &str| {
        let frame = fake.event_frame(event_id, event_type, &data);
        assert!(fake.push_frame(&frame));
        let message = frame["headers"]["messageId"].as_str().unwrap().to_owned();
        let ack = wait_for(|| fake.ack_of(&message), "the event's acknowledgement");
        assert_eq!((ack["code"].as_u64(), ack["data"].as_str()), (Some(200), Some(r#"{"message":"success","status":"SUCCESS"}"#)));
        runs_so_far += 1;
        let runs = d.wait_runs(what, Duration::from_secs(60), |r| finished(r) == runs_so_far);
        let named = format!(
            "event {}",
            data.get("userId").map_or_else(|| format!("department:{}", data["deptId"][0]), |u| format!("user:{}", u[0].as_str().unwrap()))
        );
        assert_eq!(trigger_and_status(&runs[0]), (named.as_str(), "succeeded"), "{what}: {runs:#?}");
        frame
    };

    // A hire into a department not yet bound: the department comes first.
    let new = ID_BASE + 500;
    {
        let mut w = fake.world.lock().unwrap();
        w.departments.push((new, ID_BASE, "New Team".into(), 0));
        w.users.push(crate::fake_dingtalk::user(900, &[new]));
    }
    event("ev-hire", "user_add_org", json!({"timeStamp": "1", "userId": ["dt900"], "optStaffId": "m"}), "the hire");
    let hire = scim.user_by_name("dt900").expect("the new hire is there");
    let team = scim.groups().into_iter().find(|g| g["displayName"] == "New Team").expect("with its department");
    assert!(team["members"].as_array().unwrap().iter().any(|m| m["value"] == hire["id"]));

    // A change, and a move to the new department.
    {
        let mut w = fake.world.lock().unwrap();
        let u = w.users.iter_mut().find(|u| u["userid"] == "dt5").unwrap();
        u["name"] = json!("Renamed Five");
        u["dept_id_list"] = json!([new]);
    }
    event("ev-change", "user_modify_org", json!({"timeStamp": "2", "userId": ["dt5"], "diffInfo": []}), "the change");
    let five = scim.user_by_name("dt5").unwrap();
    assert_eq!(five["displayName"], "Renamed Five", "{five}");
    let team = scim.groups().into_iter().find(|g| g["displayName"] == "New Team").unwrap();
    assert!(team["members"].as_array().unwrap().iter().any(|m| m["value"] == five["id"]), "moved: {team}");

    // A leaver (user/get: 60121), disabled per the policy; its redelivery is not acted on.
    fake.world.lock().unwrap().users.retain(|u| u["userid"] != "dt7");
    let leaver = event("ev-leave", "user_leave_org", json!({"timeStamp": "3", "userId": ["dt7"]}), "the leaver");
    assert_eq!(scim.user_by_name("dt7").unwrap()["active"], false);
    let mut again = leaver.clone();
    again["headers"]["messageId"] = json!("msg-redelivered");
    assert!(fake.push_frame(&again));
    wait_for(|| fake.ack_of("msg-redelivered"), "the redelivery's acknowledgement");
    assert_eq!(d.metric("orgsync_events_total{source=\"dingtalk\",outcome=\"duplicate\"}"), 1.0);

    // Someone out of scope changes: the run writes nothing.
    let writes = scim.writes().len();
    fake.world.lock().unwrap().users.iter_mut().find(|u| u["userid"] == "dt3").unwrap()["name"] = json!("Out Of Scope");
    event("ev-scope", "user_modify_org", json!({"timeStamp": "4", "userId": ["dt3"]}), "the out-of-scope change");
    assert_eq!(scim.writes().len(), writes, "no write for someone out of scope");
    assert!(scim.user_by_name("dt3").is_none());
    assert_eq!(lists(&fake), listed, "events are read by id: no list request since the first run");

    // The stream drops and the gateway is down: said everywhere.
    {
        let mut w = fake.world.lock().unwrap();
        w.stream.socket.refuse_open = true;
        w.users.push(crate::fake_dingtalk::user(901, &[new]));
    }
    fake.drop_socket();
    wait_for(|| (d.get("/readyz").0 == 503).then_some(()), "/readyz saying the stream is down");
    assert!(d.get("/readyz").1.contains("dingtalk event stream is down"), "{}", d.get("/readyz").1);
    assert_eq!(d.status()["event_stream"]["connected"], false);
    assert_eq!(d.metric("orgsync_event_stream_up{source=\"dingtalk\"}"), 0.0);
    let opens = fake.count("stream open");
    wait_for(|| (fake.count("stream open") >= opens + 2).then_some(()), "another attempt after a wait");
    // Back: reconnected, ready; a full run catches what no event said.
    fake.world.lock().unwrap().stream.socket.refuse_open = false;
    fake.wait_connections(2, "the stream again");
    wait_for(|| (d.get("/readyz").0 == 200).then_some(()), "/readyz ready again");
    assert_eq!(d.metric("orgsync_event_stream_up{source=\"dingtalk\"}"), 1.0);
    assert_eq!(d.status()["event_stream"]["reconnects"], 1);
    assert!(scim.user_by_name("dt901").is_none());
    assert_eq!(d.post_sync("", None).0, 202);
    let runs = d.wait_runs("the full run", Duration::from_secs(60), |r| finished(r) == runs_so_far + 1);
    assert_eq!(trigger_and_status(&runs[0]), ("http", "succeeded"), "{runs:#?}");
    assert!(scim.user_by_name("dt901").is_some(), "the full run catches what was missed");
    assert!(d.metric("orgsync_source_requests_total{outcome=\"ok\",run=\"event\"}") >= 4.0);
    let log = d.log();
    assert!(!log.contains(APP_SECRET), "a secret in the log");
    assert_eq!(fake.unexpected(), Vec::<String>::new());
}

/// Poll `f` until it gives a value (at most two minutes).
fn wait_for<T>(f: impl Fn() -> Option<T>, what: &str) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
