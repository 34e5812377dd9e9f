//! `[scope]` end to end through the binary: an included department below
//! the top is a root of the synced forest, with its subtree and members; a
//! scope change converges; an include that names nothing fails the run
//! before any write.

use crate::harness::{Env, org};
use serde_json::Value;
use std::collections::BTreeMap;

fn file_config(env: &Env, include: &[&str]) {
    let include: Vec<String> = include.iter().map(|i| format!("{i:?}")).collect();
    std::fs::write(
        env.path("orgsync.toml"),
        format!(
            "state_dir = \"state\"\n[source]\nkind = \"file\"\npath = \"org.json\"\n[target]\nkind = \"file\"\npath = \"out.json\"\n\
             [policy.departments]\ntarget_only = \"delete\"\n[policy.users]\ntarget_only = \"delete\"\n\
             [scope]\ninclude_departments = [{}]\n",
            include.join(", ")
        ),
    )
    .unwrap();
}

/// The target's departments as externalId -> parent's externalId, and each
/// user's departments by externalId.
fn target(env: &Env) -> (BTreeMap<String, Option<String>>, BTreeMap<String, Vec<String>>) {
    let doc: Value = serde_json::from_slice(&std::fs::read(env.path("out.json")).unwrap()).unwrap();
    let ext: BTreeMap<&str, &str> =
        doc["departments"].as_array().unwrap().iter().map(|d| (d["id"].as_str().unwrap(), d["external_id"].as_str().unwrap())).collect();
    let departments = doc["departments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["external_id"].as_str().unwrap().to_owned(), d["parent"].as_str().map(|p| ext[p].to_owned())))
        .collect();
    let users = doc["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            let mut ds: Vec<String> = u["departments"].as_array().unwrap().iter().map(|d| ext[d.as_str().unwrap()].to_owned()).collect();
            ds.sort();
            (u["external_id"].as_str().unwrap().to_owned(), ds)
        })
        .collect();
    (departments, users)
}

#[test]
fn an_included_department_below_the_top_is_a_root_with_its_subtree_and_members_and_a_scope_change_converges() {
    let env = Env::new();
    // d0 > d1 > d4, d5, d6 (org(13, …): three levels); users u{i} in d{i % 13}.
    env.write_org(&org(13, 130));
    file_config(&env, &["d1"]);
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "succeeded, not partial:\n{}\n{}", r.stdout, r.stderr);
    let (departments, users) = target(&env);
    let expected: BTreeMap<String, Option<String>> = [("d1", None), ("d4", Some("d1")), ("d5", Some("d1")), ("d6", Some("d1"))]
        .into_iter()
        .map(|(d, p)| (d.to_owned(), p.map(str::to_owned)))
        .collect();
    assert_eq!(departments, expected, "d1 is a root, its subtree under it");
    assert_eq!(users.len(), 40, "the members of d1's subtree");
    for (u, ds) in &users {
        let i: usize = u[1..].parse().unwrap();
        assert_eq!(ds, &[format!("d{}", i % 13)], "{u} in its own department");
    }

    // One level deeper: d4 alone is the root now; the rest of d1 leaves.
    file_config(&env, &["d4"]);
    let preview = env.sync(&["--dry-run"]);
    assert_eq!(preview.code, 0, "{}", preview.stderr);
    assert!(preview.stdout.contains("delete"), "the dry-run previews the removals:\n{}", preview.stdout);
    let r = env.sync(&["--allow-deletes", "100"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let (departments, users) = target(&env);
    assert_eq!(departments, BTreeMap::from([("d4".to_owned(), None)]), "d4 moved to the top");
    assert_eq!(users.len(), 10);
    assert!(users.values().all(|ds| ds == &["d4".to_owned()]), "{users:?}");
    let idle = env.sync(&[]);
    assert_eq!(idle.code, 0, "{}", idle.stderr);
    assert!(env.status_json()["runs"][0]["counts"].as_object().unwrap().is_empty(), "the idle run wrote something");
}

#[test]
fn an_included_department_the_source_does_not_have_fails_the_run_before_any_write_naming_it() {
    let env = Env::new();
    env.write_org(&org(13, 130));
    file_config(&env, &["d1"]);
    assert_eq!(env.sync(&[]).code, 0);
    let before = std::fs::read(env.path("out.json")).unwrap();
    file_config(&env, &["d1", "d99-typo"]);
    let r = env.sync(&[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("scope.include_departments") && r.stderr.contains("\"d99-typo\""), "{}", r.stderr);
    assert_eq!(std::fs::read(env.path("out.json")).unwrap(), before, "the target was written");
    assert_eq!(env.status_json()["runs"][0]["status"], "failed");
}
