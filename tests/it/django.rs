//! django-scim2 (PyPI 0.23, tests/servers/django_scim): users and groups
//! share integer ids, group members are users only, PATCH takes few
//! attributes, filters are not supported.

use crate::harness::{Env, Scim, org};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Each group's members by userName, keyed by the group's externalId.
fn memberships(scim: &Scim) -> Vec<(String, BTreeSet<String>)> {
    let users = scim.users();
    let name_of = |id: &str| users.iter().find(|u| u["id"] == id).and_then(|u| u["userName"].as_str()).unwrap_or("?").to_owned();
    let mut out: Vec<(String, BTreeSet<String>)> = scim
        .groups()
        .iter()
        .map(|g| {
            let members = g["members"].as_array().into_iter().flatten().map(|m| name_of(m["value"].as_str().unwrap_or(""))).collect();
            (g["externalId"].as_str().unwrap_or("").to_owned(), members)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn groups_mode_writes_each_department_once_with_exactly_its_users() {
    let env = Env::new();
    let scim = Scim::django(env.dir.path());
    env.scim_config(&scim, "departments = \"groups\"");
    env.write_org(&org(5, 12));
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let want: Vec<(String, BTreeSet<String>)> =
        (0..5).map(|d| (format!("d{d}"), (0..12).filter(|u| u % 5 == d).map(|u| format!("user{u}")).collect())).collect();
    assert_eq!(memberships(&scim), want, "no group holds a group, no user is in a department not theirs");
    assert_eq!(scim.users().len(), 12);
}

#[test]
fn a_full_cycle_converges_leavers_are_deactivated_and_refusals_are_not_resent() {
    let env = Env::new();
    let scim = Scim::django(env.dir.path());
    env.scim_config(&scim, "departments = \"groups\"\n[policy.users]\ntarget_only = \"disable\"");
    env.write_org(&org(3, 9));
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    // django-scim2 derives displayName from the name parts: the names the
    // creates sent are found not kept, said, and nothing is written.
    let before = scim.writes().len();
    let r = env.sync(&["--output", "json"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let run: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!((&run["status"], &run["counts"]["user.update.not_kept"]), (&json!("succeeded"), &json!(9)), "{run:#}");
    assert_eq!(&scim.writes()[before..], &[] as &[(String, String, u16)]);
    // A new name in the source is sent; django-scim2 takes neither
    // displayName nor name.formatted in a PATCH (501): refused, said, partial.
    let mut renamed = org(3, 9);
    renamed["users"][2]["name"] = json!("Someone Else");
    env.write_org(&renamed);
    let r = env.sync(&["--output", "json"]);
    assert_eq!(r.code, 3, "{}\n{}", r.stdout, r.stderr);
    let run: Value = serde_json::from_str(&r.stdout).unwrap();
    let shown = env.orgsync(&["runs", "show", &run["id"].to_string(), "--output", "json"]);
    let items: Value = serde_json::from_str(&shown.stdout).unwrap();
    let refused: Vec<&Value> = items["items"].as_array().unwrap().iter().filter(|i| i["outcome"] == "refused").collect();
    assert_eq!(refused.len(), 1, "{items:#}");
    assert!(refused[0]["error"].as_str().unwrap().contains("refused displayName"), "{:#}", refused[0]);
    // Not sent again: the next run writes nothing and succeeds, saying so.
    let before = scim.writes().len();
    let r = env.sync(&["--output", "json"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let run: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(run["counts"]["user.update.not_kept"], 9, "{run:#}");
    assert_eq!(&scim.writes()[before..], &[] as &[(String, String, u16)]);
    // Explain says so: the refused value is remembered, nothing is sent.
    let (code, e) = crate::explain::explain(&env, &["user", "user2"]);
    assert_eq!(code, 0);
    assert!(e["memory"].as_array().unwrap().iter().any(|m| m["field"] == "name" && m["state"] == "refused"), "{e:#}");
    assert_eq!((&e["operations"], &e["changes"]), (&json!([]), &json!([])), "what the next run does: nothing: {e:#}");
    assert!(e["items"].as_array().unwrap().iter().any(|i| i["outcome"] == "not_kept"), "{e:#}");
    assert!(e["history"].as_array().unwrap().iter().any(|h| h["outcome"] == "refused"), "{e:#}");
    // u0 leaves, u1 moves from d1 to d2.
    let mut doc = org(3, 9);
    let users = doc["users"].as_array_mut().unwrap();
    users.remove(0);
    users[0]["department_ids"] = json!(["d2"]);
    env.write_org(&doc);
    env.sync(&[]);
    let u0 = scim.users().into_iter().find(|u| u["userName"] == "user0").unwrap();
    assert_eq!(u0["active"], false, "the leaver is deactivated");
    let want: Vec<(String, BTreeSet<String>)> = vec![
        ("d0".into(), ["user0", "user3", "user6"].map(String::from).into()),
        ("d1".into(), ["user4", "user7"].map(String::from).into()),
        ("d2".into(), ["user1", "user2", "user5", "user8"].map(String::from).into()),
    ];
    assert_eq!(memberships(&scim), want, "u1 moved (removal in the value-list dialect django-scim2 takes)");
    let before = scim.writes().len();
    assert_eq!(env.sync(&[]).code, 0);
    assert_eq!(&scim.writes()[before..], &[] as &[(String, String, u16)], "converged");
    assert_eq!(scim.users().len(), 9, "no duplicate users");
}

#[test]
fn check_target_says_what_the_server_supports_and_writes_nothing() {
    let env = Env::new();
    let scim = Scim::django(env.dir.path());
    env.scim_config(&scim, "departments = \"groups\"");
    let r = env.orgsync(&["check-target", "--output", "json"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(v["enterprise extension"].as_str().unwrap().starts_with("no"), "{v:#}");
    assert!(v["filter"].as_str().unwrap().starts_with("no"), "{v:#}");
    assert!(v["page size"].as_str().unwrap().starts_with("50"), "django-scim2's maxResults: {v:#}");
    assert!(v["fields not held"].as_str().unwrap().contains("employee_no"), "{v:#}");
    assert_eq!(scim.writes(), vec![]);
    // The same for scim2-server: everything offered.
    let other = Scim::start(env.dir.path());
    env.scim_config(&other, "");
    let r = env.orgsync(&["check-target"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("enterprise extension") && r.stdout.contains("yes (employeeNumber"), "{}", r.stdout);
    assert!(r.stdout.contains("supported (maxOperations 1000"), "{}", r.stdout);
    // Nobody listening: exit 1, naming the target.
    drop(other);
    let r = env.orgsync(&["check-target"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
}

/// django-scim2 answers 501 to `replace displayName` on a group; a PUT of
/// the group as it is, renamed, works. The rename goes through (members
/// kept), later renames go by PUT at once, and every run after settles.
#[test]
fn a_group_rename_refused_by_patch_goes_through_by_put_with_its_members_kept() {
    let env = Env::new();
    let scim = Scim::django(env.dir.path());
    env.scim_config(&scim, "departments = \"groups\"");
    let mut doc = org(3, 9);
    env.write_org(&doc);
    assert_eq!(env.sync(&[]).code, 0);
    // The users' names it derives itself (see the test above) are found not kept, nothing sent.
    assert_eq!(env.sync(&[]).code, 0);
    let before = memberships(&scim);
    for name in ["Research", "Research & Development"] {
        doc["departments"][2]["name"] = json!(name);
        env.write_org(&doc);
        let r = env.sync(&[]);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        let groups = scim.groups();
        let g = groups.iter().find(|g| g["externalId"] == "d2").unwrap();
        assert_eq!(g["displayName"], name, "{g}");
        assert_eq!(memberships(&scim), before, "members kept through the PUT");
        let idle = scim.writes().len();
        assert_eq!(env.sync(&[]).code, 0);
        assert_eq!(&scim.writes()[idle..], &[] as &[(String, String, u16)], "settled");
    }
}

/// django-scim2 as shipped, with orgsync's default `nested_groups`: users
/// and groups share integer ids, and adding group N as a member adds user
/// N. Its numeric ids are seen (from the first create on an empty server)
/// and no group is written into a group: every group holds exactly its
/// users, from the first run on; later runs write nothing; check-target
/// says so.
#[test]
fn default_nested_mode_on_django_scim2_writes_memberships_flat_never_a_wrong_user() {
    let env = Env::new();
    let scim = Scim::django(env.dir.path());
    env.scim_config(&scim, "");
    env.write_org(&org(5, 12));
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("ids are plain numbers"), "said: {}", r.stderr);
    let want: Vec<(String, BTreeSet<String>)> =
        (0..5).map(|d| (format!("d{d}"), (0..12).filter(|u| u % 5 == d).map(|u| format!("user{u}")).collect())).collect();
    assert_eq!(memberships(&scim), want, "a group holds exactly its users: no group taken for a user");
    // The users' displayName refusals are learnt once (see above); then nothing is written.
    env.sync(&[]);
    let before = scim.writes().len();
    assert_eq!(env.sync(&[]).code, 0);
    assert_eq!(&scim.writes()[before..], &[] as &[(String, String, u16)], "settled");
    let check = env.orgsync(&["check-target"]);
    assert!(check.stdout.contains("memberships are written flat"), "{}", check.stdout);
}
