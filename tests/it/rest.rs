//! Target `rest` through the binary: the Keycloak preset against a real
//! Keycloak (tests/it/keycloak.rs).

use crate::harness::{Env, org};
use crate::keycloak::Keycloak;
use crate::ldap_target::{assert_idle, last_run, ok};
use serde_json::json;

pub fn keycloak_config(env: &Env, kc: &Keycloak, realm: &str, secret: &str, tail: &str) {
    std::fs::write(env.path("kc-secret"), format!("{secret}\n")).unwrap();
    std::fs::write(
        env.path("orgsync.toml"),
        format!(
            "state_dir = \"state\"\n[source]\nkind = \"file\"\npath = \"org.json\"\n\
             [target]\nkind = \"rest\"\npreset = \"keycloak\"\nbase_url = \"{}\"\n[target.params]\nrealm = \"{realm}\"\n\
             [target.auth]\nclient_secret_file = \"kc-secret\"\n{tail}\n",
            kc.base
        ),
    )
    .unwrap();
}

#[test]
fn keycloak_preset_initial_idle_renames_moves_leavers_and_a_wrong_secret() {
    let kc = Keycloak::shared();
    let realm = "orgsync-full";
    let secret = kc.realm(realm);
    let env = Env::new();
    let policy = "[policy.users]\ntarget_only = \"disable\"\n\
                  fields = [\"name\", \"email\", \"mobile\", \"department_ids\", \"employee_no\", \"title\"]\n\
                  [policy.guard]\nmax_delete_percent = 100\n";
    keycloak_config(&env, kc, realm, &secret, policy);
    // 13 departments, three levels (d0 > d1..d3 > d4..d12), 300 users.
    let mut doc = org(13, 300);
    doc["users"][0]["mobile"] = json!("+86 138 0000 0000");
    doc["users"][0]["employee_no"] = json!("E0");
    doc["users"][0]["title"] = json!("Engineer");
    env.write_org(&doc);

    let r = env.sync(&[]);
    ok(&r);
    assert_eq!(last_run(&env)["status"], "succeeded");
    let users = kc.users(realm);
    assert_eq!(users.len(), 300);
    let u0 = users.iter().find(|u| u["username"] == "user0").unwrap();
    assert_eq!(u0["email"], "user0@example.test");
    assert_eq!(u0["firstName"], "User 0");
    assert_eq!(u0["enabled"], true);
    // Stored, not silently dropped by the user profile.
    assert_eq!(u0["attributes"]["mobile"], json!(["+86 138 0000 0000"]), "{u0}");
    assert_eq!(u0["attributes"]["employee_no"], json!(["E0"]), "{u0}");
    assert_eq!(u0["attributes"]["orgsync_id"], json!(["u0"]), "{u0}");
    let groups = kc.groups(realm);
    assert_eq!(groups.len(), 13);
    let by_name = |n: &str| groups.iter().find(|g| g["name"] == n).unwrap().clone();
    assert_eq!(by_name("Dept 4")["parentId"], by_name("Dept 1")["id"], "nested like the tree");
    assert_eq!(kc.user_groups(realm, u0["id"].as_str().unwrap()), vec!["Dept 0"]);
    assert!(!r.stderr.contains(&secret) && !r.stdout.contains(&secret));
    assert_idle(&env);

    // Rename d1, move d4 under d2, user7 changes department, user299 leaves.
    let d1 = by_name("Dept 1")["id"].clone();
    doc["departments"][1]["name"] = json!("Research");
    doc["departments"][4]["parent_id"] = json!("d2");
    doc["users"][7]["department_ids"] = json!(["d3"]);
    doc["users"].as_array_mut().unwrap().pop();
    env.write_org(&doc);
    ok(&env.sync(&["--allow-deletes", "1"]));
    let groups = kc.groups(realm);
    let by_name = |n: &str| groups.iter().find(|g| g["name"] == n).cloned();
    assert_eq!(by_name("Research").unwrap()["id"], d1, "renamed in place");
    assert!(by_name("Dept 1").is_none());
    assert_eq!(by_name("Dept 4").unwrap()["parentId"], by_name("Dept 2").unwrap()["id"], "moved");
    let users = kc.users(realm);
    let u7 = users.iter().find(|u| u["username"] == "user7").unwrap();
    assert_eq!(kc.user_groups(realm, u7["id"].as_str().unwrap()), vec!["Dept 3"]);
    assert_eq!(users.iter().find(|u| u["username"] == "user299").unwrap()["enabled"], false, "the leaver is disabled");
    assert_eq!(users.len(), 300, "nobody deleted or recreated");
    assert_idle(&env);

    // Deletion under the guard: held back, then let through once.
    let deleting = "[policy.users]\ntarget_only = \"delete\"\n\
                    fields = [\"name\", \"email\", \"mobile\", \"department_ids\", \"employee_no\", \"title\"]\n\
                    [policy.guard]\nmax_deletes = 1\n";
    keycloak_config(&env, kc, realm, &secret, deleting);
    doc["users"].as_array_mut().unwrap().pop();
    env.write_org(&doc);
    let r = env.sync(&[]);
    assert_eq!(r.code, 3, "partial: two deletes held back\n{}\n{}", r.stdout, r.stderr);
    assert_eq!(kc.users(realm).len(), 300, "nothing deleted past the guard");
    ok(&env.sync(&["--allow-deletes", "2"]));
    let users = kc.users(realm);
    assert_eq!(users.len(), 298);
    assert!(!users.iter().any(|u| u["username"] == "user298" || u["username"] == "user299"));
    assert_idle(&env);

    // A wrong client secret: failed, the OAuth error named, no secret shown.
    keycloak_config(&env, kc, realm, "not-the-secret", policy);
    let r = env.sync(&[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let run = last_run(&env);
    assert_eq!(run["status"], "failed");
    let message = run["message"].as_str().unwrap();
    assert!(message.contains("401") && message.contains("OAuth2 token request was refused"), "{message}");
    assert!(!message.contains("not-the-secret") && !r.stderr.contains("not-the-secret") && !r.stdout.contains("not-the-secret"));
}

use crate::fake_rest::{API_KEY, AuthMode, CLIENT_SECRET, FakeHr, PageMode};

/// `config/rest-hr-platform.toml` as shipped, with a file source, the
/// fake's address, and the auth and paging under test.
fn hr_config(env: &Env, fake: &FakeHr, auth: AuthMode, paging: PageMode, secret: &str) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("config/rest-hr-platform.toml")).unwrap();
    let cut = |text: &str, from: &str, to: &str, with: &str| {
        let a = text.find(from).unwrap_or_else(|| panic!("{from} not in the example")) + from.len();
        let b = a + text[a..].find(to).unwrap_or_else(|| panic!("{to} not after {from}"));
        format!("{}{with}{}", &text[..a], &text[b..])
    };
    let text = cut(&text, "[source]\n", "\n[target]\n", "kind = \"file\"\npath = \"org.json\"\n");
    let auth_table = match auth {
        AuthMode::OAuth2Basic => None,
        AuthMode::ApiKeyHeader => Some("kind = \"api_key\"\nname = \"X-Api-Key\"\nvalue_file = \"acme_key\"\n"),
        AuthMode::ApiKeyQuery => Some("kind = \"api_key\"\nname = \"api_key\"\nin = \"query\"\nvalue_file = \"acme_key\"\n"),
        AuthMode::Bearer => Some("kind = \"bearer\"\ntoken_file = \"acme_key\"\n"),
        AuthMode::Basic => Some("kind = \"basic\"\nusername = \"orgsync\"\npassword_file = \"acme_key\"\n"),
    };
    let text = match auth_table {
        Some(t) => cut(&text, "[target.auth]\n", "\n[target.users.list]", t),
        None => text,
    };
    let page_keys = match paging {
        PageMode::Cursor => "paging = \"cursor\"\ncursor_param = \"cursor\"\nnext = \"$.meta.next_cursor\"",
        PageMode::Page => "paging = \"page\"\npage_param = \"page\"\nsize_param = \"per_page\"\npage_size = 4",
        PageMode::Link => "paging = \"link\"\nnext = \"$.links.next\"",
        PageMode::LinkHeader => "paging = \"link\"",
    };
    let text = text
        .replace("paging = \"cursor\"\ncursor_param = \"cursor\"\nnext = \"$.meta.next_cursor\"", page_keys)
        .replace("base_url = \"https://hr.example.com\"", &format!("base_url = \"{}\"", fake.base))
        .replace("state_dir = \"/var/lib/orgsync\"", "state_dir = \"state\"")
        .replace("page_size = 50", "page_size = 3")
        .replace("match_by = [\"email\"]", "match_by = [\"email\"]\n[policy.guard]\nmax_delete_percent = 100");
    std::fs::write(env.path("orgsync.toml"), text).unwrap();
    std::fs::write(env.path("acme_client_secret"), format!("{secret}\n")).unwrap();
    std::fs::write(env.path("acme_key"), format!("{API_KEY}\n")).unwrap();
}

