//! SCIMMY (npm scimmy 1.3.5 + scimmy-routers 1.3.2 on express 4) over our
//! in-memory store (tests/servers/scimmy): nested groups, the enterprise
//! extension, filters, PATCH, paging.

use crate::harness::{Env, Scim, TOKEN, org};
use serde_json::{Value, json};

fn setup(extra: &str, doc: &Value) -> (Env, Scim) {
    setup_with(&[], extra, doc)
}

fn setup_with(options: &[&str], extra: &str, doc: &Value) -> (Env, Scim) {
    let env = Env::new();
    let scim = Scim::scimmy_with(env.dir.path(), options);
    env.scim_config(&scim, extra);
    env.write_org(doc);
    (env, scim)
}

fn by_external_id<'a>(objects: &'a [Value], id: &str) -> &'a Value {
    objects.iter().find(|o| o["externalId"] == id).unwrap_or_else(|| panic!("no {id} in {objects:#?}"))
}

fn member_ids(g: &Value) -> Vec<&str> {
    let mut m: Vec<&str> = g["members"].as_array().into_iter().flatten().filter_map(|m| m["value"].as_str()).collect();
    m.sort();
    m
}

fn assert_idle(env: &Env, scim: &Scim) {
    let before = scim.writes().len();
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(&scim.writes()[before..], &[] as &[(String, String, u16)], "an idle run writes nothing");
}

#[test]
fn the_full_cycle_converges_with_idle_runs_writing_nothing() {
    let (env, scim) = setup("page_size = 50\n[policy.users]\ntarget_only = \"disable\"", &org(13, 250));
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!((scim.users().len(), scim.groups().len()), (250, 13));
    let u3 = scim.user_by_name("user3").unwrap();
    assert_eq!(u3["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"], "Dept 3");
    let groups = scim.groups();
    let d1 = by_external_id(&groups, "d1")["id"].as_str().unwrap();
    assert!(member_ids(by_external_id(&groups, "d0")).contains(&d1), "the tree as nested groups");
    assert!(member_ids(by_external_id(&groups, "d3")).contains(&u3["id"].as_str().unwrap()));
    assert_idle(&env, &scim);

    // A rename, a move, a leaver, a deactivation, a removed department.
    let mut doc = org(13, 250);
    doc["departments"][2]["name"] = json!("Renamed");
    doc["departments"][12]["parent_id"] = json!("d2");
    let users = doc["users"].as_array_mut().unwrap();
    users[5]["active"] = json!(false);
    users[7]["department_ids"] = json!(["d2"]);
    users.retain(|u| u["id"] != "u4");
    env.write_org(&doc);
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let groups = scim.groups();
    assert_eq!(by_external_id(&groups, "d2")["displayName"], "Renamed");
    let d12 = by_external_id(&groups, "d12")["id"].as_str().unwrap();
    assert!(member_ids(by_external_id(&groups, "d2")).contains(&d12), "moved under d2");
    assert!(!member_ids(by_external_id(&groups, "d3")).contains(&d12), "and out of d3");
    let users = scim.users();
    assert_eq!(by_external_id(&users, "u4")["active"], false, "the leaver is disabled");
    assert_eq!(by_external_id(&users, "u5")["active"], false);
    let u7 = by_external_id(&users, "u7")["id"].as_str().unwrap();
    assert!(member_ids(by_external_id(&groups, "d2")).contains(&u7) && !member_ids(by_external_id(&groups, "d7")).contains(&u7));
    assert_idle(&env, &scim);
}

