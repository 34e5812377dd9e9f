//! Target `ldap` against a real OpenLDAP `slapd`, started per test on a
//! free loopback port in its own temp dir and stopped by pid; every
//! outcome is read back with `ldapsearch`.

use crate::ds389::Ds389;
use crate::harness::{Env, org};
use crate::slapd::{ROOT_DN, ROOT_PW, SUFFIX, Slapd, TestCa};
use serde_json::{Value, json};
use std::collections::HashMap;

/// One entry as `ldapsearch` shows it: DN and attribute values (names lower-cased).
#[derive(Debug, Clone)]
pub struct Entry {
    pub dn: String,
    pub attrs: HashMap<String, Vec<String>>,
}

impl Entry {
    pub fn get(&self, a: &str) -> Option<&str> {
        self.attrs.get(&a.to_ascii_lowercase()).and_then(|v| v.first()).map(String::as_str)
    }
    pub fn all(&self, a: &str) -> Vec<String> {
        self.attrs.get(&a.to_ascii_lowercase()).cloned().unwrap_or_default()
    }
}

/// The bases of the target tree.
pub fn base_ldif() -> String {
    let mut l = format!("dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n");
    for ou in ["People", "Departments", "Disabled"] {
        l.push_str(&format!("dn: ou={ou},{SUFFIX}\nobjectClass: organizationalUnit\nou: {ou}\n\n"));
    }
    l
}

/// A directory server the tests read back with ldap-utils.
pub trait Directory {
    fn ldap(&self, args: &[&str], input: &str) -> std::process::Output;
}

impl Directory for Slapd {
    fn ldap(&self, args: &[&str], input: &str) -> std::process::Output {
        Slapd::ldap(self, args, input)
    }
}

impl Directory for Ds389 {
    fn ldap(&self, args: &[&str], input: &str) -> std::process::Output {
        Ds389::ldap(self, args, input)
    }
}

pub fn search(slapd: &dyn Directory, base: &str, filter: &str) -> Vec<Entry> {
    let out = slapd
        .ldap(&["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-b", base, filter, "*", "entryUUID", "nsUniqueId", "nsAccountLock"], "");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() || out.status.code() == Some(32), "ldapsearch: {}", String::from_utf8_lossy(&out.stderr));
    text.split("\n\n")
        .filter(|b| b.starts_with("dn:"))
        .map(|b| {
            let mut e = Entry { dn: String::new(), attrs: HashMap::new() };
            for line in b.lines() {
                let Some((k, v)) = line.split_once(": ").or_else(|| line.strip_suffix(':').map(|k| (k, ""))) else { continue };
                if k == "dn" {
                    e.dn = v.to_owned();
                } else {
                    e.attrs.entry(k.to_ascii_lowercase()).or_default().push(v.to_owned());
                }
            }
            e
        })
        .collect()
}

pub fn users(slapd: &dyn Directory) -> Vec<Entry> {
    search(slapd, SUFFIX, "(objectClass=inetOrgPerson)")
}

pub fn user(slapd: &dyn Directory, uid: &str) -> Option<Entry> {
    search(slapd, SUFFIX, &format!("(uid={uid})")).into_iter().next()
}

/// The LDAP target's config over a file source, with `extra` `[target]`
/// keys and `tail` tables after it.
pub fn config(env: &Env, url: &str, extra: &str, tail: &str) {
    config_as(env, url, ROOT_DN, ROOT_PW, extra, tail);
}

pub fn config_as(env: &Env, url: &str, dn: &str, pw: &str, extra: &str, tail: &str) {
    std::fs::write(env.path("bind-pw"), format!("{pw}\n")).unwrap();
    let text = format!(
        "state_dir = \"state\"\n[source]\nkind = \"file\"\npath = \"org.json\"\n\
         [target]\nkind = \"ldap\"\nurl = \"{url}\"\nbind_dn = \"{dn}\"\nbind_password_file = \"bind-pw\"\n\
         users_dn = \"ou=People,{SUFFIX}\"\ndepartments_dn = \"ou=Departments,{SUFFIX}\"\npage_size = 7\n{extra}\n{tail}\n"
    );
    std::fs::write(env.path("orgsync.toml"), text).unwrap();
}