fn writes(fake: &FakeHr) -> usize {
    ["POST e", "PATCH", "DELETE", "POST o"].iter().map(|p| fake.count(p)).sum()
}

/// A resync plans no operation and sends no write (a not_kept item may remain).
fn assert_no_writes(env: &Env, fake: &FakeHr) {
    let dry = env.sync(&["--dry-run"]);
    assert!(dry.stdout.contains("Nothing to do") || dry.stdout.contains("0 operations (0 target writes)"), "{}", dry.stdout);
    let before = writes(fake);
    ok(&env.sync(&[]));
    assert_eq!(writes(fake), before, "an idle run wrote");
}

#[test]
fn the_documented_hr_api_example_works_with_every_auth_kind_and_paging_style() {
    let variants = [
        (AuthMode::OAuth2Basic, PageMode::Cursor),
        (AuthMode::ApiKeyHeader, PageMode::Page),
        (AuthMode::ApiKeyQuery, PageMode::Link),
        (AuthMode::Bearer, PageMode::Cursor),
        (AuthMode::Basic, PageMode::Page),
        (AuthMode::Bearer, PageMode::LinkHeader),
    ];
    for (auth, paging) in variants {
        let env = Env::new();
        let fake = crate::fake_rest::start(auth, paging);
        hr_config(&env, &fake, auth, paging, CLIENT_SECRET);
        let mut doc = org(7, 10);
        doc["users"][0]["mobile"] = json!("+86 138 0000 0000");
        env.write_org(&doc);
        let r = env.sync(&[]);
        assert_eq!(r.code, 0, "{auth:?}/{paging:?}\n{}\n{}\n{:?}", r.stdout, r.stderr, fake.unexpected());
        // The request log: every request, no query (the API key may ride there).
        let log = env.orgsync(&["runs", "requests", "1", "--output", "json"]);
        let log: serde_json::Value = serde_json::from_str(&log.stdout).unwrap();
        let log = log.as_array().unwrap();
        let posts = log.iter().filter(|r| r["method"] == "POST" && r["path"] == "/api/v2/employees").count();
        assert_eq!(posts, 10, "{log:#?}");
        assert!(log.iter().all(|r| r["status"].as_u64().is_some_and(|s| s < 300)), "{log:#?}");
        assert!(!serde_json::to_string(log).unwrap().contains(API_KEY), "a secret in the request log");
        assert_eq!(log.len(), fake.count(""), "one record per request the server saw");
        {
            let w = fake.world.lock().unwrap();
            assert_eq!(w.employees.len(), 10, "{auth:?}/{paging:?}");
            assert_eq!(w.units.len(), 7);
            let e0 = w.employees.values().find(|e| e["login"] == "user0").unwrap();
            assert_eq!(e0["phone"], "138 0000 0000", "strip_prefix took the +86 off");
            let unit = |name: &str| w.units.values().find(|u| u["name"] == name).unwrap().clone();
            assert_eq!(unit("Dept 4")["parent_id"], unit("Dept 1")["id"]);
            assert_eq!(e0["org_unit_ids"], json!([unit("Dept 0")["id"]]));
        }
        // The target keeps the phone without +86 (the template strips it):
        // sent once more, then a not_kept item, never again.
        ok(&env.sync(&[]));
        let found = env.sync(&[]);
        ok(&found);
        // Found not kept: a warning naming it, once.
        assert!(found.stderr.contains("does not keep") && found.stderr.contains("user u0 mobile"), "{}", found.stderr);
        let shown = env.orgsync(&["runs", "show", &last_run(&env)["id"].to_string(), "--output", "json"]);
        assert!(shown.stdout.contains("not_kept"), "{}", shown.stdout);
        assert_no_writes(&env, &fake);
        let check = env.orgsync(&["check-target"]);
        assert!(check.code == 0 && check.stdout.contains("listed (first page: 4 objects)"), "{}{}", check.stdout, check.stderr);
        assert_eq!(fake.unexpected(), Vec::<String>::new(), "{auth:?}/{paging:?}");
        if auth != AuthMode::OAuth2Basic {
            continue;
        }
        // Rename d1, move d4 under d2, user9 leaves.
        doc["departments"][1]["name"] = json!("Research");
        doc["departments"][4]["parent_id"] = json!("d2");
        doc["users"].as_array_mut().unwrap().pop();
        env.write_org(&doc);
        ok(&env.sync(&["--allow-deletes", "1"]));
        {
            let w = fake.world.lock().unwrap();
            let unit = |name: &str| w.units.values().find(|u| u["name"] == name).cloned();
            assert!(unit("Research").is_some() && unit("Dept 1").is_none());
            assert_eq!(unit("Dept 4").unwrap()["parent_id"], unit("Dept 2").unwrap()["id"]);
            assert_eq!(w.employees.values().find(|e| e["login"] == "user9").unwrap()["active"], false);
            // sync ×3, the idle check's dry run and sync, check-target, this sync.
            assert_eq!(w.tokens, 7, "one token per run");
        }
        assert_no_writes(&env, &fake);
        assert_eq!(fake.unexpected(), Vec::<String>::new());
        // A wrong client secret: failed, the OAuth error named, nothing written.
        hr_config(&env, &fake, auth, paging, "not-the-secret");
        let before = writes(&fake);
        let r = env.sync(&[]);
        assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
        let message = last_run(&env)["message"].as_str().unwrap().to_owned();
        assert!(message.contains("invalid_client (bad client credentials)"), "{message}");
        assert!(!format!("{message}{}{}", r.stdout, r.stderr).contains("not-the-secret"));
        assert_eq!(writes(&fake), before);
        let id = last_run(&env)["id"].to_string();
        let failed = env.orgsync(&["runs", "requests", &id, "--failed"]);
        assert!(failed.stdout.contains("/oauth/token") && failed.stdout.contains("401"), "{}", failed.stdout);
    }
}