#[test]
fn a_foreign_account_holding_a_username_is_a_clean_409_item() {
    let (env, scim) = setup("", &org(1, 3));
    // An account nobody synced holds user1's userName, with another email.
    let foreign =
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "user1", "emails": [{"value": "other@x.test"}]});
    let r = reqwest::blocking::Client::new().post(format!("{}/Users", scim.base)).bearer_auth(TOKEN).json(&foreign).send().unwrap();
    assert_eq!(r.status(), 201);
    let r = env.sync(&["--output", "json"]);
    assert_eq!(r.code, 3, "{}\n{}", r.stdout, r.stderr);
    let shown = env.orgsync(&["runs", "show", "1", "--output", "json"]);
    let v: Value = serde_json::from_str(&shown.stdout).unwrap();
    let failed: Vec<&Value> = v["items"].as_array().unwrap().iter().filter(|i| i["outcome"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{v:#}");
    let e = failed[0]["error"].as_str().unwrap();
    assert!(e.contains("409") && e.contains("not bound") && !e.contains('<'), "{e}");
    assert_eq!(scim.users().len(), 3, "the foreign account is left alone, the others created");
}

/// Our store keeps group names unique, as many SaaS targets do: the second
/// "Team" gets 409. It is never bound to the first one's group (that would
/// put its members into the other department): it takes a name of its own,
/// `Team (Support)`, kept run after run, and a rename finds a free name.
#[test]
fn a_server_keeping_group_names_unique_gives_each_department_its_own_group_with_a_stable_name() {
    let mut doc = crate::harness::same_named_teams();
    let (env, scim) = setup_with(&["unique-groups"], "", &doc);
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let check = |names: [(&str, &str, &str); 2]| {
        let groups = scim.groups();
        let users = scim.users();
        let id_of = |name: &str| users.iter().find(|u| u["userName"] == name).unwrap()["id"].as_str().unwrap().to_owned();
        for (ext, shown, member) in names {
            let g = by_external_id(&groups, ext);
            assert_eq!(g["displayName"], shown, "{g:#}");
            let members = member_ids(g);
            assert_eq!(members, [id_of(member).as_str()], "{ext}: {g:#}");
        }
    };
    // Read through the server: each department its own group, with its own member.
    let (first, second) = {
        let groups = scim.groups();
        if by_external_id(&groups, "sales-team")["displayName"] == "Team" { ("sales", "Support") } else { ("support", "Sales") }
    };
    let (named, other) = if first == "sales" { ("sales-team", "support-team") } else { ("support-team", "sales-team") };
    let (m1, m2) = if first == "sales" { ("seller", "helper") } else { ("helper", "seller") };
    let unique = format!("Team ({second})");
    check([(named, "Team", m1), (other, unique.as_str(), m2)]);
    for _ in 0..2 {
        assert_idle(&env, &scim);
    }
    // The one with its own name is renamed: it goes; the names stay unique.
    let i = if other == "support-team" { 4 } else { 3 };
    doc["departments"][i]["name"] = json!("Squad");
    env.write_org(&doc);
    assert_eq!(env.sync(&[]).code, 0);
    check([(named, "Team", m1), (other, "Squad", m2)]);
    assert_idle(&env, &scim);
}

/// `target.unique_name` names the second "Team" as the admin wants, the
/// name is read back through it run after run, and a new template renames
/// such a group once.
#[test]
fn the_name_a_repeated_group_takes_follows_the_template() {
    let doc = crate::harness::same_named_teams();
    let (env, scim) = setup_with(&["unique-groups"], "unique_name = \"{parent} / {name}\"", &doc);
    assert_eq!(env.sync(&[]).code, 0);
    let names = || {
        let groups = scim.groups();
        let mut n = [by_external_id(&groups, "sales-team"), by_external_id(&groups, "support-team")]
            .map(|g| g["displayName"].as_str().unwrap().to_owned());
        n.sort();
        n
    };
    let first = names();
    assert!(first == ["Sales / Team", "Team"] || first == ["Support / Team", "Team"], "{first:?}");
    assert_idle(&env, &scim);
    // Its parent is renamed, then it moves: the name made after the parent
    // follows in the same run (never a rename a run later).
    let mut doc = doc;
    let (parent, team) = if first[0].starts_with("Sales") { (1, 3) } else { (2, 4) };
    doc["departments"][parent]["name"] = json!("Helpdesk");
    env.write_org(&doc);
    assert_eq!(env.sync(&[]).code, 0);
    assert_eq!(names(), ["Helpdesk / Team", "Team"]);
    assert_idle(&env, &scim);
    doc["departments"][team]["parent_id"] = json!("d0");
    env.write_org(&doc);
    assert_eq!(env.sync(&[]).code, 0);
    assert_eq!(names(), ["HQ / Team", "Team"]);
    assert_idle(&env, &scim);
    // Another template: the group named by the old one is renamed once.
    env.scim_config(&scim, "");
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(names(), ["Team", "Team (HQ)"]);
    assert_idle(&env, &scim);
    // A template that cannot work is named with its key.
    env.scim_config(&scim, "unique_name = \"{name} ({dept})\"");
    let r = env.orgsync(&["check-config"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("target.unique_name") && r.stderr.contains("{dept}"), "{}", r.stderr);
}

/// A store that soft-deletes (DELETE answers 204 and the user stays listed,
/// inactive, as django-scim2-server does): the user counts as deleted, is
/// never deleted again, and a re-hire reactivates the same account.
#[test]
fn a_soft_deleted_user_is_a_tombstone_never_deleted_again_and_a_rehire_reactivates_it() {
    let env = Env::new();
    let scim = Scim::scimmy_with(env.dir.path(), &["soft-delete"]);
    env.scim_config(&scim, "[policy.users]\ntarget_only = \"delete\"\n[policy.guard]\nmax_delete_percent = 100");
    let mut doc = org(2, 6);
    env.write_org(&doc);
    assert_eq!(env.sync(&[]).code, 0);
    let id = scim.user_by_name("user5").unwrap()["id"].as_str().unwrap().to_owned();
    let leaver = doc["users"].as_array_mut().unwrap().pop().unwrap();
    env.write_org(&doc);
    assert_eq!(env.sync(&[]).code, 0);
    let kept = scim.user_by_name("user5").expect("the store keeps it");
    assert_eq!(kept["active"], false, "{kept}");
    let deletes = || scim.writes().iter().filter(|(m, _, _)| m == "DELETE").count();
    assert_eq!(deletes(), 1);
    for _ in 0..2 {
        assert_idle(&env, &scim);
    }
    assert_eq!(deletes(), 1, "deleted again");
    // Back: the same account, active again.
    doc["users"].as_array_mut().unwrap().push(leaver);
    env.write_org(&doc);
    assert_eq!(env.sync(&[]).code, 0);
    let back = scim.user_by_name("user5").unwrap();
    assert_eq!((back["id"].as_str(), &back["active"]), (Some(id.as_str()), &json!(true)), "{back}");
    assert_eq!(scim.users().len(), 6, "no duplicate");
    assert_idle(&env, &scim);
}