pub fn ok(r: &crate::harness::Run) {
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
}

pub fn last_run(env: &Env) -> Value {
    env.status_json()["runs"][0].clone()
}

/// A run that wrote nothing: no item at all.
pub fn assert_idle(env: &Env) {
    let dry = env.sync(&["--dry-run"]);
    assert!(dry.stdout.contains("Nothing to do"), "{}", dry.stdout);
    ok(&env.sync(&[]));
    let id = last_run(env)["id"].to_string();
    let shown: Value = serde_json::from_str(&env.orgsync(&["runs", "show", &id, "--output", "json"]).stdout).unwrap();
    let items = shown["items"].as_array().cloned().unwrap_or_default();
    assert!(items.is_empty(), "an idle run wrote: {items:#?}");
}

fn uuid(e: &Entry) -> String {
    e.get("entryUUID").unwrap().to_owned()
}

#[test]
fn ou_tree_initial_sync_idle_renames_moves_and_leavers() {
    let env = Env::new();
    let slapd = Slapd::start(env.dir.path(), &base_ldif());
    config(
        &env,
        &slapd.url,
        "disable = \"move\"\ndisabled_dn = \"ou=Disabled,dc=example,dc=test\"\n",
        "[policy.users]\ntarget_only = \"disable\"\nfields = [\"name\", \"email\", \"mobile\", \"department_ids\", \"employee_no\", \"title\"]\n",
    );
    let mut doc = org(7, 30);
    doc["users"][0]["mobile"] = json!("+86 138 0000 0000");
    doc["users"][0]["employee_no"] = json!("E0");
    doc["users"][0]["title"] = json!("Engineer");
    doc["users"][1]["department_ids"] = json!(["d2", "d5"]);
    env.write_org(&doc);

    ok(&env.sync(&[]));
    assert_eq!(last_run(&env)["status"], "succeeded");
    let ous = search(&slapd, &format!("ou=Departments,{SUFFIX}"), "(objectClass=organizationalUnit)");
    assert_eq!(ous.len(), 8, "7 departments + the base: {ous:?}");
    // d0 > d1, d2, d3; d1 > d4, d5, d6: nested like the tree.
    let d5 = ous.iter().find(|e| e.get("ou") == Some("Dept 5")).unwrap();
    assert_eq!(d5.dn, format!("ou=Dept 5,ou=Dept 1,ou=Dept 0,ou=Departments,{SUFFIX}"));
    let all = users(&slapd);
    assert_eq!(all.len(), 30);
    let u0 = user(&slapd, "user0").unwrap();
    assert_eq!(u0.dn, format!("uid=user0,ou=Dept 0,ou=Departments,{SUFFIX}"));
    assert_eq!(u0.get("cn"), Some("User 0"));
    assert_eq!(u0.get("sn"), Some("User 0"));
    assert_eq!(u0.get("mail"), Some("user0@example.test"));
    assert_eq!(u0.get("mobile"), Some("+86 138 0000 0000"));
    assert_eq!(u0.get("employeeNumber"), Some("E0"));
    assert_eq!(u0.get("title"), Some("Engineer"));
    assert!(u0.get("userPassword").is_none(), "passwords are never written");
    // Two departments: the entry lives under the primary one.
    assert_eq!(user(&slapd, "user1").unwrap().dn, format!("uid=user1,ou=Dept 2,ou=Dept 0,ou=Departments,{SUFFIX}"));

    assert_idle(&env);

    // Rename d1 and move it under d2; move user4 from d4 to d3; user29 leaves.
    let d1_before = uuid(ous.iter().find(|e| e.get("ou") == Some("Dept 1")).unwrap());
    let u4_before = uuid(&user(&slapd, "user4").unwrap());
    doc["departments"][1]["name"] = json!("Research");
    doc["departments"][1]["parent_id"] = json!("d2");
    doc["users"][4]["department_ids"] = json!(["d3"]);
    doc["users"][4]["title"] = json!("Lead");
    let leaver = doc["users"].as_array_mut().unwrap().pop().unwrap();
    assert_eq!(leaver["username"], "user29");
    env.write_org(&doc);
    let dry = env.sync(&["--dry-run"]);
    assert!(dry.stdout.contains("modrdn ou=Dept 1,ou=Dept 0,ou=Departments"), "the dry run names the LDAP operations:\n{}", dry.stdout);
    ok(&env.sync(&["--allow-deletes", "1"]));
    let research = search(&slapd, SUFFIX, "(ou=Research)").pop().unwrap();
    assert_eq!(research.dn, format!("ou=Research,ou=Dept 2,ou=Dept 0,ou=Departments,{SUFFIX}"));
    assert_eq!(uuid(&research), d1_before, "renamed and moved in place: the same entry");
    assert!(search(&slapd, SUFFIX, "(ou=Dept 1)").is_empty());
    // Its members and sub-OUs went with it.
    assert_eq!(user(&slapd, "user5").unwrap().dn, format!("uid=user5,ou=Dept 5,ou=Research,ou=Dept 2,ou=Dept 0,ou=Departments,{SUFFIX}"));
    let u4 = user(&slapd, "user4").unwrap();
    assert_eq!(u4.dn, format!("uid=user4,ou=Dept 3,ou=Dept 0,ou=Departments,{SUFFIX}"));
    assert_eq!(uuid(&u4), u4_before);
    assert_eq!(u4.get("title"), Some("Lead"));
    assert_eq!(user(&slapd, "user29").unwrap().dn, format!("uid=user29,ou=Disabled,{SUFFIX}"), "the leaver is parked");
    assert_idle(&env);

    // The leaver comes back: moved home, the same entry.
    let u29 = uuid(&user(&slapd, "user29").unwrap());
    doc["users"].as_array_mut().unwrap().push(leaver);
    env.write_org(&doc);
    ok(&env.sync(&[]));
    let back = user(&slapd, "user29").unwrap();
    assert_eq!(uuid(&back), u29);
    assert!(back.dn.ends_with(&format!("ou=Dept 1,ou=Dept 0,ou=Departments,{SUFFIX}")) || back.dn.contains("ou=Research"), "{}", back.dn);
    assert_idle(&env);
}

