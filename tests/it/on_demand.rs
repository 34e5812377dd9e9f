//! `orgsync sync --only`: one object now, with what it needs, under the
//! same policies and guard; nothing else is written.

use crate::harness::{Env, org};
use serde_json::{Value, json};

fn setup(policy: &str) -> (Env, Value) {
    let env = Env::new();
    std::fs::write(
        env.path("orgsync.toml"),
        format!(
            "state_dir = \"state\"\n[source]\nkind = \"file\"\npath = \"org.json\"\n\
             [target]\nkind = \"file\"\npath = \"out.json\"\n{policy}"
        ),
    )
    .unwrap();
    let doc = org(3, 6);
    env.write_org(&doc);
    assert_eq!(env.sync(&[]).code, 0);
    (env, doc)
}

fn target(env: &Env) -> Value {
    serde_json::from_slice(&std::fs::read(env.path("out.json")).unwrap()).unwrap()
}

fn user<'a>(t: &'a Value, username: &str) -> Option<&'a Value> {
    t["users"].as_array().unwrap().iter().find(|u| u["username"] == username)
}

#[test]
fn a_new_hire_synced_alone_arrives_with_its_new_department_and_nothing_else_changes() {
    let (env, mut doc) = setup("");
    // A new department with a new hire in it, and a rename elsewhere.
    doc["departments"].as_array_mut().unwrap().push(json!({"id": "d9", "parent_id": "d1", "name": "Labs"}));
    doc["users"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "u9", "username": "hire", "email": "hire@example.test", "department_ids": ["d9"]}));
    doc["users"][0]["name"] = "Renamed".into();
    env.write_org(&doc);
    let r = env.sync(&["--only", "user:u9"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let t = target(&env);
    let labs = t["departments"].as_array().unwrap().iter().find(|d| d["name"] == "Labs").expect("its department is created");
    assert_eq!(user(&t, "hire").expect("the new hire is there")["departments"], json!([labs["id"]]));
    assert_eq!(user(&t, "user0").unwrap()["name"], "User 0", "the rename waits for a full run");
    let run = &env.status_json()["runs"][0];
    assert_eq!(run["trigger"], "on_demand user:u9");
    // The next full run does the rest, and only that.
    assert_eq!(env.sync(&[]).code, 0);
    assert_eq!(user(&target(&env), "user0").unwrap()["name"], "Renamed");
    assert_eq!(env.status_json()["runs"][0]["counts"], json!({"user.update.ok": 1}));
}

#[test]
fn a_leaver_synced_alone_is_disabled_by_the_policy_and_the_guard_still_applies() {
    let (env, mut doc) = setup("[policy.users]\ntarget_only = \"disable\"\n[policy.guard]\nmax_deletes = 1\n");
    doc["users"].as_array_mut().unwrap().retain(|u| u["id"] != "u2" && u["id"] != "u3");
    env.write_org(&doc);
    // The guard counts the removals of the objects named (the source is
    // read by id: the rest of it is not seen).
    let r = env.sync(&["--only", "user:u2", "--only", "user:u3"]);
    assert_eq!(r.code, 3, "two named leavers: more than max_deletes = 1, held back: {}{}", r.stdout, r.stderr);
    assert_eq!(user(&target(&env), "user2").unwrap()["active"], true);
    assert!(env.orgsync(&["runs", "show", "2"]).stdout.contains("held back by the deletion guard"));
    let r = env.sync(&["--only", "user:u2"]);
    assert_eq!(r.code, 0, "one is within max_deletes = 1: {}{}", r.stdout, r.stderr);
    let t = target(&env);
    assert_eq!(user(&t, "user2").unwrap()["active"], false, "disabled, per the policy");
    assert_eq!(user(&t, "user3").unwrap()["active"], true, "the other leaver waits for a full run");
    // On-demand runs together remove no more than one full run may: the
    // second leaver alone is held back too, until a full run.
    let r = env.sync(&["--only", "user:u3"]);
    assert_eq!(r.code, 3, "u2's disable counts against max_deletes = 1: {}{}", r.stdout, r.stderr);
    assert_eq!(user(&target(&env), "user3").unwrap()["active"], true);
    assert_eq!(env.sync(&["--allow-deletes", "1"]).code, 0);
    assert_eq!(user(&target(&env), "user3").unwrap()["active"], false);
}

/// A new hire whose email an account bound to someone else (not named,
/// so not read) has: that account is not taken (a whole run would see it
/// bound), and is left as it is.
#[test]
fn a_new_hire_never_takes_an_account_bound_to_someone_not_read() {
    let (env, mut doc) = setup("");
    let before = user(&target(&env), "user1").unwrap().clone();
    doc["users"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "u9", "username": "hire", "name": "New Hire", "email": "user1@example.test", "department_ids": ["d1"]}));
    env.write_org(&doc);
    let r = env.sync(&["--only", "user:u9"]);
    assert!(r.code == 0 || r.code == 3, "{}{}", r.stdout, r.stderr);
    assert_eq!(user(&target(&env), "user1").unwrap(), &before, "user1's account untouched");
}

