//! `orgsync plan`: a proposed config's plan beside the current one's, by
//! object, with the part of the config that explains each difference.

use crate::harness::{Env, org};
use serde_json::Value;
use std::process::Command;

fn config(extra: &str) -> String {
    format!(
        "state_dir = \"state\"\n[source]\nkind = \"file\"\npath = \"org.json\"\n\
         [target]\nkind = \"file\"\npath = \"out.json\"\n{extra}"
    )
}

/// `orgsync --config <proposed> plan --against orgsync.toml`.
fn plan(env: &Env, proposed: &str, output: &str) -> (i32, String) {
    std::fs::write(env.path("new.toml"), config(proposed)).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_orgsync"))
        .arg("--config")
        .arg(env.path("new.toml"))
        .args(["plan", "--against"])
        .arg(env.path("orgsync.toml"))
        .args(["--output", output])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(o.stderr.is_empty() || o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).into_owned())
}

fn differences(env: &Env, proposed: &str) -> Vec<(String, String, String, String)> {
    let (code, out) = plan(env, proposed, "json");
    assert_eq!(code, 0, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let text = |x: &Value| x.as_str().unwrap_or("-").to_owned();
    v["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (text(&d["id"]), text(&d["current"]), text(&d["proposed"]), text(&d["reason"])))
        .collect()
}

#[test]
fn a_scope_a_policy_and_a_mapping_change_each_show_what_they_would_write_and_nothing_is_written() {
    let env = Env::new();
    // A guard that lets every removal through (the scope change removes half).
    const GUARD: &str = "[policy.guard]\nmax_delete_percent = 100\n";
    let current = &format!("[policy.users]\ntarget_only = \"disable\"\n{GUARD}");
    std::fs::write(env.path("orgsync.toml"), config(current)).unwrap();
    let mut doc = org(3, 6);
    env.write_org(&doc);
    assert_eq!(env.sync(&[]).code, 0);
    // Since then: u4 left, and u0 has a title (not a synced field by default).
    doc["users"].as_array_mut().unwrap().retain(|u| u["id"] != "u4");
    doc["users"][0]["title"] = "Boss".into();
    env.write_org(&doc);
    let written = std::fs::read(env.path("out.json")).unwrap();
    let runs = env.status_json()["runs"].as_array().unwrap().len();

    // The same config: no difference.
    assert_eq!(differences(&env, current), []);
    // Policy: u4 deleted, not disabled.
    assert_eq!(
        differences(&env, &format!("[policy.users]\ntarget_only = \"delete\"\n{GUARD}")),
        [("u4".into(), "disable".into(), "delete".into(), "policy".into())]
    );
    // Mapping: titles synced, u0's written.
    assert_eq!(
        differences(
            &env,
            &format!("[policy.users]\ntarget_only = \"disable\"\nfields = [\"name\", \"email\", \"department_ids\", \"title\"]\n{GUARD}")
        ),
        [("u0".into(), "-".into(), "update".into(), "mapping".into())]
    );
    // Scope: Dept 2's members (u2, u5) leave the scope and are disabled.
    let scope = differences(&env, &format!("[policy.users]\ntarget_only = \"disable\"\n{GUARD}[scope]\nexclude_departments = [\"d2\"]\n"));
    assert_eq!(
        scope,
        [("u2".into(), "-".into(), "disable".into(), "scope".into()), ("u5".into(), "-".into(), "disable".into(), "scope".into())]
    );

    // The other outputs, and the guard's verdict under each.
    let (_, csv) = plan(&env, &format!("[policy.users]\ntarget_only = \"delete\"\n{GUARD}"), "csv");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("kind,id,current,proposed,reason,detail"));
    assert!(lines.next().unwrap().starts_with("user,u4,disable,delete,policy,"), "{csv}");
    let (_, table) =
        plan(&env, "[policy.users]\ntarget_only = \"delete\"\n[policy.guard]\nmax_delete_percent = 100\nmax_deletes = 0\n", "table");
    assert!(table.contains("changed: policy"), "{table}");
    assert!(table.contains("guard, current: nothing held back"), "{table}");
    assert!(table.contains("guard, proposed: ") && table.contains("max_deletes"), "{table}");

    assert_eq!(std::fs::read(env.path("out.json")).unwrap(), written, "the target is not written");
    assert_eq!(env.status_json()["runs"].as_array().unwrap().len(), runs, "no run is recorded");
}

#[test]
fn an_invalid_current_config_names_it_and_exits_2() {
    let env = Env::new();
    std::fs::write(env.path("orgsync.toml"), "[source]\nkind = \"nope\"\n").unwrap();
    env.write_org(&org(1, 1));
    std::fs::write(env.path("new.toml"), config("")).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_orgsync"))
        .arg("--config")
        .arg(env.path("new.toml"))
        .args(["plan", "--against"])
        .arg(env.path("orgsync.toml"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("the current config (--against)") && err.contains("source.kind"), "{err}");
}