#[test]
fn groups_layout_keeps_members_and_renames_follow() {
    let env = Env::new();
    let slapd = Slapd::start(env.dir.path(), &base_ldif());
    config(
        &env,
        &slapd.url,
        "disable = \"attribute\"\ndisable_attribute = \"employeeType\"\ndisable_value = \"disabled\"\n\
         [target.departments]\nas = \"groups\"\n",
        "[policy.users]\ntarget_only = \"disable\"\n",
    );
    let mut doc = org(4, 12);
    doc["users"][1]["department_ids"] = json!(["d1", "d2"]);
    env.write_org(&doc);
    ok(&env.sync(&[]));
    let groups = search(&slapd, &format!("ou=Departments,{SUFFIX}"), "(objectClass=groupOfNames)");
    assert_eq!(groups.len(), 4);
    let g = |name: &str| search(&slapd, SUFFIX, &format!("(cn={name})")).pop().unwrap();
    let people = format!("ou=People,{SUFFIX}");
    assert_eq!(user(&slapd, "user1").unwrap().dn, format!("uid=user1,{people}"), "users are flat");
    let members = |name: &str| g(name).all("member");
    assert!(members("Dept 0").contains(&format!("cn=Dept 1,ou=Departments,{SUFFIX}")), "a child group is a member of its parent");
    assert!(members("Dept 1").contains(&format!("uid=user1,{people}")));
    assert!(members("Dept 2").contains(&format!("uid=user1,{people}")));
    assert_idle(&env);

    // Rename Dept 1, user1 leaves Dept 2, user5 changes username, user11 leaves.
    doc["departments"][1]["name"] = json!("Platform");
    doc["users"][1]["department_ids"] = json!(["d1"]);
    doc["users"][5]["username"] = json!("renamed5");
    doc["users"].as_array_mut().unwrap().pop();
    env.write_org(&doc);
    ok(&env.sync(&["--allow-deletes", "1"]));
    let platform = members("Platform");
    assert!(platform.contains(&format!("uid=user1,{people}")), "{platform:?}");
    assert!(members("Dept 0").contains(&format!("cn=Platform,ou=Departments,{SUFFIX}")), "the parent's member value follows the rename");
    assert!(!members("Dept 0").iter().any(|m| m.contains("Dept 1")));
    assert!(!members("Dept 2").contains(&format!("uid=user1,{people}")));
    assert!(user(&slapd, "user5").is_none());
    let dept_of_5 = format!("Dept {}", 5 % 4);
    let g5 = if dept_of_5 == "Dept 1" { "Platform".to_owned() } else { dept_of_5 };
    assert!(members(&g5).contains(&format!("uid=renamed5,{people}")), "the member value follows the user's rename");
    assert_eq!(user(&slapd, "user11").unwrap().get("employeeType"), Some("disabled"));
    assert_idle(&env);
}

