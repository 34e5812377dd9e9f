//! django-scim2 (PyPI 0.23, tests/servers/django_scim): users and groups
//! share integer ids, group members are users only, PATCH takes few
//! attributes, filters are not supported.

use crate::harness::{Env, Scim, org};
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
