//! The convergence suite: one org in three versions (renames, subtree
//! moves, deleted departments, leavers, a re-hire, a username change, and
//! departments named alike under different parents) synced into every real
//! target, each as its maker ships it. After each version the server's own
//! state, read through its own API (never through orgsync's mirror), is
//! what the source says, or the run's `refused`/`not_kept` items name what
//! the server cannot hold; the next run writes nothing and is not `failed`;
//! a dry-run plans nothing.

use crate::harness::{Env, Scim};
use crate::ldap_target::{Directory, Entry, search};
use crate::slapd::{SUFFIX, Slapd};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What a server holds, in the source's terms: departments as name paths
/// from the top (`HQ/Sales/Team`), users by username.
#[derive(Debug, Default, PartialEq)]
struct Held {
    departments: Vec<String>,
    users: BTreeMap<String, HeldUser>,
}

#[derive(Debug, Clone, PartialEq)]
struct HeldUser {
    /// `None` where the server makes its own (django-scim2 derives it).
    name: Option<String>,
    email: Option<String>,
    active: bool,
    departments: BTreeSet<String>,
}

/// What a target can hold, as its maker ships it.
#[derive(Clone, Copy)]
struct Traits {
    /// Departments nest (groups in groups, OUs in OUs); else each is known by its own name.
    nests: bool,
    /// The user's name is kept as sent.
    names: bool,
    /// A username change is taken (else a `refused` item names it).
    renames_users: bool,
}

const ALL: Traits = Traits { nests: true, names: true, renames_users: true };

/// (id, parent, name) of version 1: three departments named Team.
const DEPARTMENTS: [(&str, Option<&str>, &str); 14] = [
    ("d0", None, "HQ"),
    ("sales", Some("d0"), "Sales"),
    ("sales-team", Some("sales"), "Team"),
    ("east", Some("sales"), "East"),
    ("support", Some("d0"), "Support"),
    ("support-team", Some("support"), "Team"),
    ("tier2", Some("support"), "Tier 2"),
    ("eng", Some("d0"), "Engineering"),
    ("platform", Some("eng"), "Platform"),
    ("core", Some("platform"), "Core"),
    ("apps", Some("eng"), "Apps"),
    ("ops", Some("d0"), "Operations"),
    ("ops-team", Some("ops"), "Team"),
    ("legal", Some("d0"), "Legal"),
];

/// The org's version `v` (1, 2 or 3), and the usernames that left.
///
/// - 2: Apps and Legal renamed; Platform (with Core) moved under
///   Operations; East and Tier 2 deleted (their people moved up); user3
///   and user4 leave; user7 becomes user7x; user8 moves to Operations' Team;
///   user9's name and email change.
/// - 3: user3 is re-hired; Legal gets a fourth Team with a new user28;
///   Products (once Apps) is deleted, its people moved to Engineering;
///   Core moves to the top; Sales' Team becomes Deals.
fn version(v: u8) -> (Value, Vec<&'static str>) {
    let mut depts: Vec<(&str, Option<&str>, &str)> = DEPARTMENTS.to_vec();
    let set = |depts: &mut Vec<(&str, Option<&str>, &str)>, id: &str, parent: Option<Option<&'static str>>, name: Option<&'static str>| {
        let d = depts.iter_mut().find(|d| d.0 == id).unwrap();
        if let Some(p) = parent {
            d.1 = p;
        }
        if let Some(n) = name {
            d.2 = n;
        }
    };
    if v >= 2 {
        set(&mut depts, "apps", None, Some("Products"));
        set(&mut depts, "legal", None, Some("Compliance"));
        set(&mut depts, "platform", Some(Some("ops")), None);
        depts.retain(|d| d.0 != "east" && d.0 != "tier2");
    }
    if v >= 3 {
        depts.push(("legal-team", Some("legal"), "Team"));
        depts.retain(|d| d.0 != "apps");
        set(&mut depts, "core", Some(Some("d0")), None);
        set(&mut depts, "sales-team", None, Some("Deals"));
    }
    let mut users = Vec::new();
    for i in 0..29usize {
        if (i == 28 && v < 3) || (i == 4 && v >= 2) || (i == 3 && v == 2) {
            continue;
        }
        let mut dept = if i == 28 { "legal-team" } else { DEPARTMENTS[i % DEPARTMENTS.len()].0 };
        if v >= 2 {
            dept = match dept {
                "tier2" => "support",
                "east" => "sales",
                d => d,
            };
            if i == 8 {
                dept = "ops-team";
            }
        }
        if v >= 3 && dept == "apps" {
            dept = "eng";
        }
        let username = if i == 7 && v >= 2 { "user7x".to_owned() } else { format!("user{i}") };
        let (name, email) = if i == 9 && v >= 2 {
            ("User Nine".to_owned(), "nine@example.com".to_owned())
        } else {
            (format!("User {i}"), format!("user{i}@example.com"))
        };
        users.push(json!({"id": format!("u{i}"), "username": username, "name": name, "email": email, "department_ids": [dept]}));
    }
    let departments: Vec<Value> = depts.iter().map(|(id, p, n)| json!({"id": id, "parent_id": p, "name": n})).collect();
    let leavers = match v {
        1 => vec![],
        2 => vec!["user3", "user4"],
        _ => vec!["user4"],
    };
    (json!({"departments": departments, "users": users}), leavers)
}

