//! `orgsync explain` and the one-object path (`sync --only`) on every
//! source kind, through the binary against a SCIM target: a new hire read
//! by id and synced alone with its new department, a bound user explained
//! by username whose difference is what the next on-demand run then
//! writes, a user left out by scope, an unknown id (exit 4), and the
//! requests each vendor is sent for one user.

use crate::harness::{Env, Scim};
use serde_json::Value;

/// One source's case: its ids, and how to change its data and count its
/// requests.
pub struct Case<'a> {
    pub env: &'a Env,
    pub scim: &'a Scim,
    /// A synced user's source id (empty: found by its username) and
    /// username, and the one left out of scope (an id or a username).
    pub bound: (&'a str, &'a str),
    pub excluded: &'a str,
    /// A new hire (source id, empty: found by username; username) in a new department (its name),
    /// added by `hire()`; `rename()` renames the bound user to `renamed`.
    pub hire: (&'a str, &'a str, &'a str),
    pub renamed: &'a str,
    pub add_hire: &'a dyn Fn(),
    pub rename: &'a dyn Fn(),
    /// Requests the vendor was sent so far (`None`: not an API).
    pub requests: &'a dyn Fn() -> Option<usize>,
}

pub fn explain(env: &Env, what: &[&str]) -> (i32, Value) {
    let mut args = vec!["explain"];
    args.extend_from_slice(what);
    args.extend_from_slice(&["--output", "json"]);
    let r = env.orgsync(&args);
    assert!(r.code == 0 || r.code == 4, "{}{}", r.stdout, r.stderr);
    (r.code, serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", r.stdout, r.stderr)))
}

fn changes(v: &Value) -> Vec<(String, Value, Value)> {
    let mut out: Vec<(String, Value, Value)> = v
        .as_array()
        .map(|a| a.iter().map(|c| (c["field"].as_str().unwrap().to_owned(), c["from"].clone(), c["to"].clone())).collect())
        .unwrap_or_default();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The last run's item of `op` for `source_id`.
fn item(env: &Env, op: &str, source_id: &str) -> Value {
    let runs = env.status_json();
    let id = runs["runs"][0]["id"].as_i64().unwrap().to_string();
    let v: Value = serde_json::from_str(&env.orgsync(&["runs", "show", &id, "--output", "json"]).stdout).unwrap();
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["op"] == op && i["source_id"] == source_id)
        .cloned()
        .unwrap_or_else(|| panic!("no {op} of {source_id} in {v:#}"))
}

/// Runs the case; returns the requests a one-user on-demand sync of the
/// new hire sent the vendor.
pub fn check(c: &Case<'_>) -> Option<usize> {
    let env = c.env;
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);

    // A bound user, by username: nothing to do.
    let (code, e) = explain(env, &["user", c.bound.1]);
    assert_eq!(code, 0);
    let bound = if c.bound.0.is_empty() { e["source_id"].as_str().unwrap().to_owned() } else { c.bound.0.to_owned() };
    assert_eq!(e["source_id"], bound.as_str(), "{e:#}");
    if c.bound.0 != c.bound.1 {
        assert!(e["found_by"].as_str().unwrap().starts_with("the target's"), "{e:#}");
    }
    assert_eq!(e["scope"]["in_scope"], true, "{e:#}");
    assert!(e["binding"]["target_id"].is_string(), "{e:#}");
    assert!(e["source"]["mapped"].is_object() && e["target"].is_object(), "{e:#}");
    assert_eq!(e["operations"], serde_json::json!([]), "{e:#}");
    assert!(e["decision"].as_str().unwrap().starts_with("nothing to do"), "{e:#}");
    assert!(e["history"].as_array().unwrap().iter().any(|h| h["op"] == "create" && h["outcome"] == "ok"), "{e:#}");

    // Its rename: explain's difference is what the on-demand run writes.
    (c.rename)();
    let (_, e) = explain(env, &["user", &bound]);
    let said = changes(&e["changes"]);
    assert_eq!(said.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(), ["name"], "{e:#}");
    assert_eq!(said[0].2, c.renamed, "{e:#}");
    let lists = c.scim.user_lists();
    let r = env.sync(&["--only", &format!("user:{bound}")]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(c.scim.user_lists(), lists, "an update reads the target's users by id and filter, never listed");
    assert_eq!(changes(&item(env, "update", &bound)["changes"]), said, "explain said what the run then did");
    assert_eq!(c.scim.user_by_name(c.bound.1).unwrap()["name"]["formatted"], c.renamed);

    // Left out by scope: said with the rule.
    let (code, e) = explain(env, &["user", c.excluded]);
    assert_eq!(code, 0, "{e:#}");
    assert_eq!(e["scope"]["in_scope"], false, "{e:#}");
    assert_eq!(e["scope"]["rule"], "scope.exclude_users lists it", "{e:#}");

    // A new hire in a new department, read by id and synced alone.
    (c.add_hire)();
    let hire_id = if c.hire.0.is_empty() {
        let (_, e) = explain(env, &["user", c.hire.1]);
        assert!(e["found_by"].as_str().unwrap().starts_with("the source's"), "{e:#}");
        e["source_id"].as_str().unwrap().to_owned()
    } else {
        c.hire.0.to_owned()
    };
    let (code, e) = explain(env, &["user", &hire_id]);
    assert_eq!(code, 0);
    assert!(e["binding"].is_null(), "{e:#}");
    assert!(e["operations"].as_array().unwrap().iter().any(|o| o["op"] == "create_user"), "{e:#}");
    let before = (c.requests)();
    let lists = c.scim.user_lists();
    let r = env.sync(&["--only", &format!("user:{hire_id}")]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        c.scim.user_lists(),
        lists.map(|n| n + 1),
        "a create reads the target's users whole once (no duplicate of an account a filter missed)"
    );
    let sent = before.and_then(|b| (c.requests)().map(|n| n - b));
    eprintln!("one-user sync: {sent:?} requests");
    let hire = c.scim.user_by_name(c.hire.1).expect("the new hire is in the target");
    let group = c.scim.groups().into_iter().find(|g| g["displayName"] == c.hire.2).expect("with its new department");
    assert!(group["members"].as_array().unwrap().iter().any(|m| m["value"] == hire["id"]), "{group:#}");
    let (_, e) = explain(env, &["user", c.hire.1]);
    assert!(e["decision"].as_str().unwrap().starts_with("nothing to do"), "idle after its run: {e:#}");

    // An id nobody knows.
    let (code, e) = explain(env, &["user", "nobody-knows-this-id"]);
    assert_eq!(code, 4, "{e:#}");
    assert_eq!(e["found"], false);
    sent
}

/// After [`check`], on a SaaS fake: the one-user sync sent `sent` requests
/// (the fake's log: a token included); explaining the hire again reads it
/// by id (`requests` by the source's own count, where given), shows the
/// vendor's `raw` field, and lists nothing (`listings`).
pub fn read_by_id(
    env: &Env,
    hire: &str,
    sent: (Option<usize>, usize),
    requests: Option<u64>,
    raw: (&str, &str),
    listings: &dyn Fn() -> usize,
) {
    assert_eq!(sent.0, Some(sent.1), "requests for a one-user sync");
    let before = listings();
    let (_, e) = explain(env, &["user", hire]);
    assert_eq!(e["source"]["read"], "id", "{e:#}");
    if let Some(n) = requests {
        assert_eq!(e["source"]["requests"], n, "{e:#}");
    }
    assert_eq!(e["source"]["raw"][raw.0], raw.1, "the vendor's own record: {e:#}");
    assert_eq!(listings(), before, "no list request");
}

#[test]
fn the_file_source_explains_and_syncs_one_user() {
    use crate::harness::org;
    use serde_json::json;
    use std::cell::RefCell;
    let env = Env::new();
    let scim = Scim::in_process();
    env.scim_config(&scim, "[scope]\nexclude_users = [\"user2\"]\n");
    let doc = RefCell::new(org(2, 4));
    env.write_org(&doc.borrow());
    let add_hire = || {
        let mut d = doc.borrow_mut();
        d["departments"].as_array_mut().unwrap().push(json!({"id": "d9", "parent_id": "d1", "name": "Labs"}));
        d["users"]
            .as_array_mut()
            .unwrap()
            .push(json!({"id": "u9", "username": "hire", "email": "hire@example.test", "department_ids": ["d9"]}));
        env.write_org(&d);
    };
    let rename = || {
        doc.borrow_mut()["users"][1]["name"] = "Renamed One".into();
        env.write_org(&doc.borrow());
    };
    check(&Case {
        env: &env,
        scim: &scim,
        bound: ("u1", "user1"),
        excluded: "u2",
        hire: ("u9", "hire", "Labs"),
        renamed: "Renamed One",
        add_hire: &add_hire,
        rename: &rename,
        requests: &|| None,
    });
    // The record as the file has it.
    let (_, e) = explain(&env, &["user", "u1"]);
    assert_eq!(e["source"]["raw"]["username"], "user1", "{e:#}");
    assert_eq!(e["source"]["read"], "whole source");
}

/// A department, by name and by id: its rename explained, then written
/// the same by an on-demand run of it; one left out by scope; an unknown one.
#[test]
fn a_department_is_explained_by_name_and_its_rename_is_what_the_run_writes() {
    use crate::harness::org;
    let env = Env::new();
    let scim = Scim::in_process();
    env.scim_config(&scim, "[scope]\nexclude_departments = [\"d2\"]\n");
    let mut doc = org(3, 6);
    env.write_org(&doc);
    assert_eq!(env.sync(&[]).code, 0);
    let (code, e) = explain(&env, &["department", "Dept 1"]);
    assert_eq!(code, 0);
    assert_eq!((e["kind"].as_str(), e["source_id"].as_str()), (Some("department"), Some("d1")), "{e:#}");
    assert_eq!(e["found_by"], "the target's name of a bound department", "{e:#}");
    assert!(e["binding"]["target_id"].is_string() && e["target"]["name"] == "Dept 1", "{e:#}");
    assert!(e["decision"].as_str().unwrap().starts_with("nothing to do"), "{e:#}");

    doc["departments"][1]["name"] = "Renamed Dept".into();
    env.write_org(&doc);
    let (_, e) = explain(&env, &["department", "d1"]);
    let said = changes(&e["changes"]);
    assert_eq!(said, [("name".to_owned(), Value::from("Dept 1"), Value::from("Renamed Dept"))], "{e:#}");
    let r = env.sync(&["--only", "department:d1"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(changes(&item(&env, "update", "d1")["changes"]), said, "explain said what the run then did");
    assert!(scim.groups().iter().any(|g| g["displayName"] == "Renamed Dept"));

    let (_, e) = explain(&env, &["department", "d2"]);
    assert_eq!(
        (&e["scope"]["in_scope"], &e["scope"]["rule"]),
        (&Value::from(false), &Value::from("under scope.exclude_departments")),
        "{e:#}"
    );
    let (code, _) = explain(&env, &["department", "No Such Team"]);
    assert_eq!(code, 4);
}