#[test]
fn existing_entries_are_bound_not_duplicated_and_deletes_are_guarded() {
    let env = Env::new();
    let mut ldif = base_ldif();
    // Someone already made an account for user3 (matched by mail) and one
    // orgsync must never touch.
    ldif.push_str(&format!(
        "dn: uid=u3-old,ou=People,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: u3-old\ncn: Old\nsn: Old\nmail: user3@example.test\n\n\
         dn: uid=admin,ou=People,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: admin\ncn: Admin\nsn: Admin\n\n"
    ));
    for i in 0..6 {
        ldif.push_str(&format!("dn: uid=stale{i},ou=People,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: stale{i}\ncn: S\nsn: S\n\n"));
    }
    let slapd = Slapd::start(env.dir.path(), &ldif);
    config(
        &env,
        &slapd.url,
        "disable = \"delete\"\nprotected = [\"admin\"]\n",
        "[policy.users]\ntarget_only = \"delete\"\nmatch_by = [\"email\"]\n[policy.guard]\nmax_deletes = 3\n",
    );
    env.write_org(&org(0, 5));
    let before = uuid(&user(&slapd, "u3-old").unwrap());
    let r = env.sync(&[]);
    assert_eq!(r.code, 3, "partial: the guard held the deletes back\n{}\n{}", r.stdout, r.stderr);
    assert!(user(&slapd, "stale0").is_some(), "nothing deleted past the guard");
    let u3 = user(&slapd, "user3").unwrap();
    assert_eq!(uuid(&u3), before, "bound and renamed, not duplicated");
    assert_eq!(users(&slapd).iter().filter(|e| e.get("mail") == Some("user3@example.test")).count(), 1);
    ok(&env.sync(&["--allow-deletes", "6"]));
    assert!(user(&slapd, "stale0").is_none() && user(&slapd, "stale5").is_none());
    assert!(user(&slapd, "admin").is_some(), "protected entries are never touched");
    assert_idle(&env);
}

