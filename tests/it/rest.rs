//! Target `rest` through the binary: the Keycloak preset against a real
//! Keycloak (tests/it/keycloak.rs).

use crate::harness::{Env, org};
use crate::keycloak::Keycloak;
use crate::ldap_target::{assert_idle, last_run, ok};
use serde_json::json;

fn keycloak_config(env: &Env, kc: &Keycloak, realm: &str, secret: &str, tail: &str) {
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