/// A named new department under a new parent: both are created, parent first.
#[test]
fn a_new_department_synced_alone_gets_its_new_parent_first() {
    let (env, mut doc) = setup("");
    let departments = doc["departments"].as_array_mut().unwrap();
    departments.push(json!({"id": "d8", "parent_id": "d0", "name": "Research"}));
    departments.push(json!({"id": "d9", "parent_id": "d8", "name": "Labs"}));
    env.write_org(&doc);
    let r = env.sync(&["--only", "department:d9"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let t = target(&env);
    let by_name = |n: &str| t["departments"].as_array().unwrap().iter().find(|d| d["name"] == n).cloned();
    let research = by_name("Research").expect("the new parent is created");
    assert_eq!(by_name("Labs").expect("and the department")["parent"], research["id"]);
}

#[test]
fn an_unknown_object_is_an_invalid_item_and_a_bad_value_names_the_flag() {
    let (env, _) = setup("");
    let before = std::fs::read(env.path("out.json")).unwrap();
    let r = env.sync(&["--only", "user:nobody"]);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    let show = env.orgsync(&["runs", "show", "2"]);
    assert!(show.stdout.contains("not in the source, and never synced"), "{}", show.stdout);
    assert_eq!(std::fs::read(env.path("out.json")).unwrap(), before, "nothing written");
    let r = env.sync(&["--only", "person:u1"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--only \"person:u1\": expected user:<source id> or department:<source id>"), "{}", r.stderr);
}

/// `POST /sync?only=` in the service: queued like any trigger, recorded
/// as an on-demand run of the objects named; a bad value is a 400.
#[test]
fn the_service_takes_an_on_demand_request_over_http() {
    use crate::daemon::{Daemon, finished};
    use std::time::Duration;
    let env = Env::new();
    let port = crate::harness::free_port();
    std::fs::write(
        env.path("orgsync.toml"),
        format!(
            "state_dir = \"state\"\n[source]\nkind = \"file\"\npath = \"org.json\"\n\
             [target]\nkind = \"file\"\npath = \"out.json\"\n\
             [schedule]\nmode = \"manual\"\nrun_on_start = true\n[daemon]\nlisten = \"127.0.0.1:{port}\"\n"
        ),
    )
    .unwrap();
    let mut doc = org(2, 4);
    env.write_org(&doc);
    let d = Daemon::start(&env, port);
    d.wait_runs("the first run", Duration::from_secs(60), |r| finished(r) == 1);
    doc["users"].as_array_mut().unwrap().push(json!({"id": "u9", "username": "hire", "department_ids": ["d1"]}));
    doc["users"][0]["name"] = "Renamed".into();
    env.write_org(&doc);
    assert_eq!(d.post_sync("?only=user:u9,nobody", None).0, 400);
    let (code, body) = d.post_sync("?only=user:u9", None);
    assert_eq!(code, 202, "{body}");
    let runs = d.wait_runs("the on-demand run", Duration::from_secs(60), |r| finished(r) == 2);
    assert_eq!(runs[0]["trigger"], "on_demand user:u9", "{runs:#?}");
    assert_eq!(runs[0]["status"], "succeeded", "{runs:#?}");
    let t = target(&env);
    assert!(user(&t, "hire").is_some());
    assert_eq!(user(&t, "user0").unwrap()["name"], "User 0", "only the named object");
    // The same from the command line.
    assert_eq!(env.orgsync(&["trigger", "--only", "person:u1"]).code, 2);
    let r = env.orgsync(&["trigger", "--only", "user:u0"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let runs = d.wait_runs("the second on-demand run", Duration::from_secs(60), |r| finished(r) == 3);
    assert_eq!(runs[0]["trigger"], "on_demand user:u0", "{runs:#?}");
    assert_eq!(user(&target(&env), "user0").unwrap()["name"], "Renamed");
    // Counted under one bounded label, never one per object named.
    assert_eq!(d.metric("orgsync_runs_total{trigger=\"on_demand\",status=\"succeeded\"}"), 2.0);
    assert!(!d.metrics().contains("user:"), "an object id in a metric label");
}

/// `POST /sync?only=` while a run is still fetching: accepted and queued,
/// it starts only once that run has finished. `GET /explain` answers as
/// `orgsync explain --output json` does, behind the admin token.
#[test]
fn an_on_demand_request_during_a_run_waits_for_it_and_explain_is_served_behind_the_token() {
    use crate::daemon::{Daemon, finished};
    use crate::fake_feishu::{APP_ID, APP_SECRET, FakeFeishu};
    use std::sync::atomic::Ordering;
    use std::time::Duration;
    let env = Env::new();
    let scim = crate::harness::Scim::in_process();
    let fake = FakeFeishu::start(crate::fake_feishu::org());
    let port = crate::harness::free_port();
    std::fs::write(env.path("app-secret"), format!("{APP_SECRET}\n")).unwrap();
    std::fs::write(env.path("admin-token"), "admin-secret-token\n").unwrap();
    let source = format!("kind = \"feishu\"\nbase_url = \"{}\"\napp_id = \"{APP_ID}\"\napp_secret_file = \"app-secret\"\n", fake.base);
    env.scim_config_with_source(
        &scim,
        &source,
        &format!(
            "[schedule]\nmode = \"manual\"\nrun_on_start = true\n\
             [daemon]\nlisten = \"127.0.0.1:{port}\"\nadmin_token_file = \"admin-token\"\n"
        ),
    );
    let stall = fake.world.lock().unwrap().stall.clone();
    stall.store(true, Ordering::SeqCst);
    let d = Daemon::start(&env, port);
    d.wait_runs("the first run", Duration::from_secs(60), |r| r.len() == 1);
    let (code, body) = d.post_sync("?only=user:on_0005", Some("admin-secret-token"));
    assert_eq!(code, 202, "{body}");
    // The first run is still fetching: the on-demand one has not started.
    let runs = d.status()["runs"].as_array().cloned().unwrap();
    assert_eq!((runs.len(), runs[0]["status"].as_str()), (1, Some("running")), "{runs:#?}");
    stall.store(false, Ordering::SeqCst);
    let runs = d.wait_runs("the on-demand run", Duration::from_secs(120), |r| finished(r) == 2);
    assert_eq!(runs[0]["trigger"], "on_demand user:on_0005", "{runs:#?}");
    assert!(runs[0]["started_at"].as_str().unwrap() >= runs[1]["finished_at"].as_str().unwrap(), "never overlapping: {runs:#?}");

    // GET /explain: the token is needed, and the answer is the command's.
    let url = d.url("/explain?user=u5");
    let http = reqwest::blocking::Client::new();
    assert_eq!(http.get(&url).send().unwrap().status().as_u16(), 401);
    let r = http.get(&url).bearer_auth("admin-secret-token").send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let e: Value = r.json().unwrap();
    assert_eq!(e["source_id"], "on_0005", "{e:#}");
    assert_eq!(e["found_by"], "the target's username or email of a bound user", "{e:#}");
    let text = e.to_string();
    assert!(!text.contains(APP_SECRET) && !text.contains("admin-secret-token") && !text.contains("t-fake"), "a secret leaked: {text}");
    let r = http.get(d.url("/explain?user=nobody-at-all")).bearer_auth("admin-secret-token").send().unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = http.get(d.url("/explain")).bearer_auth("admin-secret-token").send().unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(fake.take_unexpected(), Vec::<String>::new());
}
