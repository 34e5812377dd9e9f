//! End to end through the binary against a real scim2-server.

use crate::harness::{Env, Scim, org};
use serde_json::{Value, json};

fn setup(extra: &str, org_doc: &Value) -> (Env, Scim) {
    let env = Env::new();
    let scim = Scim::start(env.dir.path());
    env.scim_config(&scim, extra);
    env.write_org(org_doc);
    (env, scim)
}

fn group_named<'a>(groups: &'a [Value], name: &str) -> &'a Value {
    groups.iter().find(|g| g["displayName"] == name).unwrap_or_else(|| panic!("no group {name}"))
}

fn members(g: &Value) -> Vec<String> {
    g["members"].as_array().into_iter().flatten().map(|m| m["value"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn first_sync_creates_everything_and_the_second_makes_zero_writes() {
    let (env, scim) = setup("", &org(7, 20));
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let users = scim.users();
    assert_eq!(users.len(), 20);
    assert_eq!(scim.groups().len(), 7);
    let u = scim.user_by_name("user3").unwrap();
    assert_eq!(u["externalId"], "u3");
    assert_eq!(u["emails"][0]["value"], "user3@example.test");
    assert_eq!(u["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"], "Dept 3");
    // The tree: d1 is a member of d0's group, user3 of d3's.
    let groups = scim.groups();
    let d1 = group_named(&groups, "Dept 1")["id"].as_str().unwrap().to_owned();
    assert!(members(group_named(&groups, "Dept 0")).contains(&d1));
    assert!(members(group_named(&groups, "Dept 3")).contains(&u["id"].as_str().unwrap().to_owned()));

    let before = scim.writes().len();
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(scim.writes().len(), before, "second sync wrote: {:?}", &scim.writes()[before..]);
    let s = env.status_json();
    assert_eq!(s["status"], "succeeded");
    assert_eq!(s["runs"].as_array().unwrap().len(), 2);
    // Each run's requests are kept: the first's creates, the second's reads only.
    let log = |id: &str| -> Vec<Value> {
        let r = env.orgsync(&["runs", "requests", id, "--output", "json"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        serde_json::from_str(&r.stdout).unwrap()
    };
    let first = log("1");
    assert_eq!(first.iter().filter(|r| r["method"] == "POST" && r["path"] == "/Users").count(), 20, "{first:#?}");
    let second = log("2");
    assert!(!second.is_empty() && second.iter().all(|r| r["method"] == "GET"), "{second:#?}");
    assert!(!first.iter().chain(&second).any(|r| r["path"].as_str().unwrap().contains('?')), "queries stay out");
}

/// The membership PATCHes a run made: (group path, count).
fn group_patches(scim: &Scim, from: usize) -> Vec<(String, usize)> {
    let mut counts: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for (m, p, _) in &scim.writes()[from..] {
        if m == "PATCH" && p.contains("/Groups/") {
            *counts.entry(p.clone()).or_default() += 1;
        }
    }
    counts.into_iter().collect()
}

#[test]
fn memberships_go_as_one_patch_per_group_per_run() {
    // 5 departments (d1, d2, d3 under d0, d4 under d1), 40 users, 8 per department.
    let (env, scim) = setup("", &org(5, 40));
    assert_eq!(env.sync(&[]).code, 0);
    let patches = group_patches(&scim, 0);
    assert_eq!(patches.len(), 5, "every group gets its members: {patches:?}");
    assert!(patches.iter().all(|(_, n)| *n == 1), "one PATCH per group: {patches:?}");
    // Move 10 users from d0..d4 round-robin to the next department.
    let before = scim.writes().len();
    let mut doc = org(5, 40);
    for u in doc["users"].as_array_mut().unwrap().iter_mut().take(10) {
        let d: usize = u["department_ids"][0].as_str().unwrap()[1..].parse().unwrap();
        u["department_ids"] = json!([format!("d{}", (d + 1) % 5)]);
    }
    env.write_org(&doc);
    assert_eq!(env.sync(&[]).code, 0);
    let patches = group_patches(&scim, before);
    assert_eq!(patches.len(), 5, "each group gains two and loses two: {patches:?}");
    assert!(patches.iter().all(|(_, n)| *n == 1), "one PATCH per group: {patches:?}");
    let groups = scim.groups();
    for (d, children) in [(0, 3), (1, 1), (2, 0), (3, 0), (4, 0)] {
        assert_eq!(members(group_named(&groups, &format!("Dept {d}"))).len(), 8 + children, "Dept {d}: its users and child groups");
    }
    let before = scim.writes().len();
    assert_eq!(env.sync(&[]).code, 0);
    assert_eq!(scim.writes().len(), before, "converged");
}

/// Leavers' departures ride in each group's batch with the run's other
/// member changes: 6 users deleted from 5 groups, 10 moved, and Dept 4
/// deleted (it leaves Dept 1 in Dept 1's batch) take one PATCH per group,
/// then the DELETEs; scim2-server (no referential integrity) is left with
/// no dead member.
#[test]
fn leavers_leave_their_groups_in_the_run_s_one_patch_per_group() {
    let policy = "[policy.users]\ntarget_only = \"delete\"\n[policy.departments]\ntarget_only = \"delete\"\n\
                  [policy.guard]\nmax_delete_percent = 100\nmax_department_delete_percent = 100\n";
    let (env, scim) = setup(policy, &org(5, 40));
    assert_eq!(env.sync(&[]).code, 0);
    let before = scim.writes().len();
    let mut doc = org(5, 40);
    doc["departments"].as_array_mut().unwrap().retain(|d| d["id"] != "d4");
    for u in doc["users"].as_array_mut().unwrap().iter_mut() {
        let d: usize = u["department_ids"][0].as_str().unwrap()[1..].parse().unwrap();
        let i: usize = u["id"].as_str().unwrap()[1..].parse().unwrap();
        if d == 4 || i < 10 {
            u["department_ids"] = json!([format!("d{}", (d + 1) % 4)]);
        }
    }
    doc["users"].as_array_mut().unwrap().retain(|u| !["u10", "u11", "u12", "u13", "u15", "u20"].contains(&u["id"].as_str().unwrap()));
    env.write_org(&doc);
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let patches = group_patches(&scim, before);
    assert!(patches.iter().all(|(_, n)| *n == 1), "one PATCH per group: {patches:?}");
    let deletes = scim.writes()[before..].iter().filter(|(m, _, _)| m == "DELETE").count();
    assert_eq!(deletes, 7, "6 users and a group");
    let (users, groups) = (scim.users(), scim.groups());
    let ids: std::collections::HashSet<&str> = users.iter().chain(&groups).map(|o| o["id"].as_str().unwrap()).collect();
    for g in &groups {
        assert!(members(g).iter().all(|m| ids.contains(m.as_str())), "a dead member in {g:#}");
    }
    assert_eq!((users.len(), groups.len()), (34, 4));
    let before = scim.writes().len();
    assert_eq!(env.sync(&[]).code, 0);
    assert_eq!(scim.writes().len(), before, "converged");
}

/// A group's rename and the run's member changes of that group are one
/// PATCH: Dept 1 renamed while three users move in.
#[test]
fn a_renamed_group_and_its_member_changes_are_one_patch() {
    let (env, scim) = setup("", &org(5, 40));
    assert_eq!(env.sync(&[]).code, 0);
    let before = scim.writes().len();
    let mut doc = org(5, 40);
    doc["departments"][1]["name"] = json!("Research");
    for u in doc["users"].as_array_mut().unwrap().iter_mut().take(4) {
        u["department_ids"] = json!(["d1"]);
    }
    env.write_org(&doc);
    assert_eq!(env.sync(&[]).code, 0);
    let patches = group_patches(&scim, before);
    assert_eq!(patches.len(), 4, "Dept 1 and the three groups the users left: {patches:?}");
    assert!(patches.iter().all(|(_, n)| *n == 1), "one PATCH per group: {patches:?}");
    let groups = scim.groups();
    assert_eq!(members(group_named(&groups, "Research")).len(), 8 + 3 + 1, "its users, the three newcomers and Dept 4");
    let before = scim.writes().len();
    assert_eq!(env.sync(&[]).code, 0);
    assert_eq!(scim.writes().len(), before, "converged");
}

#[test]
fn an_edited_email_is_exactly_one_update() {
    let mut doc = org(3, 5);
    let (env, scim) = setup("", &doc);
    assert_eq!(env.sync(&[]).code, 0);
    doc["users"][2]["email"] = json!("new.address@example.test");
    env.write_org(&doc);
    // Matching is by email, but the binding comes first: the user is updated, not recreated.
    let before = scim.writes().len();
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let writes = &scim.writes()[before..];
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].0, "PATCH");
    assert_eq!(scim.users().len(), 5);
    assert_eq!(scim.user_by_name("user2").unwrap()["emails"][0]["value"], "new.address@example.test");
}

fn remove_user_with(policy: &str) -> Scim {
    let mut doc = org(2, 10);
    let (env, scim) = setup(&format!("[policy.users]\ntarget_only = \"{policy}\"\n"), &doc);
    assert_eq!(env.sync(&[]).code, 0);
    doc["users"].as_array_mut().unwrap().remove(4);
    env.write_org(&doc);
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    scim
}

#[test]
fn a_removed_user_is_kept_under_ignore() {
    let scim = remove_user_with("ignore");
    assert_eq!(scim.users().len(), 10);
    assert_eq!(scim.user_by_name("user4").unwrap()["active"], true);
}

#[test]
fn a_removed_user_is_deleted_under_delete() {
    let scim = remove_user_with("delete");
    assert_eq!(scim.users().len(), 9);
    assert!(scim.user_by_name("user4").is_none());
}

#[test]
fn a_removed_user_is_set_inactive_under_disable() {
    let scim = remove_user_with("disable");
    assert_eq!(scim.users().len(), 10);
    assert_eq!(scim.user_by_name("user4").unwrap()["active"], false);
}

#[test]
fn a_direct_scim_account_is_left_alone_then_bound_not_duplicated() {
    let mut doc = org(1, 3);
    let (env, scim) = setup("", &doc);
    let direct = scim.post(
        "Users",
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "zoe.direct",
               "emails": [{"value": "Zoe@Example.test", "type": "work", "primary": true}]}),
    );
    assert_eq!(env.sync(&[]).code, 0);
    assert_eq!(scim.users().len(), 4);
    assert!(scim.user_by_name("zoe.direct").unwrap().get("externalId").is_none(), "left alone under ignore");

    doc["users"].as_array_mut().unwrap().push(json!({
        "id": "hr-77", "username": "zoe", "name": "Zoe", "email": "zoe@example.test", "department_ids": ["d0"]
    }));
    env.write_org(&doc);
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let users = scim.users();
    assert_eq!(users.len(), 4, "bound, not duplicated");
    let zoe = users.iter().find(|u| u["id"] == direct["id"]).unwrap();
    assert_eq!(zoe["externalId"], "hr-77");
    assert_eq!(zoe["userName"], "zoe");
}

#[test]
fn a_renamed_and_a_moved_department_are_updated_not_recreated() {
    let mut doc = org(4, 4); // d0 <- d1, d2, d3
    let (env, scim) = setup("[policy.departments]\ntarget_only = \"delete\"\n", &doc);
    assert_eq!(env.sync(&[]).code, 0);
    let ids_before: Vec<Value> = scim.groups().iter().map(|g| g["id"].clone()).collect();
    doc["departments"][1]["name"] = json!("Dept 1 renamed");
    doc["departments"][3]["parent_id"] = json!("d2"); // move d3 under d2
    env.write_org(&doc);
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let groups = scim.groups();
    let ids_after: Vec<Value> = groups.iter().map(|g| g["id"].clone()).collect();
    assert_eq!(ids_before, ids_after, "no group was recreated");
    let d3 = group_named(&groups, "Dept 3")["id"].as_str().unwrap().to_owned();
    assert!(members(group_named(&groups, "Dept 2")).contains(&d3));
    assert!(!members(group_named(&groups, "Dept 0")).contains(&d3));
    group_named(&groups, "Dept 1 renamed");
}

#[test]
fn the_guard_holds_back_mass_deletes_until_allowed() {
    let mut doc = org(2, 20);
    let (env, scim) = setup("[policy.users]\ntarget_only = \"delete\"\n", &doc);
    assert_eq!(env.sync(&[]).code, 0);
    doc["users"].as_array_mut().unwrap().truncate(10);
    env.write_org(&doc);

    let r = env.sync(&[]);
    assert_eq!(r.code, 3, "partial: {}\n{}", r.stdout, r.stderr);
    assert_eq!(scim.users().len(), 20, "nothing deleted");
    let s = env.status_json();
    assert_eq!(s["status"], "partial");
    let msg = s["runs"][0]["message"].as_str().unwrap();
    assert!(msg.contains("max_delete_percent"), "{msg}");
    assert_eq!(s["runs"][0]["counts"]["user.delete.held_back"], 10);

    let r = env.sync(&["--allow-deletes", "10"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(scim.users().len(), 10);
}

#[test]
fn a_dry_run_prints_the_plan_and_writes_nothing_anywhere() {
    let (env, scim) = setup("", &org(2, 3));
    let r = env.sync(&["--dry-run", "--output", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let plan: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(plan["ops"].as_array().unwrap().len(), 5);
    assert_eq!(plan["ops"][0]["op"], "create_department");
    assert!(scim.writes().is_empty());
    assert!(!env.path("state/mirror.db").exists(), "dry run created the mirror");
    let r = env.sync(&["--dry-run"]);
    assert!(r.stdout.contains("Dry run: nothing was changed"), "{}", r.stdout);
}

#[test]
fn an_inactive_user_is_pushed_inactive_and_reactivated() {
    let mut doc = org(1, 2);
    // One of two users turned inactive is half of them: the guard would hold it.
    let (env, scim) = setup("[policy.guard]\nmax_delete_percent = 100", &doc);
    assert_eq!(env.sync(&[]).code, 0);
    doc["users"][1]["active"] = json!(false);
    env.write_org(&doc);
    assert_eq!(env.sync(&[]).code, 0);
    assert_eq!(scim.user_by_name("user1").unwrap()["active"], false);
    doc["users"][1]["active"] = json!(true);
    env.write_org(&doc);
    assert_eq!(env.sync(&[]).code, 0);
    assert_eq!(scim.user_by_name("user1").unwrap()["active"], true);
    assert_eq!(scim.users().len(), 2);
}

#[test]
fn runs_show_lists_each_item() {
    let (env, _scim) = setup("", &org(1, 2));
    assert_eq!(env.sync(&[]).code, 0);
    let r = env.orgsync(&["runs", "show", "1", "--output", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 4, "a department, two users, and the department's members in one request: {items:#?}");
    assert!(items.iter().all(|i| i["outcome"] == "ok"));
    assert!(items.iter().any(|i| i["op"] == "members" && i["error"].as_str().is_some_and(|e| e.contains("2 added"))), "{items:#?}");
    let r = env.orgsync(&["runs", "show", "1"]);
    assert!(r.stdout.contains("user2") || r.stdout.contains("u1"), "{}", r.stdout);
}

#[test]
fn a_username_taken_by_an_unrelated_account_is_an_item_error_and_the_rest_is_applied() {
    let doc = org(1, 3);
    let (env, scim) = setup("", &doc);
    // An unrelated account already holds user1's userName, with another email.
    let other = scim.post(
        "Users",
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "user1",
               "emails": [{"value": "someone.else@example.test", "type": "work", "primary": true}]}),
    );
    let r = env.sync(&[]);
    assert_eq!(r.code, 3, "partial: {}\n{}", r.stdout, r.stderr);
    let users = scim.users();
    assert_eq!(users.len(), 3, "user0 and user2 created, user1 not");
    let untouched = users.iter().find(|u| u["id"] == other["id"]).unwrap();
    assert!(untouched.get("externalId").is_none(), "the unrelated account was taken over: {untouched}");
    let v: Value = serde_json::from_str(&env.orgsync(&["runs", "show", "1", "--output", "json"]).stdout).unwrap();
    let failed: Vec<&Value> = v["items"].as_array().unwrap().iter().filter(|i| i["outcome"] == "failed").collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["source_id"], "u1");
    assert!(failed[0]["error"].as_str().unwrap().contains("HTTP 409"), "{}", failed[0]["error"]);
}

#[test]
fn users_without_an_email_are_created_once_and_the_run_succeeds() {
    let mut doc = org(3, 6);
    for i in [1, 4] {
        doc["users"][i].as_object_mut().unwrap().remove("email");
    }
    let (env, scim) = setup("", &doc);
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "a healthy org is not partial\n{}\n{}", r.stdout, r.stderr);
    assert_eq!(scim.users().len(), 6);
    let u = scim.user_by_name("user1").unwrap();
    assert_eq!(u["externalId"], "u1");
    let items = env.orgsync(&["runs", "show", "1", "--output", "json"]);
    let items: Value = serde_json::from_str(&items.stdout).unwrap();
    let notes: Vec<&str> = items["items"].as_array().unwrap().iter().filter_map(|i| i["error"].as_str()).collect();
    assert_eq!(notes.iter().filter(|n| n.contains("without a match key")).count(), 2, "{notes:?}");
    // The next runs bind them by externalId: no duplicate, nothing to do.
    let before = scim.writes().len();
    assert_eq!(env.sync(&[]).code, 0);
    assert_eq!(scim.writes().len(), before);
    assert_eq!(scim.users().len(), 6);
}

#[test]
fn users_without_an_email_are_skipped_when_create_without_match_keys_is_false() {
    let mut doc = org(3, 6);
    doc["users"][1].as_object_mut().unwrap().remove("email");
    let (env, scim) = setup("[policy.users]\ncreate_without_match_keys = false\n", &doc);
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(scim.users().len(), 5);
    assert!(scim.user_by_name("user1").is_none());
}

#[test]
fn a_user_in_a_department_missing_from_the_file_is_reported_and_the_run_is_partial() {
    let mut doc = org(3, 4);
    doc["users"][2]["department_ids"] = json!(["d2", "d-gone"]);
    let (env, scim) = setup("", &doc);
    let r = env.sync(&[]);
    assert_eq!(r.code, 3, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(scim.users().len(), 4, "the user is still created, in the departments that exist");
    let shown = env.orgsync(&["runs", "show", "1"]);
    assert!(shown.stdout.contains("d-gone") && shown.stdout.contains("invalid"), "{}", shown.stdout);
}

#[test]
fn runs_show_changes_says_what_each_item_changed_and_why_accounts_went() {
    let mut doc = org(2, 4);
    let (env, _scim) = setup("[policy.users]\ntarget_only = \"disable\"\n[policy.guard]\nmax_delete_percent = 100", &doc);
    assert_eq!(env.sync(&[]).code, 0);
    let created = env.orgsync(&["runs", "show", "1", "--output", "json"]);
    let v: Value = serde_json::from_str(&created.stdout).unwrap();
    let u0 = v["items"].as_array().unwrap().iter().find(|i| i["op"] == "create" && i["source_id"] == "u0").unwrap();
    let set: Vec<&str> = u0["changes"].as_array().unwrap().iter().filter_map(|c| c["field"].as_str()).collect();
    assert!(set.contains(&"email") && set.contains(&"name") && set.contains(&"username"), "a create lists what it sets: {u0}");

    doc["users"][1]["email"] = json!("renamed@example.test");
    doc["users"][1]["name"] = json!("Renamed One");
    doc["users"].as_array_mut().unwrap().retain(|u| u["id"] != "u3");
    env.write_org(&doc);
    assert_eq!(env.sync(&[]).code, 0);
    let r = env.orgsync(&["runs", "show", "2", "--changes"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("email: user1@example.test -> renamed@example.test"), "{}", r.stdout);
    assert!(r.stdout.contains("name: User 1 -> Renamed One"), "{}", r.stdout);
    assert!(r.stdout.contains("1 × user disable: left the source (policy.users.target_only = disable)"), "{}", r.stdout);
    assert!(r.stdout.contains("active: true -> false"), "a disable says what it changed: {}", r.stdout);
    let v: Value = serde_json::from_str(&env.orgsync(&["runs", "show", "2", "--output", "json"]).stdout).unwrap();
    let update = v["items"].as_array().unwrap().iter().find(|i| i["op"] == "update").unwrap();
    assert_eq!(update["changes"].as_array().unwrap().len(), 2, "{update}");

    // A move: departments named by source id on both sides.
    doc["users"][0]["department_ids"] = json!(["d1"]);
    env.write_org(&doc);
    assert_eq!(env.sync(&[]).code, 0);
    let r = env.orgsync(&["runs", "show", "3", "--changes"]);
    assert!(r.stdout.contains("departments: d0 -> d1"), "{}", r.stdout);
}

#[test]
fn a_leaver_is_disabled_reenabled_on_return_and_deleted_after_the_grace_period() {
    let doc = org(1, 4);
    let (env, scim) = setup(
        "[policy.users]\ntarget_only = \"disable_then_delete\"\ndelete_after = \"2s\"\n[policy.guard]\nmax_deletes = 10\nmax_delete_percent = 100",
        &doc,
    );
    assert_eq!(env.sync(&[]).code, 0);
    let id = scim.user_by_name("user2").unwrap()["id"].as_str().unwrap().to_owned();
    let mut gone = doc.clone();
    gone["users"].as_array_mut().unwrap().retain(|u| u["id"] != "u2");
    // Leaves: disabled, waiting.
    env.write_org(&gone);
    assert_eq!(env.sync(&[]).code, 0);
    assert_eq!(scim.user_by_name("user2").unwrap()["active"], false);
    let s = env.status_json();
    assert_eq!(s["waiting_for_deletion"]["waiting"], 1, "{s}");
    assert!(s["waiting_for_deletion"]["next_due"].is_string(), "{s}");
    // Returns: re-enabled on the same account.
    env.write_org(&doc);
    assert_eq!(env.sync(&[]).code, 0);
    let back = scim.user_by_name("user2").unwrap();
    assert_eq!((back["id"].as_str(), &back["active"]), (Some(id.as_str()), &json!(true)));
    assert_eq!(env.status_json()["waiting_for_deletion"]["waiting"], 0);
    // Leaves again, and stays gone past the grace period: deleted.
    env.write_org(&gone);
    assert_eq!(env.sync(&[]).code, 0);
    let dry = env.sync(&["--dry-run"]);
    assert!(dry.stdout.contains("scheduled"), "the dry run says what falls due: {}", dry.stdout);
    // Until the deletion falls due, as the status says (to the second,
    // rounded down: the due time is before the next second).
    let due = env.status_json()["waiting_for_deletion"]["next_due"].as_str().unwrap().to_owned();
    let due = chrono::DateTime::parse_from_rfc3339(&due).unwrap() + chrono::Duration::seconds(1);
    while chrono::Utc::now() <= due {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(env.sync(&[]).code, 0);
    assert!(scim.user_by_name("user2").is_none(), "deleted after the grace period");
    let r = env.orgsync(&["runs", "show", "5"]);
    assert!(r.stdout.contains("grace period over"), "{}", r.stdout);
    assert_eq!(scim.users().len(), 3);
}

/// scim2-server keeps a member reference to a group that was deleted: a
/// department's group leaves its parent's members before it goes, so the
/// parent lists no dead member and the next run has nothing to do.
#[test]
fn a_deleted_departments_group_leaves_its_parent_first_and_nothing_dead_is_left() {
    let mut doc = org(4, 8);
    let (env, scim) = setup("[policy.departments]\ntarget_only = \"delete\"\n[policy.guard]\nmax_department_delete_percent = 100", &doc);
    assert_eq!(env.sync(&[]).code, 0);
    // d1 (under d0) goes; its users move to d0.
    doc["departments"].as_array_mut().unwrap().retain(|d| d["id"] != "d1");
    for u in doc["users"].as_array_mut().unwrap() {
        if u["department_ids"] == json!(["d1"]) {
            u["department_ids"] = json!(["d0"]);
        }
    }
    env.write_org(&doc);
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let groups = scim.groups();
    let ids: Vec<&str> = groups.iter().filter_map(|g| g["id"].as_str()).collect();
    let users = scim.users();
    for g in &groups {
        for m in g["members"].as_array().into_iter().flatten() {
            let v = m["value"].as_str().unwrap();
            assert!(ids.contains(&v) || users.iter().any(|u| u["id"] == v), "{} lists a dead member {v}: {g:#}", g["displayName"]);
        }
    }
    let before = scim.writes().len();
    assert_eq!(env.sync(&[]).code, 0);
    assert_eq!(&scim.writes()[before..], &[] as &[(String, String, u16)], "settled");
}