/// An API that keeps unit names unique (409 for a second "Team"): the
/// second takes `departments.unique_name`'s name, never the other's unit,
/// and keeps it run after run; a rename onto a taken name finds a free one;
/// a name made after a parent follows the parent's rename and a move in
/// the same run, so the next run writes nothing.
#[test]
fn an_api_keeping_unit_names_unique_gives_each_department_its_own_unit() {
    let env = Env::new();
    let fake = crate::fake_rest::start(AuthMode::Bearer, PageMode::Cursor);
    fake.world.lock().unwrap().unique_names = true;
    hr_config(&env, &fake, AuthMode::Bearer, PageMode::Cursor, CLIENT_SECRET);
    let mut doc = crate::harness::same_named_teams();
    let name_of = |ext: &str| {
        let w = fake.world.lock().unwrap();
        w.units.values().find(|u| u["external_ref"] == ext).unwrap_or_else(|| panic!("no unit {ext}"))["name"].as_str().unwrap().to_owned()
    };
    // Read through the API: every unit its own name, each user in its own department's unit.
    let check = |doc: &serde_json::Value| {
        let w = fake.world.lock().unwrap();
        let mut names: Vec<&str> = w.units.values().map(|u| u["name"].as_str().unwrap()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), w.units.len(), "{:?}", w.units);
        assert_eq!(w.units.len(), doc["departments"].as_array().unwrap().len());
        for u in doc["users"].as_array().unwrap() {
            let e = w.employees.values().find(|e| e["login"] == u["username"]).unwrap();
            let unit = w.units.values().find(|x| x["external_ref"] == u["department_ids"][0]).unwrap();
            assert_eq!(e["org_unit_ids"], json!([unit["id"]]), "{} in its own department's unit", u["username"]);
        }
    };
    env.write_org(&doc);
    ok(&env.sync(&[]));
    check(&doc);
    let (plain, other, other_parent) =
        if name_of("sales-team") == "Team" { ("sales-team", "support-team", 2) } else { ("support-team", "sales-team", 1) };
    let parent_name = doc["departments"][other_parent]["name"].as_str().unwrap().to_owned();
    assert_eq!(name_of(other), format!("Team ({parent_name})"));
    assert_eq!(name_of(plain), "Team");
    assert_no_writes(&env, &fake);

    // Its parent is renamed: the name made after it follows in the same run.
    doc["departments"][other_parent]["name"] = json!("Helpdesk");
    env.write_org(&doc);
    ok(&env.sync(&[]));
    check(&doc);
    assert_eq!(name_of(other), "Team (Helpdesk)");
    assert_no_writes(&env, &fake);

    // It moves under HQ: named after HQ now.
    let i = if other == "sales-team" { 3 } else { 4 };
    doc["departments"][i]["parent_id"] = json!("d0");
    env.write_org(&doc);
    ok(&env.sync(&[]));
    check(&doc);
    assert_eq!(name_of(other), "Team (HQ)");
    assert_no_writes(&env, &fake);

    // A department is renamed onto a taken name: it takes one of its own.
    doc["departments"][other_parent]["name"] = json!("Team");
    env.write_org(&doc);
    ok(&env.sync(&[]));
    check(&doc);
    assert_eq!(name_of(["sales", "support"][other_parent - 1]), "Team (HQ) 2");
    assert_no_writes(&env, &fake);
    assert_eq!(fake.unexpected(), Vec::<String>::new());
}