/// What the server should hold after `doc`: leavers inactive (their
/// memberships are not judged), a refused username change kept as it was.
fn expected(doc: &Value, leavers: &[&str], t: Traits) -> (Held, Vec<String>) {
    let depts: HashMap<&str, (Option<&str>, &str)> = doc["departments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["id"].as_str().unwrap(), (d["parent_id"].as_str(), d["name"].as_str().unwrap())))
        .collect();
    let path = |id: &str| {
        let mut names = Vec::new();
        let mut at = Some(id);
        while let Some(i) = at {
            let (parent, name) = depts[i];
            names.push(name);
            at = if t.nests { parent } else { None };
        }
        names.reverse();
        names.join("/")
    };
    let mut held = Held { departments: depts.keys().map(|d| path(d)).collect(), users: BTreeMap::new() };
    held.departments.sort();
    for u in doc["users"].as_array().unwrap() {
        let mut username = u["username"].as_str().unwrap();
        if username == "user7x" && !t.renames_users {
            username = "user7";
        }
        let user = HeldUser {
            name: t.names.then(|| u["name"].as_str().unwrap().to_owned()),
            email: u["email"].as_str().map(str::to_owned),
            active: true,
            departments: u["department_ids"].as_array().unwrap().iter().map(|d| path(d.as_str().unwrap())).collect(),
        };
        held.users.insert(username.to_owned(), user);
    }
    (held, leavers.iter().map(|l| (*l).to_owned()).collect())
}

/// Compare what the server holds with what it should.
fn judge(v: u8, have: &Held, want: &Held, leavers: &[String]) {
    assert_eq!(have.departments, want.departments, "version {v}: the departments");
    let names: BTreeSet<&String> = have.users.keys().collect();
    let wanted: BTreeSet<&String> = want.users.keys().chain(leavers).collect();
    assert_eq!(names, wanted, "version {v}: the users (each once)");
    for (name, w) in &want.users {
        let h = &have.users[name];
        let mut h = h.clone();
        if w.name.is_none() {
            h.name = None;
        }
        assert_eq!(&h, w, "version {v}: {name}");
    }
    for l in leavers {
        assert!(!have.users[l].active, "version {v}: leaver {l} is inactive: {:?}", have.users[l]);
    }
}

/// The items of the last run.
fn last_items(env: &Env) -> (Value, Vec<Value>) {
    let run = env.status_json()["runs"][0].clone();
    let id = run["id"].to_string();
    let shown: Value = serde_json::from_str(&env.orgsync(&["runs", "show", &id, "--output", "json"]).stdout).unwrap();
    (run, shown["items"].as_array().cloned().unwrap_or_default())
}

/// The three versions, each synced, judged, then an idle run and a dry-run.
fn cycle(env: &Env, t: Traits, read: &dyn Fn() -> Held) {
    for v in 1..=3u8 {
        let (doc, leavers) = version(v);
        env.write_org(&doc);
        let r = env.sync(&[]);
        assert!(r.code == 0 || r.code == 3, "version {v}: {}\n{}", r.stdout, r.stderr);
        let (run, items) = last_items(env);
        let failed: Vec<&Value> = items.iter().filter(|i| i["outcome"] == "failed").collect();
        assert!(failed.is_empty(), "version {v}: failed items {failed:#?}\n{run:#}");
        if v >= 2 && !t.renames_users {
            assert!(
                items
                    .iter()
                    .any(|i| i["outcome"] == "refused" && i["source_id"] == "u7" && i["error"].as_str().unwrap_or("").contains("username"))
                    || items.iter().any(|i| i["outcome"] == "not_kept" && i["source_id"] == "u7"),
                "version {v}: the refused username change is named: {items:#?}"
            );
        }
        let (want, leavers) = expected(&doc, &leavers, t);
        judge(v, &read(), &want, &leavers);

        // Idle: nothing written (only items saying what is not sent again), not failed.
        let r = env.sync(&[]);
        assert_eq!(r.code, 0, "version {v}, idle: {}\n{}", r.stdout, r.stderr);
        let (run, items) = last_items(env);
        assert_ne!(run["status"], "failed");
        let wrote: Vec<&Value> = items.iter().filter(|i| i["outcome"] != "not_kept").collect();
        assert!(wrote.is_empty(), "version {v}: the idle run wrote {wrote:#?}");
        let dry = env.sync(&["--dry-run"]);
        assert!(dry.stdout.contains("Nothing to do"), "version {v}: the dry-run plans\n{}", dry.stdout);
        judge(v, &read(), &want, &leavers);
    }
}

const POLICY: &str = "[policy.users]\ntarget_only = \"disable\"\n[policy.departments]\ntarget_only = \"delete\"\n\
                      [policy.guard]\nmax_delete_percent = 100\nmax_department_delete_percent = 100\n";

// ---- SCIM servers ---------------------------------------------------------

/// A SCIM server's state: groups nested through their members; on a server
/// keeping names unique, a name's `(Parent)` disambiguation taken off.
fn scim_held(scim: &Scim, t: Traits, unique: bool) -> Held {
    let users = scim.users();
    let groups = scim.groups();
    let group_ids: BTreeSet<&str> = groups.iter().map(|g| g["id"].as_str().unwrap()).collect();
    let user_ids: BTreeSet<&str> = users.iter().map(|u| u["id"].as_str().unwrap()).collect();
    let mut parent: HashMap<&str, &str> = HashMap::new();
    let mut of_user: HashMap<&str, Vec<&str>> = HashMap::new();
    for g in &groups {
        let gid = g["id"].as_str().unwrap();
        for m in g["members"].as_array().into_iter().flatten() {
            let value = m["value"].as_str().unwrap();
            assert!(group_ids.contains(value) || user_ids.contains(value), "a dead member {value} in {g:#}");
            if group_ids.contains(value) && m["type"] != "User" && t.nests {
                assert!(parent.insert(value, gid).is_none(), "group {value} in two parents");
            } else {
                of_user.entry(value).or_default().push(gid);
            }
        }
    }
    let name: HashMap<&str, &str> = groups.iter().map(|g| (g["id"].as_str().unwrap(), g["displayName"].as_str().unwrap())).collect();
    // `Team (Support)` under Support; where groups do not nest, any `(…)`.
    fn plain(name: &str, parent: Option<&str>) -> String {
        match parent {
            Some(p) => name.strip_suffix(&format!(" ({p})")).unwrap_or(name).to_owned(),
            None => name.rsplit_once(" (").filter(|(_, rest)| rest.ends_with(')')).map_or(name, |(n, _)| n).to_owned(),
        }
    }
    let path = |id: &str| {
        let mut chain = vec![id];
        while let Some(p) = parent.get(chain.last().unwrap()) {
            chain.push(p);
        }
        chain.reverse();
        let mut names: Vec<String> = Vec::new();
        for g in chain {
            let n = if unique { plain(name[g], names.last().map(String::as_str)) } else { name[g].to_owned() };
            names.push(n);
        }
        names.join("/")
    };
    let mut held = Held { departments: groups.iter().map(|g| path(g["id"].as_str().unwrap())).collect(), ..Held::default() };
    held.departments.sort();
    for u in &users {
        let id = u["id"].as_str().unwrap();
        let user = HeldUser {
            name: u["name"]["formatted"].as_str().or(u["displayName"].as_str()).map(str::to_owned),
            email: u["emails"][0]["value"].as_str().map(str::to_owned),
            active: u["active"] != false,
            departments: of_user.get(id).into_iter().flatten().map(|g| path(g)).collect(),
        };
        assert!(held.users.insert(u["userName"].as_str().unwrap().to_owned(), user).is_none(), "a username twice");
    }
    held
}

fn scim_cycle(scim: &Scim, env: &Env, extra: &str, t: Traits, unique: bool) {
    env.scim_config(scim, &format!("{extra}\n{POLICY}"));
    cycle(env, t, &|| scim_held(scim, t, unique));
}

#[test]
fn scim2_server_converges_through_three_versions() {
    let env = Env::new();
    let scim = Scim::start(env.dir.path());
    scim_cycle(&scim, &env, "", ALL, false);
}

#[test]
fn scimmy_converges_through_three_versions() {
    let env = Env::new();
    let scim = Scim::scimmy(env.dir.path());
    scim_cycle(&scim, &env, "", ALL, false);
}

#[test]
fn scimmy_keeping_group_names_unique_converges_through_three_versions() {
    let env = Env::new();
    let scim = Scim::scimmy_with(env.dir.path(), &["unique-groups"]);
    scim_cycle(&scim, &env, "", ALL, true);
}

/// django-scim2 0.23 as shipped: ids are numbers users and groups share,
/// so memberships go flat; it derives the name itself.
#[test]
fn django_scim2_converges_through_three_versions() {
    let env = Env::new();
    let scim = Scim::django(env.dir.path());
    scim_cycle(&scim, &env, "", Traits { nests: false, names: false, renames_users: true }, false);
}

/// django-scim2-server 1.1 as shipped: a deleted user stays listed,
/// inactive; a group given as a member is dropped (200 all the same); a
/// taken group name is a 500; the name parts are kept, not the name.
#[test]
fn django_scim2_server_converges_through_three_versions() {
    let env = Env::new();
    let scim = Scim::django_server(env.dir.path());
    scim_cycle(&scim, &env, "", Traits { nests: false, names: false, renames_users: true }, true);
    // check-target says what the runs learnt: no group is kept in a group.
    let check = env.orgsync(&["check-target"]);
    assert!(check.stdout.contains("not kept in their parents' members"), "{}", check.stdout);
}

// ---- Keycloak -----------------------------------------------------------

/// A realm as Keycloak makes it: user attributes it does not declare are
/// dropped, usernames cannot change.
#[test]
fn keycloak_default_realm_converges_through_three_versions() {
    let kc = crate::keycloak::Keycloak::shared();
    let realm = "orgsync-converge";
    let secret = kc.realm_keeping(realm, false);
    let env = Env::new();
    crate::rest::keycloak_config(&env, kc, realm, &secret, POLICY);
    let read = || {
        let groups = kc.groups(realm);
        let mut held = Held {
            departments: groups.iter().map(|g| g["path"].as_str().unwrap().trim_start_matches('/').to_owned()).collect(),
            ..Held::default()
        };
        held.departments.sort();
        for u in kc.users(realm) {
            let id = u["id"].as_str().unwrap();
            let (_, g) = kc.admin("GET", &format!("/{realm}/users/{id}/groups"), None);
            let user = HeldUser {
                name: u["firstName"].as_str().map(str::to_owned),
                email: u["email"].as_str().map(str::to_owned),
                active: u["enabled"] == true,
                departments: g.as_array().unwrap().iter().map(|g| g["path"].as_str().unwrap().trim_start_matches('/').to_owned()).collect(),
            };
            held.users.insert(u["username"].as_str().unwrap().to_owned(), user);
        }
        held
    };
    cycle(&env, Traits { renames_users: false, ..ALL }, &read);
}

// ---- LDAP ---------------------------------------------------------------

fn rdn_value(rdn: &str) -> &str {
    rdn.split_once('=').map_or(rdn, |(_, v)| v)
}

/// `ou=Core,ou=Platform,…,ou=Departments,SUFFIX` → `…/Platform/Core`.
fn ou_path(dn: &str, base: &str) -> Option<String> {
    let inner = dn.strip_suffix(&format!(",{base}"))?;
    let mut names: Vec<&str> = inner.split(',').map(rdn_value).collect();
    names.reverse();
    Some(names.join("/"))
}

/// An `ou_tree` directory: departments are OUs, a user's department the OU it lives in.
fn ou_tree_held(dir: &dyn Directory, active: &dyn Fn(&Entry) -> bool) -> Held {
    let base = format!("ou=Departments,{SUFFIX}");
    let mut held = Held {
        departments: search(dir, &base, "(objectClass=organizationalUnit)").iter().filter_map(|e| ou_path(&e.dn, &base)).collect(),
        ..Held::default()
    };
    held.departments.sort();
    for e in crate::ldap_target::users(dir) {
        let parent = e.dn.split_once(',').unwrap().1;
        let user = HeldUser {
            name: e.get("cn").map(str::to_owned),
            email: e.get("mail").map(str::to_owned),
            active: active(&e),
            departments: ou_path(parent, &base).into_iter().collect(),
        };
        assert!(held.users.insert(e.get("uid").unwrap().to_owned(), user).is_none(), "a uid twice");
    }
    held
}

#[test]
fn slapd_ou_tree_converges_through_three_versions() {
    let env = Env::new();
    let slapd = Slapd::start(env.dir.path(), &crate::ldap_target::base_ldif());
    crate::ldap_target::config(&env, &slapd.url, "disable = \"move\"\ndisabled_dn = \"ou=Disabled,dc=example,dc=test\"\n", POLICY);
    let disabled = format!(",ou=Disabled,{SUFFIX}");
    cycle(&env, ALL, &|| ou_tree_held(&slapd, &|e| !e.dn.ends_with(&disabled)));
}

#[test]
fn ds389_ou_tree_converges_through_three_versions() {
    let env = Env::new();
    let ds = crate::ds389::Ds389::start(env.dir.path());
    ds.add(&crate::ldap_target::base_ldif().split("\n\n").skip(1).collect::<Vec<_>>().join("\n\n"));
    crate::ldap_target::config_as(
        &env,
        &ds.url,
        crate::ds389::ROOT_DN,
        crate::ds389::ROOT_PW,
        "disable = \"attribute\"\ndisable_attribute = \"nsAccountLock\"\ndisable_value = \"true\"\n",
        POLICY,
    );
    cycle(&env, ALL, &|| ou_tree_held(&ds, &|e| e.get("nsAccountLock") != Some("true")));
}

/// The `groups` layout: users in one OU, each department a group (its name
/// in `ou`), nested through `member`.
#[test]
fn slapd_groups_converges_through_three_versions() {
    let env = Env::new();
    let slapd = Slapd::start(env.dir.path(), &crate::ldap_target::base_ldif());
    crate::ldap_target::config(
        &env,
        &slapd.url,
        "disable = \"move\"\ndisabled_dn = \"ou=Disabled,dc=example,dc=test\"\n[target.departments]\nas = \"groups\"\n",
        POLICY,
    );
    let base = format!("ou=Departments,{SUFFIX}");
    let disabled = format!(",ou=Disabled,{SUFFIX}");
    let read = || {
        let groups: Vec<Entry> = search(&slapd, &base, "(objectClass=groupOfNames)");
        let name: HashMap<&str, &str> = groups.iter().map(|g| (g.dn.as_str(), g.get("ou").or(g.get("cn")).unwrap())).collect();
        let mut parent: HashMap<String, String> = HashMap::new();
        let mut of: HashMap<String, Vec<String>> = HashMap::new();
        for g in &groups {
            for m in g.all("member").into_iter().filter(|m| !m.is_empty()) {
                if name.contains_key(m.as_str()) {
                    assert!(parent.insert(m.clone(), g.dn.clone()).is_none(), "{m} in two groups");
                } else {
                    of.entry(m.to_ascii_lowercase()).or_default().push(g.dn.clone());
                }
            }
        }
        let path = |dn: &str| {
            let mut chain = vec![dn.to_owned()];
            while let Some(p) = parent.get(chain.last().unwrap()) {
                chain.push(p.clone());
            }
            chain.iter().rev().map(|d| name[d.as_str()]).collect::<Vec<_>>().join("/")
        };
        let mut held = Held { departments: groups.iter().map(|g| path(&g.dn)).collect(), ..Held::default() };
        held.departments.sort();
        let people = crate::ldap_target::users(&slapd);
        let dns: BTreeSet<String> = people.iter().map(|e| e.dn.to_ascii_lowercase()).collect();
        let dangling: Vec<&String> = of.keys().filter(|m| !dns.contains(*m)).collect();
        assert!(dangling.is_empty(), "group members that are no entry: {dangling:?}");
        for e in people {
            let user = HeldUser {
                name: e.get("cn").map(str::to_owned),
                email: e.get("mail").map(str::to_owned),
                active: !e.dn.ends_with(&disabled),
                departments: of.get(&e.dn.to_ascii_lowercase()).into_iter().flatten().map(|g| path(g)).collect(),
            };
            assert!(held.users.insert(e.get("uid").unwrap().to_owned(), user).is_none(), "a uid twice");
        }
        held
    };
    cycle(&env, ALL, &read);
}
