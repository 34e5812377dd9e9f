//! Managers and extra attributes (`[mapping.attributes]`), through the
//! binary, judged by each target's own state: scim2-server's enterprise
//! extension, slapd's `manager` DN and schema-checked attributes, and a
//! Keycloak realm's user attributes.

use crate::harness::{Env, Scim, org};
use crate::keycloak::Keycloak;
use crate::ldap_target::{assert_idle, base_ldif, config, last_run, ok, user};
use crate::slapd::{SUFFIX, Slapd};
use serde_json::{Value, json};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// Six users: u1 reports to u0, u2 to u1, u3 and u4 manage each other, u5's
/// manager is nobody the source has; u0..u2 have a cost center.
fn managed_org() -> Value {
    let mut doc = org(3, 6);
    for (u, m) in [(1, "u0"), (2, "u1"), (3, "u4"), (4, "u3"), (5, "ghost")] {
        doc["users"][u]["manager_id"] = json!(m);
    }
    for u in 0..3 {
        doc["users"][u]["attributes"] = json!({"cost_center": format!("CC-{u}")});
    }
    doc
}

/// The items of run `id` with `outcome`: their errors.
fn items(env: &Env, id: &str, outcome: &str) -> Vec<String> {
    let shown: Value = serde_json::from_str(&env.orgsync(&["runs", "show", id, "--output", "json"]).stdout).unwrap();
    shown["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["outcome"] == outcome)
        .map(|i| i["error"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn managers_created_in_the_same_run_and_a_cost_center_reach_scim2_server_then_leavers_clear_them() {
    let env = Env::new();
    let scim = Scim::start(env.dir.path());
    env.scim_config(&scim, "[mapping.attributes]\ncostCenter = \"attributes.cost_center\"\n");
    let mut doc = managed_org();
    env.write_org(&doc);
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(env.status_json()["status"], "succeeded", "a manager nobody has is said, not a failure");
    let id = |name: &str| scim.user_by_name(name).unwrap()["id"].as_str().unwrap().to_owned();
    let manager = |name: &str| scim.user_by_name(name).unwrap()[ENTERPRISE]["manager"]["value"].as_str().map(str::to_owned);
    // Every manager was created in this very run: referenced in it.
    assert_eq!(manager("user1"), Some(id("user0")));
    assert_eq!(manager("user2"), Some(id("user1")));
    assert_eq!((manager("user3"), manager("user4")), (Some(id("user4")), Some(id("user3"))), "a cycle is written as given");
    assert_eq!(manager("user0"), None);
    assert_eq!(manager("user5"), None, "a manager the source does not have is left absent");
    assert_eq!(scim.user_by_name("user2").unwrap()[ENTERPRISE]["costCenter"], "CC-2");
    let said = items(&env, "1", "out_of_scope");
    assert_eq!(said.iter().filter(|m| m.contains("manager ghost")).count(), 1, "reported once: {said:?}");
    let writes = scim.writes().len();
    assert_eq!(env.sync(&[]).code, 0);
    assert_eq!(scim.writes().len(), writes, "idle: {:?}", &scim.writes()[writes..]);

    // user0 leaves (inactive): user1's manager is cleared; user2 moves to user3; a cost center changes.
    doc["users"][0]["active"] = json!(false);
    doc["users"][2]["manager_id"] = json!("u3");
    doc["users"][1]["attributes"] = json!({"cost_center": "CC-9"});
    env.write_org(&doc);
    assert_eq!(env.sync(&[]).code, 0);
    assert_eq!(manager("user1"), None, "a leaver's reports lose the manager (clear_when_empty)");
    assert_eq!(manager("user2"), Some(id("user3")));
    assert_eq!(scim.user_by_name("user1").unwrap()[ENTERPRISE]["costCenter"], "CC-9");
    let writes = scim.writes().len();
    assert_eq!(env.sync(&[]).code, 0);
    assert_eq!(scim.writes().len(), writes, "idle after the change cycle: {:?}", &scim.writes()[writes..]);

    // A document without `manager_id` says nothing of managers (as before
    // they were synced): the target's are kept; `null` is none.
    doc["users"][2].as_object_mut().unwrap().remove("manager_id");
    doc["users"][3]["manager_id"] = Value::Null;
    env.write_org(&doc);
    assert_eq!(env.sync(&[]).code, 0);
    assert_eq!(manager("user2"), Some(id("user3")), "kept");
    assert_eq!(manager("user3"), None, "null clears it");
}

#[test]
fn an_attribute_the_scim_server_has_no_schema_for_fails_before_any_write_naming_it() {
    let env = Env::new();
    let scim = Scim::start(env.dir.path());
    env.scim_config(&scim, "[mapping.attributes]\nbadgeColour = \"attributes.cost_center\"\n");
    env.write_org(&managed_org());
    let r = env.sync(&[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let message = last_run(&env)["message"].as_str().unwrap().to_owned();
    assert!(message.contains("[mapping.attributes] badgeColour") && message.contains("/Schemas"), "{message}");
    assert!(scim.users().is_empty(), "nothing was written");
}

#[test]
fn ldap_manager_is_the_manager_s_dn_and_extra_attributes_are_checked_against_the_schema() {
    let env = Env::new();
    let slapd = Slapd::start(env.dir.path(), &base_ldif());
    let tail = "[mapping.attributes]\nemployeeType = \"attributes.cost_center\"\n";
    config(&env, &slapd.url, "disable = \"delete\"\n", tail);
    let mut doc = managed_org();
    env.write_org(&doc);
    ok(&env.sync(&[]));
    let dn = |uid: &str| user(&slapd, uid).unwrap().dn;
    assert_eq!(user(&slapd, "user1").unwrap().get("manager"), Some(dn("user0").as_str()));
    assert_eq!(user(&slapd, "user3").unwrap().get("manager"), Some(dn("user4").as_str()));
    assert_eq!(user(&slapd, "user4").unwrap().get("manager"), Some(dn("user3").as_str()));
    assert_eq!(user(&slapd, "user5").unwrap().get("manager"), None);
    assert_eq!(user(&slapd, "user0").unwrap().get("employeeType"), Some("CC-0"));
    assert_idle(&env);

    // The manager moves to another department (a new DN): the report follows.
    doc["users"][0]["department_ids"] = json!(["d2"]);
    doc["users"][1]["attributes"] = json!({});
    env.write_org(&doc);
    ok(&env.sync(&[]));
    assert!(dn("user0").contains("ou=Dept 2"), "{}", dn("user0"));
    assert_eq!(user(&slapd, "user1").unwrap().get("manager"), Some(dn("user0").as_str()));
    assert_eq!(user(&slapd, "user1").unwrap().get("employeeType"), None, "an emptied attribute is cleared");
    assert_idle(&env);

    // An attribute the schema does not allow on users: the run fails naming it, writing nothing.
    config(&env, &slapd.url, "disable = \"delete\"\n", "[mapping.attributes]\nfavouriteColour = \"attributes.cost_center\"\n");
    let r = env.sync(&[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let message = last_run(&env)["message"].as_str().unwrap().to_owned();
    assert!(message.contains("mapping.attributes.favouriteColour: favouriteColour is not allowed on"), "{message}");
    let _ = SUFFIX;
}

#[test]
fn keycloak_holds_the_manager_and_extra_attributes_as_user_attributes() {
    let kc = Keycloak::shared();
    let realm = "orgsync-managers";
    let secret = kc.realm(realm);
    let env = Env::new();
    crate::rest::keycloak_config(&env, kc, realm, &secret, "[mapping.attributes]\ncost_center = \"attributes.cost_center\"\n");
    let mut doc = managed_org();
    env.write_org(&doc);
    ok(&env.sync(&[]));
    let users = kc.users(realm);
    let by = |name: &str| users.iter().find(|u| u["username"] == name).unwrap().clone();
    assert_eq!(by("user1")["attributes"]["manager"][0], by("user0")["id"], "{}", by("user1"));
    assert_eq!(by("user3")["attributes"]["manager"][0], by("user4")["id"]);
    assert_eq!(by("user2")["attributes"]["cost_center"][0], "CC-2");
    assert!(by("user5")["attributes"]["manager"].is_null());
    assert_idle(&env);
    // A mobile change rewrites the whole user (PUT): the manager stays.
    doc["users"][1]["mobile"] = json!("+86 138 0000 0001");
    env.write_org(&doc);
    ok(&env.sync(&[]));
    let users = kc.users(realm);
    let u1 = users.iter().find(|u| u["username"] == "user1").unwrap();
    let u0 = users.iter().find(|u| u["username"] == "user0").unwrap();
    assert_eq!((u1["attributes"]["mobile"][0].as_str(), &u1["attributes"]["manager"][0]), (Some("+86 138 0000 0001"), &u0["id"]));
    assert_idle(&env);
}

/// The SCIM user whose externalId is `ext`.
fn by_external_id(scim: &Scim, ext: &str) -> Value {
    scim.users().into_iter().find(|u| u["externalId"] == ext).unwrap_or_else(|| panic!("no user {ext}"))
}

/// `ext`'s manager as the SCIM server holds it, as the manager's externalId.
fn manager_of(scim: &Scim, ext: &str) -> Option<String> {
    let users = scim.users();
    let m = users.iter().find(|u| u["externalId"] == ext)?[ENTERPRISE]["manager"]["value"].as_str()?.to_owned();
    users.iter().find(|u| u["id"] == m.as_str()).and_then(|u| u["externalId"].as_str()).map(str::to_owned)
}

#[test]
fn feishu_wecom_and_entra_give_their_managers_by_default_and_a_custom_field_reaches_the_target() {
    use crate::{fake_feishu, fake_graph, fake_wecom};
    // Feishu: leader_user_id (in the id type asked for), and a field of the tenant's own.
    let env = Env::new();
    let scim = Scim::in_process();
    let feishu = fake_feishu::FakeFeishu::start(fake_feishu::org());
    let (boss, report) = {
        let mut w = feishu.world.lock().unwrap();
        let boss_open = w.users[0]["open_id"].clone();
        w.users[1]["leader_user_id"] = boss_open;
        w.users[0]["work_station"] = json!("B-1");
        (w.users[0]["union_id"].as_str().unwrap().to_owned(), w.users[1]["union_id"].as_str().unwrap().to_owned())
    };
    let source = format!(
        "kind = \"feishu\"\nbase_url = \"{}\"\napp_id = \"{}\"\napp_secret = \"{}\"\n",
        feishu.base,
        fake_feishu::APP_ID,
        fake_feishu::APP_SECRET
    );
    env.scim_config_with_source(&scim, &source, "[mapping.attributes]\ncostCenter = \"work_station\"\n");
    ok(&env.sync(&[]));
    assert_eq!(manager_of(&scim, &report), Some(boss.clone()));
    assert_eq!(by_external_id(&scim, &boss)[ENTERPRISE]["costCenter"], "B-1");
    assert!(env.sync(&["--dry-run"]).stdout.contains("Nothing to do"));
    assert_eq!(feishu.unexpected(), Vec::<String>::new());

    // WeCom: the first of direct_leader.
    let env = Env::new();
    let scim = Scim::in_process();
    let wecom = fake_wecom::FakeWeCom::start(fake_wecom::org());
    {
        let mut w = wecom.world.lock().unwrap();
        w.users[2]["direct_leader"] = json!(["wc0", "wc1"]);
    }
    let source = format!(
        "kind = \"wecom\"\nbase_url = \"{}\"\ncorp_id = \"{}\"\ncorp_secret = \"{}\"\n",
        wecom.base,
        fake_wecom::CORP_ID,
        fake_wecom::CORP_SECRET
    );
    env.scim_config_with_source(&scim, &source, "");
    ok(&env.sync(&[]));
    assert_eq!(manager_of(&scim, "wc2"), Some("wc0".to_owned()));
    assert_eq!(manager_of(&scim, "wc3"), None);
    assert!(env.sync(&["--dry-run"]).stdout.contains("Nothing to do"));
    assert_eq!(wecom.unexpected(), Vec::<String>::new());

    // Entra: $expand=manager($select=id) on the full fetch (pages of 100), kept through delta rounds.
    let env = Env::new();
    let scim = Scim::in_process();
    let mut world = fake_graph::org(150);
    let boss = world.users[0]["id"].as_str().unwrap().to_owned();
    world.users[120]["_manager"] = json!(boss);
    let report = world.users[120]["id"].as_str().unwrap().to_owned();
    let fake = fake_graph::FakeGraph::start(world);
    let source = format!(
        "kind = \"entra\"\ntenant = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nauthority_host = \"{3}\"\ngraph_host = \"{3}\"\n",
        fake_graph::TENANT,
        fake_graph::CLIENT_ID,
        fake_graph::CLIENT_SECRET,
        fake.base
    );
    env.scim_config_with_source(&scim, &source, "");
    ok(&env.sync(&[]));
    assert_eq!(manager_of(&scim, &report), Some(boss));
    // A delta round says nothing of managers: they are kept, nothing is cleared.
    ok(&env.sync(&[]));
    assert!(manager_of(&scim, &report).is_some());
    assert!(env.sync(&["--dry-run"]).stdout.contains("Nothing to do"));
    assert_eq!(fake.unexpected(), Vec::<String>::new());
}

/// DingTalk's `manager_userid` is documented on `user/get` only: a full run
/// (`user/list`) leaves managers as they are; a run by id sets one.
#[test]
fn dingtalk_managers_come_from_user_get_and_full_runs_never_clear_them() {
    use crate::fake_dingtalk::{APP_KEY, APP_SECRET, FakeDingTalk, org as dingtalk_org};
    let env = Env::new();
    let scim = Scim::in_process();
    let fake = FakeDingTalk::start(dingtalk_org());
    let (boss, report) = {
        let mut w = fake.world.lock().unwrap();
        let boss = w.users[0]["userid"].as_str().unwrap().to_owned();
        w.users[1]["manager_userid"] = json!(boss);
        (boss, w.users[1]["userid"].as_str().unwrap().to_owned())
    };
    let source = format!("kind = \"dingtalk\"\nbase_url = \"{}\"\napp_key = \"{APP_KEY}\"\napp_secret = \"{APP_SECRET}\"\n", fake.base);
    env.scim_config_with_source(&scim, &source, "");
    ok(&env.sync(&[]));
    assert_eq!(manager_of(&scim, &report), None, "user/list gives no manager: nothing written");
    ok(&env.sync(&["--only", &format!("user:{report}")]));
    assert_eq!(manager_of(&scim, &report), Some(boss.clone()), "user/get gives it");
    ok(&env.sync(&[]));
    assert_eq!(manager_of(&scim, &report), Some(boss), "a full run does not clear what it cannot see");
    assert!(env.sync(&["--dry-run"]).stdout.contains("Nothing to do"));
    assert_eq!(fake.unexpected(), Vec::<String>::new());
}

/// LDAP `manager` is a DN: the user read with it is the manager; a DN
/// outside the base is no manager orgsync knows (said, left alone).
#[test]
fn an_ldap_source_manager_dn_is_the_manager_read_and_one_outside_the_base_is_said() {
    use crate::slapd::{READER_DN, READER_PW, tree};
    let env = Env::new();
    let scim = Scim::in_process();
    let slapd = Slapd::start(env.dir.path(), &tree(10));
    let dn = |uid: &str| crate::ldap_target::search(&slapd, SUFFIX, &format!("(uid={uid})")).pop().unwrap().dn;
    let add_manager = |uid: &str, manager: &str| {
        slapd.modify(&format!("dn: {}\nchangetype: modify\nreplace: manager\nmanager: {manager}\n", dn(uid)));
    };
    add_manager("user1", &dn("user0"));
    add_manager("user2", &format!("uid=ghost,ou=Elsewhere,{SUFFIX}"));
    std::fs::write(env.path("bind-pw"), format!("{READER_PW}\n")).unwrap();
    let source = format!(
        "kind = \"ldap\"\nurl = \"{}\"\nbind_dn = \"{READER_DN}\"\nbind_password_file = \"bind-pw\"\nbase_dn = \"ou=Corp,{SUFFIX}\"\n",
        slapd.url
    );
    env.scim_config_with_source(&scim, &source, "");
    ok(&env.sync(&[]));
    let ext = |uid: &str| scim.user_by_name(uid).unwrap()["externalId"].as_str().unwrap().to_owned();
    assert_eq!(manager_of(&scim, &ext("user1")), Some(ext("user0")), "the DN made the manager's entryUUID");
    assert_eq!(manager_of(&scim, &ext("user2")), None);
    let said = items(&env, "1", "out_of_scope");
    assert!(said.iter().any(|m| m.contains("uid=ghost") && m.contains("is not in the source")), "{said:?}");
    assert!(env.sync(&["--dry-run"]).stdout.contains("Nothing to do"));
}

/// Department leaders as `owner` on LDAP groups: a leader created in the
/// same run is referenced in it; a change of leader is one modify; idle after.
#[test]
fn department_leaders_are_the_owners_of_ldap_groups() {
    use crate::ldap_target::search;
    let env = Env::new();
    let slapd = Slapd::start(env.dir.path(), &base_ldif());
    config(&env, &slapd.url, "disable = \"delete\"\n[target.departments]\nas = \"groups\"\n", "");
    let mut doc = org(3, 6);
    doc["departments"][1]["leader_ids"] = json!(["u1", "u4"]);
    doc["departments"][2]["leader_ids"] = json!(["ghost"]);
    env.write_org(&doc);
    ok(&env.sync(&[]));
    let owners = |name: &str| {
        let mut o = search(&slapd, SUFFIX, &format!("(cn={name})")).pop().unwrap().all("owner");
        o.sort();
        o
    };
    let people = format!("ou=People,{SUFFIX}");
    assert_eq!(owners("Dept 1"), vec![format!("uid=user1,{people}"), format!("uid=user4,{people}")]);
    assert!(owners("Dept 2").is_empty(), "a leader without an account is left out");
    assert!(owners("Dept 0").is_empty());
    assert_idle(&env);

    doc["departments"][1]["leader_ids"] = json!(["u2"]);
    env.write_org(&doc);
    ok(&env.sync(&[]));
    assert_eq!(owners("Dept 1"), vec![format!("uid=user2,{people}")]);
    assert_idle(&env);
}
