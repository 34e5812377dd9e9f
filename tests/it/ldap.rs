//! Source `ldap` against a real OpenLDAP `slapd` (Debian package), started
//! per test on a free loopback port in its own temp dir and stopped by pid.

use crate::harness::{Env, Scim};
use crate::slapd::{GROUPS, READER_DN, READER_PW, SUFFIX, Slapd, TestCa, tree};
use std::collections::HashSet;

/// The SCIM config with `[source]` swapped for an LDAP source at `url`,
/// bound as the reader (subject to the size limits), plus `extra` source keys.
fn ldap_config(env: &Env, scim: &Scim, url: &str, password: &str, extra: &str) {
    std::fs::write(env.path("bind-pw"), format!("{password}\n")).unwrap();
    let source = format!(
        "kind = \"ldap\"\nurl = \"{url}\"\nbind_dn = \"{READER_DN}\"\nbind_password_file = \"bind-pw\"\n\
         base_dn = \"ou=Corp,{SUFFIX}\"\n{extra}"
    );
    env.scim_config_with_source(scim, &source, "");
}

fn config(env: &Env, scim: &Scim, slapd: &Slapd, password: &str) {
    ldap_config(env, scim, &slapd.url, password, "page_size = 7\n");
}

#[test]
fn openldap_full_sync_then_renames_and_moves_keep_their_bindings() {
    let env = Env::new();
    let scim = Scim::start(env.dir.path());
    let slapd = Slapd::start(env.dir.path(), &tree(40));
    config(&env, &scim, &slapd, READER_PW);

    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let users = scim.users();
    assert_eq!(users.len(), 40, "every page of 7 was read");
    assert_eq!(scim.groups().len(), 5);
    let before: HashSet<String> = users.iter().map(|u| u["id"].as_str().unwrap().to_owned()).collect();

    // Rename an OU and move a user to another OU: ids (entryUUID) stay.
    slapd.modify(&format!("dn: ou=Emea,ou=Sales,ou=Corp,{SUFFIX}\nchangetype: modrdn\nnewrdn: ou=Europe\ndeleteoldrdn: 1\n"));
    slapd.modify(&format!(
        "dn: uid=user0,ou=Corp,{SUFFIX}\nchangetype: modrdn\nnewrdn: uid=user0\ndeleteoldrdn: 1\nnewsuperior: ou=Platform,ou=Eng,ou=Corp,{SUFFIX}\n"
    ));
    let writes = scim.writes().len();
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let new_writes = &scim.writes()[writes..];
    assert!(!new_writes.iter().any(|(m, _, _)| m == "POST"), "nothing recreated: {new_writes:?}");
    assert!(new_writes.iter().any(|(m, _, _)| m == "PATCH" || m == "PUT"), "the rename was pushed: {new_writes:?}");
    let names: Vec<String> = scim.groups().iter().map(|g| g["displayName"].as_str().unwrap().to_owned()).collect();
    assert!(names.contains(&"Europe".to_owned()) && !names.contains(&"Emea".to_owned()), "{names:?}");
    let after: HashSet<String> = scim.users().iter().map(|u| u["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(before, after, "the same accounts, none recreated");
    let dry = env.sync(&["--dry-run"]);
    assert!(dry.stdout.contains("Nothing to do"), "the moved user's department was pushed too:\n{}", dry.stdout);
}

#[test]
fn a_wrong_bind_password_fails_the_run_with_zero_writes() {
    let env = Env::new();
    let scim = Scim::start(env.dir.path());
    let slapd = Slapd::start(env.dir.path(), &tree(3));
    config(&env, &scim, &slapd, "not-the-password");
    let r = env.sync(&[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(scim.writes().is_empty(), "{:?}", scim.writes());
    let s = env.status_json();
    assert_eq!(s["runs"][0]["status"], "failed");
    let message = s["runs"][0]["message"].as_str().unwrap();
    assert!(message.contains("LDAP result 49") && message.contains("check bind_dn and bind_password"), "{message}");
    assert!(!message.contains("not-the-password") && !r.stderr.contains("not-the-password"), "the password leaked");
}

/// displayName -> the displayNames (groups) or userNames (users) of its members.
fn group_members(scim: &Scim) -> std::collections::HashMap<String, HashSet<String>> {
    let groups = scim.groups();
    let users = scim.users();
    let name_of = |id: &str| {
        groups
            .iter()
            .chain(users.iter())
            .find(|o| o["id"] == id)
            .map(|o| o.get("userName").or_else(|| o.get("displayName")).and_then(|v| v.as_str()).unwrap_or_default().to_owned())
    };
    groups
        .iter()
        .map(|g| {
            let members = g["members"].as_array().into_iter().flatten().filter_map(|m| name_of(m["value"].as_str()?)).collect();
            (g["displayName"].as_str().unwrap().to_owned(), members)
        })
        .collect()
}

#[test]
fn groups_as_departments_nest_and_a_deleted_user_is_disabled_then_deleted_as_the_policy_says() {
    let env = Env::new();
    let scim = Scim::start(env.dir.path());
    let slapd = Slapd::start(env.dir.path(), &tree(30));
    let groups = format!("[source.departments]\nfrom = \"groups\"\nbase_dn = \"ou=Groups,{SUFFIX}\"\n");
    ldap_config(&env, &scim, &slapd.url, READER_PW, &groups);
    let policy = |what: &str| {
        let text = std::fs::read_to_string(env.path("orgsync.toml")).unwrap();
        let text = text.split("\n[policy.users]").next().unwrap().to_owned();
        std::fs::write(env.path("orgsync.toml"), format!("{text}\n[policy.users]\ntarget_only = \"{what}\"\n")).unwrap();
    };
    policy("disable");

    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(scim.users().len(), 30);
    let members = group_members(&scim);
    assert_eq!(members.len(), GROUPS.len(), "{members:?}");
    assert!(members["Engineering"].contains("Backend") && members["Backend"].contains("Storage"), "nesting: {members:?}");
    assert!(members["Storage"].contains("user2") && members["Storage"].contains("user7"), "{members:?}");
    assert!(!members.values().any(|m| m.contains("user4")), "user4 is in no group: {members:?}");
    assert!(members["Marketing"].contains("user3") && !members["Marketing"].contains("Marketing"), "{members:?}");

    // A user removed from the directory: `target_only = "disable"` keeps the account, inactive.
    let out = slapd.ldap(&["ldapdelete", "-x", &format!("uid=user7,ou=Emea,ou=Sales,ou=Corp,{SUFFIX}")], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let gone = scim.user_by_name("user7").expect("disabled, not deleted");
    assert_eq!(gone["active"], false, "{gone}");
    assert_eq!(scim.users().len(), 30);

    // The admin switches the policy to delete: the account goes.
    policy("delete");
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(scim.user_by_name("user7").is_none());
    assert_eq!(scim.users().len(), 29);
    assert!(!group_members(&scim)["Storage"].contains("user7"));
}

#[test]
fn ldaps_and_starttls_verify_the_server_against_ca_file_and_a_wrong_ca_fails_clearly() {
    let env = Env::new();
    let scim = Scim::start(env.dir.path());
    let ca = TestCa::new(env.dir.path(), "right");
    let other = TestCa::new(env.dir.path(), "wrong");
    let slapd = Slapd::start_with(env.dir.path(), &tree(12), Some(&ca));
    let ldaps = slapd.ldaps_url.clone().unwrap();
    let ca_file = |c: &TestCa| format!("ca_file = \"{}\"\n", c.ca.display());

    // The server refuses a simple bind in the clear, and the message says what to do.
    ldap_config(&env, &scim, &slapd.url, READER_PW, "");
    let r = env.sync(&[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let msg = env.status_json()["runs"][0]["message"].as_str().unwrap().to_owned();
    assert!(msg.contains("LDAP result 13") && msg.contains("use ldaps:// or starttls = true"), "{msg}");

    ldap_config(&env, &scim, &ldaps, READER_PW, &ca_file(&ca));
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "LDAPS: {}\n{}", r.stdout, r.stderr);
    assert_eq!(scim.users().len(), 12);

    ldap_config(&env, &scim, &slapd.url, READER_PW, &format!("starttls = true\n{}", ca_file(&ca)));
    let r = env.sync(&["--dry-run"]);
    assert_eq!(r.code, 0, "StartTLS: {}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("Nothing to do"), "{}", r.stdout);

    let writes = scim.writes().len();
    for (url, tls) in [(ldaps.as_str(), ""), (slapd.url.as_str(), "starttls = true\n")] {
        ldap_config(&env, &scim, url, READER_PW, &format!("{tls}{}", ca_file(&other)));
        let r = env.sync(&[]);
        assert_eq!(r.code, 1, "{url}: {}\n{}", r.stdout, r.stderr);
        let msg = env.status_json()["runs"][0]["message"].as_str().unwrap().to_owned();
        assert!(msg.contains("certificate") && msg.contains("ca_file"), "{url}: {msg}");
        assert!(r.stderr.contains("certificate"), "{}", r.stderr);
    }
    assert_eq!(scim.writes().len(), writes, "a failed fetch writes nothing");
}

#[test]
fn ten_thousand_users_are_read_in_pages_past_the_servers_size_limit() {
    let env = Env::new();
    let slapd = Slapd::start(env.dir.path(), &tree(10_000));
    // The cap is on, as in AD: a search that is not paged stops at 1,000.
    let unpaged = slapd.ldap_as(READER_DN, READER_PW, &["ldapsearch", "-x", "-b", SUFFIX, "(objectClass=inetOrgPerson)", "1.1"], "");
    assert_eq!(unpaged.status.code(), Some(4), "sizeLimitExceeded expected: {}", String::from_utf8_lossy(&unpaged.stderr));

    std::fs::write(env.path("bind-pw"), format!("{READER_PW}\n")).unwrap();
    let text = format!(
        "state_dir = \"state\"\n[source]\nkind = \"ldap\"\nurl = \"{}\"\nbind_dn = \"{READER_DN}\"\n\
         bind_password_file = \"bind-pw\"\nbase_dn = \"ou=Corp,{SUFFIX}\"\n\
         [source.departments]\nfrom = \"groups\"\nbase_dn = \"ou=Groups,{SUFFIX}\"\n\
         [target]\nkind = \"file\"\npath = \"out.json\"\n",
        slapd.url
    );
    std::fs::write(env.path("orgsync.toml"), text).unwrap();
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let out: serde_json::Value = serde_json::from_slice(&std::fs::read(env.path("out.json")).unwrap()).unwrap();
    let users = out["users"].as_array().unwrap();
    assert_eq!(users.len(), 10_000);
    let names: HashSet<&str> = users.iter().filter_map(|u| u["username"].as_str()).collect();
    assert_eq!(names.len(), 10_000, "every user once");
    let in_groups = users.iter().filter(|u| !u["departments"].as_array().unwrap().is_empty()).count();
    assert_eq!(in_groups, 8_000, "four users in five are in a group");
    assert_eq!(out["departments"].as_array().unwrap().len(), GROUPS.len());
}

#[test]
fn an_attribute_the_bind_account_may_not_read_is_withheld_not_cleared() {
    let env = Env::new();
    let scim = Scim::start(env.dir.path());
    let slapd = Slapd::start_hiding(env.dir.path(), &tree(12), &["mail"]);
    // First as the directory admin, who reads everything: emails reach the target.
    let source = |dn: &str| {
        format!(
            "kind = \"ldap\"\nurl = \"{}\"\nbind_dn = \"{dn}\"\nbind_password_file = \"bind-pw\"\nbase_dn = \"ou=Corp,{SUFFIX}\"\n",
            slapd.url
        )
    };
    std::fs::write(env.path("bind-pw"), format!("{}\n", crate::slapd::ROOT_PW)).unwrap();
    env.scim_config_with_source(&scim, &source(crate::slapd::ROOT_DN), "[policy.users]\nmatch_by = [\"username\"]\n");
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let emails = || scim.users().iter().filter(|u| u["emails"][0]["value"].is_string()).count();
    assert_eq!(emails(), 12);
    // Then as the sync account, which an ACL keeps from `mail`: nothing is cleared.
    std::fs::write(env.path("bind-pw"), format!("{READER_PW}\n")).unwrap();
    env.scim_config_with_source(&scim, &source(READER_DN), "[policy.users]\nmatch_by = [\"username\"]\n");
    let before = scim.writes().len();
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(scim.writes()[before..], [], "a withheld attribute changed the target");
    assert_eq!(emails(), 12, "every email intact");
    assert!(r.stderr.contains("withheld") && r.stderr.contains("email"), "said once: {}", r.stderr);
}

/// `[scope] include_departments` with OUs as departments: only the
/// included subtree is searched (fewer entries read), and the result is
/// what the scope keeps.
#[test]
fn an_included_ou_narrows_the_search_to_its_subtree() {
    let env = Env::new();
    let slapd = Slapd::start(env.dir.path(), &tree(40));
    let out = slapd.ldap(&["ldapsearch", "-x", "-LLL", "-b", &format!("ou=Eng,ou=Corp,{SUFFIX}"), "-s", "base", "entryUUID"], "");
    let text = String::from_utf8_lossy(&out.stdout);
    let uuid = text.lines().find_map(|l| l.strip_prefix("entryUUID: ")).unwrap().to_owned();
    std::fs::write(env.path("bind-pw"), format!("{READER_PW}\n")).unwrap();
    std::fs::write(
        env.path("orgsync.toml"),
        format!(
            "state_dir = \"state\"\n[source]\nkind = \"ldap\"\nurl = \"{}\"\nbind_dn = \"{READER_DN}\"\nbind_password_file = \"bind-pw\"\n\
             base_dn = \"ou=Corp,{SUFFIX}\"\n[target]\nkind = \"file\"\npath = \"out.json\"\n[scope]\ninclude_departments = [\"{uuid}\"]\n",
            slapd.url
        ),
    )
    .unwrap();
    let out = env.command(&["sync"]).env("RUST_LOG", "orgsync=debug").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Users i % 5 in {3, 4} are under ou=Eng: 16 of 40, and only they were read.
    assert!(stderr.contains("departments=2 users=16"), "the search was not narrowed:\n{stderr}");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(env.path("out.json")).unwrap()).unwrap();
    assert_eq!(doc["users"].as_array().unwrap().len(), 16);
    let names: HashSet<&str> = doc["departments"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, HashSet::from(["Eng", "Platform"]));
}

/// A member value kept as an LDIF import wrote it (`cn=Roe\, Ann,…`) is the
/// entry the server names `cn=Roe\2C Ann,…`: DNs compare in their RFC 4514
/// normal form (escapes, hex pairs, case, spaces).
#[test]
fn a_group_member_written_with_other_escapes_or_case_is_still_its_user() {
    let env = Env::new();
    let scim = Scim::start(env.dir.path());
    let emea = format!("ou=Emea,ou=Sales,ou=Corp,{SUFFIX}");
    let mut ldif = tree(5);
    ldif.push_str(&format!(
        "dn: cn=Roe\\, Ann,{emea}\nobjectClass: inetOrgPerson\nuid: roe\ncn: Roe, Ann\nsn: Roe\nmail: roe@example.test\n\n\
         dn: cn=Lee\\2B Bo,{emea}\nobjectClass: inetOrgPerson\nuid: lee\ncn: Lee+ Bo\nsn: Lee\nmail: lee@example.test\n\n\
         dn: cn=Escaped,ou=Groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: Escaped\n\
         member: cn=Roe\\, Ann,{emea}\nmember: CN=lee\\+ bo, OU=emea,ou=Sales,ou=Corp,{}\n\n",
        SUFFIX.to_uppercase()
    ));
    let slapd = Slapd::start(env.dir.path(), &ldif);
    let groups = format!("[source.departments]\nfrom = \"groups\"\nbase_dn = \"ou=Groups,{SUFFIX}\"\n");
    ldap_config(&env, &scim, &slapd.url, READER_PW, &groups);
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let members = group_members(&scim);
    assert!(members["Escaped"].contains("roe") && members["Escaped"].contains("lee"), "{members:?}");
}

/// An OU two levels below the base (`ou=Platform,ou=Eng,ou=Corp`) included:
/// a root of the synced forest with its users, the run succeeded.
#[test]
fn an_included_ou_below_the_top_is_a_root_with_its_users() {
    let env = Env::new();
    let slapd = Slapd::start(env.dir.path(), &tree(40));
    let out =
        slapd.ldap(&["ldapsearch", "-x", "-LLL", "-b", &format!("ou=Platform,ou=Eng,ou=Corp,{SUFFIX}"), "-s", "base", "entryUUID"], "");
    let text = String::from_utf8_lossy(&out.stdout);
    let uuid = text.lines().find_map(|l| l.strip_prefix("entryUUID: ")).unwrap().to_owned();
    std::fs::write(env.path("bind-pw"), format!("{READER_PW}\n")).unwrap();
    let source = format!(
        "kind = \"ldap\"\nurl = \"{}\"\nbind_dn = \"{READER_DN}\"\nbind_password_file = \"bind-pw\"\nbase_dn = \"ou=Corp,{SUFFIX}\"\n",
        slapd.url
    );
    // Users i % 5 == 4 live under ou=Platform: 8 of 40.
    crate::harness::sync_scoped_to(&env, &source, &uuid, "Platform", &[], 8);
}

/// `orgsync explain` and `sync --only` read one user by its entryUUID and
/// the OU tree, never the other users.
#[test]
fn openldap_explains_and_syncs_one_user_by_id() {
    let env = Env::new();
    let scim = Scim::in_process();
    let slapd = Slapd::start(env.dir.path(), &tree(12));
    ldap_config(&env, &scim, &slapd.url, READER_PW, "[scope]\nexclude_users = [\"user6\"]\n");
    let add_hire = || {
        slapd.modify(&format!(
            "dn: ou=Labs,ou=Eng,ou=Corp,{SUFFIX}\nchangetype: add\nobjectClass: organizationalUnit\nou: Labs\n\n\
             dn: uid=hire,ou=Labs,ou=Eng,ou=Corp,{SUFFIX}\nchangetype: add\nobjectClass: inetOrgPerson\nuid: hire\ncn: New Hire\n\
             sn: Hire\nmail: hire@example.test\n"
        ));
    };
    let rename = || slapd.modify(&format!("dn: uid=user5,ou=Corp,{SUFFIX}\nchangetype: modify\nreplace: cn\ncn: Renamed Five\n"));
    crate::explain::check(&crate::explain::Case {
        env: &env,
        scim: &scim,
        bound: ("", "user5"),
        excluded: "user6",
        hire: ("", "hire", "Labs"),
        renamed: "Renamed Five",
        add_hire: &add_hire,
        rename: &rename,
        requests: &|| None,
    });
    let (_, e) = crate::explain::explain(&env, &["user", "hire"]);
    assert_eq!(e["source"]["read"], "id", "{e:#}");
    assert_eq!(e["source"]["raw"]["dn"], format!("uid=hire,ou=Labs,ou=Eng,ou=Corp,{SUFFIX}"), "{e:#}");
}

/// `[mapping]` over LDAP entries: the fixed mapping written out changes
/// nothing, and an attribute it does not read (`sn`) can be mapped.
#[test]
fn ldap_mapping_explicit_default_changes_nothing_and_any_attribute_maps() {
    let env = Env::new();
    let scim = Scim::in_process();
    let slapd = Slapd::start(env.dir.path(), &tree(12));
    std::fs::write(env.path("bind-pw"), format!("{READER_PW}\n")).unwrap();
    let source = format!(
        "kind = \"ldap\"\nurl = \"{}\"\nbind_dn = \"{READER_DN}\"\nbind_password_file = \"bind-pw\"\nbase_dn = \"ou=Corp,{SUFFIX}\"\n",
        slapd.url
    );
    env.scim_config_with_source(&scim, &source, "");
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let explicit = "[mapping.users]\nusername = \"uid\"\nname = \"cn\"\nemail = \"mail\"\nmobile = \"mobile\"\n\
                    employee_no = \"employeeNumber\"\nnickname = \"displayName\"\ntitle = \"title\"\n\
                    [mapping.departments]\nname = \"ou\"\n";
    env.scim_config_with_source(&scim, &source, explicit);
    let r = env.sync(&["--dry-run"]);
    assert!(r.stdout.contains("Nothing to do"), "{}\n{}", r.stdout, r.stderr);
    env.scim_config_with_source(&scim, &source, "[mapping.users]\nemployee_no = \"'S-' ~ sn\"\n");
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    assert_eq!(scim.user_by_name("user3").unwrap()[enterprise]["employeeNumber"], "S-3", "sn, which the fixed mapping does not read");
}
