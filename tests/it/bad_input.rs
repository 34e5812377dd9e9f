//! Bad input gets a clear error and loses nothing: never a panic, never a
//! half-written mirror, a failed fetch never turns into deletions.

use crate::harness::{Env, Scim, org};
use serde_json::json;

fn setup(extra: &str) -> (Env, Scim) {
    let env = Env::new();
    let scim = Scim::start(env.dir.path());
    env.scim_config(&scim, extra);
    (env, scim)
}

#[test]
fn malformed_source_json_fails_the_run_with_zero_writes() {
    let (env, scim) = setup("[policy.users]\ntarget_only = \"delete\"\n");
    env.write_org(&org(1, 3));
    assert_eq!(env.sync(&[]).code, 0);
    let before = scim.writes().len();
    std::fs::write(env.path("org.json"), "{\"users\": [ {\"id\": \"u1\", ").unwrap();
    let r = env.sync(&[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(!r.stderr.contains("panicked"));
    assert_eq!(scim.writes().len(), before, "a failed fetch wrote to the target");
    assert_eq!(scim.users().len(), 3);
    let s = env.status_json();
    assert_eq!(s["status"], "failed");
    let msg = s["runs"][0]["message"].as_str().unwrap();
    assert!(msg.contains("org.json") && msg.contains("nothing was changed"), "{msg}");
}

#[test]
fn duplicate_source_ids_fail_the_run_naming_both_entries() {
    let (env, scim) = setup("");
    let mut doc = org(1, 3);
    doc["users"].as_array_mut().unwrap().push(json!({"id": "u1", "email": "x@example.test"}));
    env.write_org(&doc);
    let r = env.sync(&[]);
    assert_eq!(r.code, 1);
    assert!(scim.writes().is_empty());
    let msg = env.status_json()["runs"][0]["message"].as_str().unwrap().to_owned();
    assert!(msg.contains("users[3].id \"u1\" duplicates users[1].id"), "{msg}");
}

#[test]
fn two_users_sharing_an_email_are_conflict_items_and_the_rest_is_applied() {
    let (env, scim) = setup("");
    let mut doc = org(1, 3);
    doc["users"][2]["email"] = doc["users"][1]["email"].clone();
    env.write_org(&doc);
    let r = env.sync(&[]);
    assert_eq!(r.code, 3, "partial: {}\n{}", r.stdout, r.stderr);
    assert_eq!(scim.users().len(), 1, "only the unambiguous user is created");
    let s = env.status_json();
    assert_eq!(s["runs"][0]["counts"]["user.bind.conflict"], 2);
}

#[test]
fn a_department_cycle_is_an_item_error_and_the_rest_goes_on() {
    let (env, scim) = setup("");
    let doc = json!({
        "departments": [
            {"id": "a", "parent_id": "b", "name": "A"},
            {"id": "b", "parent_id": "a", "name": "B"},
            {"id": "ok", "name": "Fine"}
        ],
        "users": [{"id": "u1", "username": "u1", "email": "u1@example.test", "department_ids": ["a", "ok"]}]
    });
    env.write_org(&doc);
    let r = env.sync(&[]);
    assert_eq!(r.code, 3, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(scim.groups().len(), 1);
    assert_eq!(scim.users().len(), 1);
    let r = env.orgsync(&["runs", "show", "1", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let invalid = v["items"].as_array().unwrap().iter().filter(|i| i["outcome"] == "invalid").count();
    assert_eq!(invalid, 2);
    assert!(r.stdout.contains("parent cycle"), "{}", r.stdout);
}

#[test]
fn an_unreachable_target_fails_the_run_with_a_clear_message() {
    let env = Env::new();
    let scim = Scim::start(env.dir.path());
    env.scim_config(&scim, "");
    let port = crate::harness::free_port();
    let text = std::fs::read_to_string(env.path("orgsync.toml")).unwrap().replace(&scim.base, &format!("http://127.0.0.1:{port}/v2"));
    std::fs::write(env.path("orgsync.toml"), text + "\n").unwrap();
    let text = std::fs::read_to_string(env.path("orgsync.toml"))
        .unwrap()
        .replace("token_file = \"token\"", "token_file = \"token\"\nmax_retries = 1");
    std::fs::write(env.path("orgsync.toml"), text).unwrap();
    env.write_org(&org(1, 1));
    let r = env.sync(&[]);
    assert_eq!(r.code, 1);
    let msg = env.status_json()["runs"][0]["message"].as_str().unwrap().to_owned();
    assert!(msg.starts_with("cannot read the target"), "{msg}");
    // What went wrong, said once: the cause, not the URL again.
    assert!(msg.contains("Connection refused") && !msg.contains("for url"), "{msg}");
    assert_eq!(msg.matches("os error").count(), 1, "{msg}");
    assert!(!msg.contains(crate::harness::TOKEN));
}

/// `[source.events]` of each vendor: check-config names every wrong key.
#[test]
fn event_settings_errors_name_the_key() {
    let check = |source: &str, lines: &[&str]| {
        let env = Env::new();
        std::fs::write(
            env.path("orgsync.toml"),
            format!("state_dir = \"state\"\n[source]\n{source}[target]\nkind = \"file\"\npath = \"out.json\"\n"),
        )
        .unwrap();
        let r = env.orgsync(&["check-config"]);
        assert_eq!(r.code, 2, "{source}: {}{}", r.stdout, r.stderr);
        for line in lines {
            assert!(r.stderr.contains(line), "{line:?} in {}", r.stderr);
        }
    };
    let dingtalk = "kind = \"dingtalk\"\napp_key = \"k\"\napp_secret = \"s\"\n[source.events]\n";
    check(
        &format!("{dingtalk}delivery = \"carrier\"\ngateway_url = \"ftp://gw\"\nwindow = \"10h\"\n"),
        &[
            "source.events.delivery: \"carrier\" is not one of stream, http",
            "source.events.gateway_url: \"ftp://gw\" must be http(s)",
            "source.events.window: \"10h\" is out of range",
        ],
    );
    check(&format!("{dingtalk}token = \"t\"\ndelivery = \"stream\"\n"), &["source.events.token: is for delivery = \"http\""]);
    check(&format!("{dingtalk}delivery = \"http\"\n"), &["source.events.token: is required", "source.events.aes_key: is required"]);
    let feishu = "kind = \"feishu\"\napp_id = \"cli_1\"\napp_secret = \"s\"\n[source.events]\n";
    check(&format!("{feishu}delivery = \"http\"\n"), &["source.events.verification_token: is required"]);
    check(&format!("{feishu}encrypt_key = \"k\"\n"), &["source.events.encrypt_key: is for delivery = \"http\""]);
    check(&format!("{feishu}delivery = \"long_connection\"\nwindow = \"soon\"\n"), &["source.events.window: \"soon\" is not a duration"]);
    let welink = "kind = \"welink\"\nclient_id = \"c\"\nclient_secret = \"not-an-aes-key\"\n[source.events]\n";
    check(welink, &["source.events.aes_key: is required: the client secret is not 16, 24 or 32 characters"]);
    check(&format!("{welink}aes_key = \"short\"\n"), &["source.events.aes_key: must be 16, 24 or 32 characters"]);
}