#[test]
fn an_oauth2_token_revoked_mid_run_is_fetched_again_once() {
    let env = Env::new();
    let fake = crate::fake_rest::start(AuthMode::OAuth2Basic, PageMode::Cursor);
    fake.world.lock().unwrap().revoke_after = Some(8);
    hr_config(&env, &fake, AuthMode::OAuth2Basic, PageMode::Cursor, CLIENT_SECRET);
    env.write_org(&org(7, 20));
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}\n{:?}", r.stdout, r.stderr, fake.unexpected());
    assert_eq!(fake.world.lock().unwrap().employees.len(), 20);
    assert_eq!(fake.count("token"), 2, "one token, then one more after the 401");
    let log = env.orgsync(&["runs", "requests", "1", "--failed", "--output", "json"]);
    let failed: Vec<serde_json::Value> = serde_json::from_str(&log.stdout).unwrap();
    assert!(!failed.is_empty() && failed.iter().all(|r| r["status"] == 401), "{failed:#?}");
    assert_eq!(fake.unexpected(), Vec::<String>::new());
}

/// A realm as Keycloak makes it drops the user attributes its profile does
/// not declare (answering 204 all the same): the run says which, writes the
/// rest, compares none of them, and the next run writes nothing.
#[test]
fn a_keycloak_realm_dropping_the_attributes_is_synced_without_them_and_says_so() {
    let kc = Keycloak::shared();
    let realm = "orgsync-strict";
    let secret = kc.realm_keeping(realm, false);
    let env = Env::new();
    keycloak_config(&env, kc, realm, &secret, "");
    let mut doc = org(2, 3);
    doc["users"][0]["mobile"] = json!("+86 138 0000 0000");
    env.write_org(&doc);
    let r = env.sync(&[]);
    ok(&r);
    assert!(
        r.stderr.contains("orgsync_id, mobile, employee_no, title, manager are not kept") && r.stderr.contains("Unmanaged attributes"),
        "{}",
        r.stderr
    );
    let users = kc.users(realm);
    assert_eq!(users.len(), 3);
    let u0 = users.iter().find(|u| u["username"] == "user0").unwrap();
    assert_eq!((u0["email"].as_str(), u0["attributes"]["mobile"].is_null()), (Some("user0@example.test"), true), "{u0}");
    assert_eq!(kc.groups(realm).len(), 2);
    let check = env.orgsync(&["check-target"]);
    assert!(check.stdout.contains("are not kept"), "{}", check.stdout);
    assert_idle(&env);
}