#[test]
fn ldaps_and_starttls_with_a_test_ca_and_a_wrong_password_fails_with_zero_writes() {
    let env = Env::new();
    let ca = TestCa::new(env.dir.path(), "ldap-target");
    let slapd = Slapd::start_with(env.dir.path(), &base_ldif(), Some(&ca));
    env.write_org(&org(2, 3));
    let tls = format!("disable = \"delete\"\nca_file = \"{}\"\n", ca.ca.display());

    config(&env, slapd.ldaps_url.as_ref().unwrap(), &tls, "");
    std::fs::write(env.path("bind-pw"), "wrong-target-password\n").unwrap();
    let r = env.sync(&[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let run = last_run(&env);
    assert_eq!(run["status"], "failed");
    let message = run["message"].as_str().unwrap();
    assert!(message.contains("LDAP result 49"), "{message}");
    assert!(
        !message.contains("wrong-target-password")
            && !r.stderr.contains("wrong-target-password")
            && !r.stdout.contains("wrong-target-password")
    );
    assert!(users(&slapd).is_empty(), "no writes");

    config(&env, slapd.ldaps_url.as_ref().unwrap(), &tls, "");
    ok(&env.sync(&[]));
    assert_eq!(users(&slapd).len(), 3);

    config(&env, &slapd.url, &format!("{tls}starttls = true\n"), "[policy.users]\ntarget_only = \"disable\"\n");
    assert_idle(&env);
    let check = env.orgsync(&["check-target"]);
    ok(&check);
    assert!(check.stdout.contains(&format!("ou=People,{SUFFIX} (exists)")), "{}", check.stdout);

    // disable = "delete": a leaver's entry goes.
    let mut doc = org(2, 3);
    doc["users"].as_array_mut().unwrap().pop();
    env.write_org(&doc);
    ok(&env.sync(&["--allow-deletes", "1"]));
    assert!(user(&slapd, "user2").is_none());
    assert_eq!(users(&slapd).len(), 2);
}

#[test]
fn ds389_ou_tree_keyed_by_nsuniqueid_locks_leavers_with_nsaccountlock() {
    let env = Env::new();
    let ds = Ds389::start(env.dir.path());
    ds.add(&base_ldif().split("\n\n").skip(1).collect::<Vec<_>>().join("\n\n"));
    config_as(
        &env,
        &ds.url,
        crate::ds389::ROOT_DN,
        crate::ds389::ROOT_PW,
        "disable = \"attribute\"\ndisable_attribute = \"nsAccountLock\"\ndisable_value = \"true\"\n",
        "[policy.users]\ntarget_only = \"disable\"\n",
    );
    let mut doc = org(5, 20);
    env.write_org(&doc);
    ok(&env.sync(&[]));
    assert_eq!(users(&ds).len(), 20);
    let d1 = search(&ds, SUFFIX, "(ou=Dept 1)").pop().unwrap();
    let id = |e: &Entry| e.get("nsUniqueId").or(e.get("entryUUID")).unwrap().to_owned();
    let d1_id = id(&d1);
    assert_eq!(user(&ds, "user4").unwrap().dn, format!("uid=user4,ou=Dept 4,ou=Dept 1,ou=Dept 0,ou=Departments,{SUFFIX}"));
    assert_idle(&env);

    doc["departments"][1]["name"] = json!("Renamed");
    doc["departments"][4]["parent_id"] = json!("d2");
    doc["users"].as_array_mut().unwrap().pop();
    env.write_org(&doc);
    ok(&env.sync(&["--allow-deletes", "1"]));
    let renamed = search(&ds, SUFFIX, "(ou=Renamed)").pop().unwrap();
    assert_eq!(id(&renamed), d1_id, "renamed in place");
    assert_eq!(user(&ds, "user4").unwrap().dn, format!("uid=user4,ou=Dept 4,ou=Dept 2,ou=Dept 0,ou=Departments,{SUFFIX}"));
    assert_eq!(user(&ds, "user19").unwrap().get("nsAccountLock"), Some("true"));
    assert_idle(&env);
}

#[test]
fn feishu_org_into_ldap_then_idle() {
    use crate::fake_feishu::{APP_ID, APP_SECRET, FakeFeishu, org};
    let env = Env::new();
    let slapd = Slapd::start(env.dir.path(), &base_ldif());
    let fake = FakeFeishu::start(org());
    config(&env, &slapd.url, "disable = \"move\"\ndisabled_dn = \"ou=Disabled,dc=example,dc=test\"\n", "");
    std::fs::write(env.path("app-secret"), format!("{APP_SECRET}\n")).unwrap();
    let text = std::fs::read_to_string(env.path("orgsync.toml")).unwrap().replace(
        "kind = \"file\"\npath = \"org.json\"\n",
        &format!("kind = \"feishu\"\nbase_url = \"{}\"\napp_id = \"{APP_ID}\"\napp_secret_file = \"app-secret\"\n", fake.base),
    );
    std::fs::write(env.path("orgsync.toml"), text).unwrap();
    let r = env.sync(&[]);
    ok(&r);
    assert_eq!(users(&slapd).len(), 230, "every user once");
    let ous = search(&slapd, &format!("ou=Departments,{SUFFIX}"), "(objectClass=organizationalUnit)");
    assert_eq!(ous.len(), 32, "31 departments + the base");
    let u5 = user(&slapd, "u5").unwrap();
    assert!(u5.dn.starts_with("uid=u5,ou=Dept 0.1.1,"), "under the primary department: {}", u5.dn);
    assert_eq!(fake.unexpected(), Vec::<String>::new());
    assert!(!r.stderr.contains(APP_SECRET) && !r.stderr.contains(ROOT_PW) && !r.stdout.contains(ROOT_PW));
    assert_idle(&env);
}

#[test]
fn groups_layout_gives_departments_named_alike_their_own_groups_with_stable_names() {
    let env = Env::new();
    let slapd = Slapd::start(env.dir.path(), &base_ldif());
    config(&env, &slapd.url, "disable = \"delete\"\n[target.departments]\nas = \"groups\"\n", "");
    // Sales/Team and Support/Team: one name, two departments.
    let mut doc = crate::harness::same_named_teams();
    env.write_org(&doc);
    ok(&env.sync(&[]));
    let people = format!("ou=People,{SUFFIX}");
    let departments = format!("ou=Departments,{SUFFIX}");
    let group = |cn: &str| search(&slapd, &departments, &format!("(cn={})", ldap3::ldap_escape(cn))).pop();
    // Read through the server: each Team its own group, in its own parent, with its own member.
    let check = |second: &str| {
        let (first, other) = (group("Team").expect("cn=Team"), group(second).unwrap_or_else(|| panic!("no cn={second}")));
        for (g, parent) in [(&first, "Sales"), (&other, "Support")] {
            assert!(matches!(g.get("ou"), Some("Team" | "Squad")), "the department's name in ou: {g:?}");
            let holder = group(parent).unwrap();
            assert!(holder.all("member").contains(&g.dn), "{} not in {parent}: {holder:?}", g.dn);
        }
        assert!(
            first.all("member").contains(&format!("uid=seller,{people}")) && !first.all("member").contains(&format!("uid=helper,{people}"))
        );
        assert!(
            other.all("member").contains(&format!("uid=helper,{people}")) && !other.all("member").contains(&format!("uid=seller,{people}"))
        );
    };
    check("Team (Support)");
    assert_idle(&env);

    // A rename of the disambiguated one: its group follows; the other keeps its name.
    doc["departments"][4]["name"] = json!("Squad");
    env.write_org(&doc);
    ok(&env.sync(&[]));
    check("Squad");
    assert_eq!(group("Squad").unwrap().get("ou"), Some("Squad"));
    assert!(group("Team (Support)").is_none());
    assert_idle(&env);
}

/// `external_id = "employeeType"` (allowed on inetOrgPerson, not on
/// organizationalUnit): the schema says so before any write, naming the
/// key, in the run and in check-target; an attribute every class in use
/// allows works.
#[test]
fn a_mark_the_schema_does_not_allow_fails_before_any_write_naming_the_key() {
    let env = Env::new();
    let slapd = Slapd::start(env.dir.path(), &base_ldif());
    config(&env, &slapd.url, "disable = \"delete\"\n[target.attributes]\nexternal_id = \"employeeType\"\n", "");
    env.write_org(&org(3, 6));
    let r = env.sync(&[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let message = last_run(&env)["message"].as_str().unwrap().to_owned();
    assert!(message.contains("target.attributes.external_id: employeeType is not allowed on organizationalUnit"), "{message}");
    assert!(users(&slapd).is_empty(), "nothing was written");
    assert_eq!(search(&slapd, &format!("ou=Departments,{SUFFIX}"), "(objectClass=organizationalUnit)").len(), 1, "only the base");
    let check = env.orgsync(&["check-target"]);
    assert!(check.stdout.contains("employeeType is not allowed"), "{}", check.stdout);

    config(&env, &slapd.url, "disable = \"delete\"\n[target.attributes]\nexternal_id = \"description\"\n", "");
    ok(&env.sync(&[]));
    assert_eq!(users(&slapd).len(), 6);
    let check = env.orgsync(&["check-target"]);
    assert!(check.stdout.contains("every attribute written is allowed"), "{}", check.stdout);
    assert_idle(&env);
}