#[test]
fn a_server_repeating_its_cursor_fails_the_read_and_writes_nothing() {
    let env = Env::new();
    let fake = crate::fake_rest::start(AuthMode::Bearer, PageMode::Cursor);
    hr_config(&env, &fake, AuthMode::Bearer, PageMode::Cursor, CLIENT_SECRET);
    env.write_org(&org(2, 10));
    ok(&env.sync(&[]));
    fake.world.lock().unwrap().repeat_cursor = true;
    let before = writes(&fake);
    env.write_org(&org(2, 12));
    let r = env.sync(&[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let message = last_run(&env)["message"].as_str().unwrap().to_owned();
    assert!(message.contains("the same next page twice"), "{message}");
    assert_eq!(writes(&fake), before, "a list not read to the end changes nothing");
}

#[test]
fn keycloak_tokens_that_expire_during_the_run_are_fetched_again_ahead_of_expiry() {
    let kc = Keycloak::shared();
    let realm = "orgsync-short-tokens";
    let secret = kc.realm(realm);
    kc.admin("PUT", &format!("/{realm}"), Some(json!({"accessTokenLifespan": 2})));
    let env = Env::new();
    keycloak_config(&env, kc, realm, &secret, "");
    env.write_org(&org(13, 300));
    let t = std::time::Instant::now();
    ok(&env.sync(&[]));
    let took = t.elapsed();
    assert_eq!(kc.users(realm).len(), 300);
    let log = env.orgsync(&["runs", "requests", "1", "--output", "json"]);
    let log: Vec<serde_json::Value> = serde_json::from_str(&log.stdout).unwrap();
    let tokens = log.iter().filter(|r| r["path"].as_str().unwrap().ends_with("/openid-connect/token")).count();
    assert!(took.as_secs_f64() < 2.0 || tokens >= 2, "a {took:?} run on 2 s tokens fetched {tokens}");
    assert!(log.iter().all(|r| r["status"] != 401), "a request went out with an expired token: {log:#?}");
}

/// A default realm refuses username changes (`editUsernameAllowed` false),
/// and with them the whole PUT: the rename is a `refused` item, the rest of
/// the update goes through, and later runs neither resend it nor fail.
#[test]
fn keycloak_a_refused_username_change_keeps_the_rest_of_the_update_and_is_not_resent() {
    let kc = Keycloak::shared();
    let realm = "orgsync-rename";
    let secret = kc.realm(realm);
    let (code, r) = kc.admin("GET", &format!("/{realm}"), None);
    assert_eq!((code, &r["editUsernameAllowed"]), (200, &json!(false)), "a default realm: {r}");
    let env = Env::new();
    keycloak_config(&env, kc, realm, &secret, "");
    let mut doc = org(2, 4);
    env.write_org(&doc);
    ok(&env.sync(&[]));
    doc["users"][1]["username"] = json!("renamed1");
    doc["users"][1]["email"] = json!("renamed1@example.test");
    env.write_org(&doc);
    let r = env.sync(&[]);
    assert_eq!(r.code, 3, "partial: one refusal\n{}\n{}", r.stdout, r.stderr);
    let users = kc.users(realm);
    let u1 = users.iter().find(|u| u["email"] == "renamed1@example.test").expect("the rest of the update went through");
    assert_eq!(u1["username"], "user1", "the realm kept the username");
    let run = last_run(&env);
    assert_eq!(run["counts"]["user.update.refused"], 1, "{run:#}");
    // Remembered: the next runs send nothing and are not failed.
    for _ in 0..2 {
        let r = env.sync(&[]);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        // Only the item saying what is not sent again: no write.
        let run = last_run(&env);
        let counts = run["counts"].as_object().unwrap();
        assert!(counts.keys().all(|k| k.ends_with(".not_kept")), "{run:#}");
    }
}

/// The HR example writes each employee's manager (`user.manager_id`) and
/// each unit's leaders (`department.leader_ids`), a manager and a leader
/// created in the same run included; the next run writes nothing.
#[test]
fn the_hr_example_writes_managers_and_unit_leaders() {
    let env = Env::new();
    let fake = crate::fake_rest::start(AuthMode::Bearer, PageMode::Cursor);
    hr_config(&env, &fake, AuthMode::Bearer, PageMode::Cursor, CLIENT_SECRET);
    let mut doc = org(3, 5);
    doc["users"][1]["manager_id"] = json!("u0");
    doc["users"][2]["manager_id"] = json!("u1");
    doc["departments"][1]["leader_ids"] = json!(["u3"]);
    env.write_org(&doc);
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}\n{:?}", r.stdout, r.stderr, fake.unexpected());
    {
        let w = fake.world.lock().unwrap();
        let e = |login: &str| w.employees.values().find(|e| e["login"] == login).unwrap().clone();
        assert_eq!(e("user1")["manager_id"], e("user0")["id"]);
        assert_eq!(e("user2")["manager_id"], e("user1")["id"]);
        assert!(e("user0")["manager_id"].is_null());
        let unit = w.units.values().find(|u| u["name"] == "Dept 1").unwrap();
        assert_eq!(unit["leader_ids"], json!([e("user3")["id"]]));
    }
    let before = writes(&fake);
    ok(&env.sync(&[]));
    assert_eq!(writes(&fake), before, "idle");
    assert_eq!(fake.unexpected(), Vec::<String>::new());
}
