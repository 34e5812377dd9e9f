//! `[target] kind = "ldap"`: its keys, their defaults and their validation.

use crate::config::reader::{Problems, Reader};
pub use crate::ldap::{Connection, is_under, normalize};
use crate::targets::TargetConfig;
use std::time::Duration;

/// `departments.as`: how departments are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `ou_tree`: an `organizationalUnit` per department, nested like the
    /// tree under `departments_dn`; a user's entry lives under its primary
    /// department's OU (under `users_dn` without one).
    OuTree,
    /// `groups`: a `groupOfNames` per department under `departments_dn`, a
    /// child group a `member` of its parent's; users flat under `users_dn`.
    Groups,
}

/// `disable`: what disabling a user does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disable {
    /// `delete`: the entry is deleted.
    Delete,
    /// `move`: the entry moves under `disabled_dn` (and back when enabled).
    Move { disabled_dn: String },
    /// `attribute`: `disable_attribute` is set to `disable_value` (and
    /// removed when enabled), e.g. `nsAccountLock: true` on 389-DS.
    Attribute { name: String, value: String },
}

/// `[target.attributes]`: the LDAP attribute each user field is written
/// to; `""` writes the field nowhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attributes {
    pub username: String,
    pub name: String,
    /// `sn` is required by `person`: the name (or the username) goes there.
    pub surname: String,
    pub nickname: String,
    pub email: String,
    pub mobile: String,
    pub employee_no: String,
    pub title: String,
    /// The primary department's name; default none.
    pub department: String,
    /// Where orgsync's mark (the source id) is kept on users, departments
    /// and groups; default none (entries are then matched by their keys).
    pub external_id: String,
    /// The manager's DN; default `manager` (inetOrgPerson, AD).
    pub manager: String,
    /// A department's leaders' DNs; default `owner` (groupOfNames allows
    /// it; the standard organizationalUnit does not: then not written).
    pub leader: String,
}

impl Default for Attributes {
    fn default() -> Self {
        Attributes {
            username: "uid".into(),
            name: "cn".into(),
            surname: "sn".into(),
            nickname: "displayName".into(),
            email: "mail".into(),
            mobile: "mobile".into(),
            employee_no: "employeeNumber".into(),
            title: "title".into(),
            department: String::new(),
            external_id: String::new(),
            manager: "manager".into(),
            leader: "owner".into(),
        }
    }
}

/// `kind = "ldap"`.
#[derive(Clone, Debug)]
pub struct LdapTargetConfig {
    /// `url`, `starttls`, `ca_file`, `tls_insecure`, `bind_dn`,
    /// `bind_password` / `bind_password_file`, `timeout`, `page_size`.
    pub connection: Connection,
    /// `bind_dn` (required: orgsync writes).
    pub bind_dn: String,
    /// `users_dn`: where user entries live (required).
    pub users_dn: String,
    /// `departments_dn`: where department OUs or groups live (required).
    pub departments_dn: String,
    /// `departments.as`: `ou_tree` (default) or `groups`.
    pub layout: Layout,
    /// `departments.unique_name` (`groups`): the group `cn` used when a
    /// department's name is taken by another department's group, with
    /// `{name}` and `{parent}` (the parent group's `cn`). Default
    /// `"{name} ({parent})"`; a number follows when that is taken too.
    pub unique_name: crate::targets::unique::Template,
    /// `user_object_classes`: default `top, person, organizationalPerson, inetOrgPerson`.
    pub user_object_classes: Vec<String>,
    /// `user_rdn`: the attribute naming a user entry; default `uid`.
    pub user_rdn: String,
    pub attributes: Attributes,
    /// `disable`: `delete`, `move` (with `disabled_dn`) or `attribute`
    /// (with `disable_attribute` and `disable_value`). Required: each
    /// directory locks accounts its own way.
    pub disable: Disable,
    /// `protected`: DNs or uids never touched (the bind DN never is).
    pub protected: Vec<String>,
    /// `concurrency`: operations in flight. Default 4.
    pub concurrency: usize,
    /// `max_retries`: retries of busy/unavailable/timeouts. Default 5.
    pub max_retries: usize,
    /// `unreachable_after`: operations in a row that cannot reach the server end the run `failed`. Default 5.
    pub unreachable_after: usize,
}

fn dn_shaped(t: &Reader<'_>, key: &str, v: &str, errs: &mut Problems) {
    if !v.split(',').all(|rdn| rdn.split_once('=').is_some_and(|(a, b)| !a.trim().is_empty() && !b.trim().is_empty())) {
        t.problem(errs, key, format!("{v:?} is not a DN (e.g. ou=People,dc=example,dc=com)"));
    }
}

pub fn parse(t: &mut Reader<'_>, errs: &mut Problems) -> Option<TargetConfig> {
    let url = t.url("url", &["ldap", "ldaps"], "must be ldap://host[:port] or ldaps://host[:port]", "bind_dn + bind_password_file", errs);
    let starttls = t.bool("starttls", errs).unwrap_or(false);
    if starttls && url.as_ref().is_some_and(|u| u.scheme() == "ldaps") {
        t.problem(errs, "starttls", "is for ldap:// URLs; ldaps:// is TLS from the start");
    }
    let bind_dn = t.required_string("bind_dn", errs);
    let bind_password = t.secret("bind_password", "bind_password_file", errs);
    if bind_password.is_none() && !errs.iter().any(|e| e.key.starts_with(&t.key("bind_password"))) {
        t.problem(errs, "bind_password", "is required (or bind_password_file): orgsync binds to write");
    }
    let mut dns = Vec::new();
    for key in ["users_dn", "departments_dn"] {
        let v = t.required_string(key, errs);
        if let Some(v) = &v {
            dn_shaped(t, key, v, errs);
        }
        dns.push(v.unwrap_or_default());
    }
    let [users_dn, departments_dn]: [String; 2] = dns.try_into().unwrap_or_default();
    let (layout, unique_name) = departments(t, errs);
    let user_object_classes = t
        .strings("user_object_classes", errs)
        .unwrap_or_else(|| ["top", "person", "organizationalPerson", "inetOrgPerson"].map(String::from).to_vec());
    if user_object_classes.is_empty() {
        t.problem(errs, "user_object_classes", "must name at least one object class");
    }
    let attributes = attributes(t, errs);
    let user_rdn = t.string("user_rdn", errs).unwrap_or_else(|| "uid".into());
    let rdn_field = [&attributes.username, &attributes.name, &attributes.email, &attributes.employee_no]
        .into_iter()
        .any(|a| a.eq_ignore_ascii_case(&user_rdn));
    if !rdn_field {
        t.problem(
            errs,
            "user_rdn",
            format!("{user_rdn:?} is not written from a field: use the attribute of attributes.username, name, email or employee_no"),
        );
    }
    let disable = disable(t, errs, &users_dn, &departments_dn, layout);
    let page_size = t.u64("page_size", errs).unwrap_or(500);
    if !(1..=1000).contains(&page_size) {
        t.problem(errs, "page_size", format!("{page_size} is out of range 1..=1000"));
    }
    let concurrency = t.u64("concurrency", errs).unwrap_or(4);
    if !(1..=64).contains(&concurrency) {
        t.problem(errs, "concurrency", format!("{concurrency} is out of range 1..=64"));
    }
    let max_retries = t.u64_in("max_retries", crate::config::RETRIES, errs).unwrap_or(5);
    let connection = Connection {
        url: url?,
        starttls,
        ca_file: t.path("ca_file", errs),
        tls_insecure: t.bool("tls_insecure", errs).unwrap_or(false),
        timeout: t.duration("timeout", crate::config::TIMEOUTS, errs).unwrap_or(Duration::from_secs(30)),
        bind_dn: bind_dn.clone(),
        bind_password,
        page_size: page_size as u32,
    };
    Some(TargetConfig::Ldap(Box::new(LdapTargetConfig {
        connection,
        bind_dn: bind_dn?,
        users_dn,
        departments_dn,
        unique_name,
        layout,
        user_object_classes,
        user_rdn,
        attributes,
        disable,
        protected: t.strings("protected", errs).unwrap_or_default(),
        concurrency: concurrency as usize,
        max_retries: max_retries as usize,
        unreachable_after: t.u64_in("unreachable_after", 1..=10_000, errs).unwrap_or(5) as usize,
    })))
}

/// `[target.departments]`: the layout, and the name a repeated
/// department's group takes (`groups` only).
fn departments(t: &mut Reader<'_>, errs: &mut Problems) -> (Layout, crate::targets::unique::Template) {
    let mut dp = t.table("departments", errs);
    let layout = match dp.one_of::<String>("as", &["ou_tree", "groups"], errs).as_deref() {
        Some("groups") => Layout::Groups,
        _ => Layout::OuTree,
    };
    let unique_name = dp.string("unique_name", errs).map_or_else(Default::default, |s| {
        crate::targets::unique::Template::parse(&s).unwrap_or_else(|e| {
            dp.problem(errs, "unique_name", e.to_string());
            Default::default()
        })
    });
    if layout != Layout::Groups && dp.has("unique_name") {
        dp.problem(errs, "unique_name", "is only used with departments.as = \"groups\" (OUs under different parents may share a name)");
    }
    dp.finish(errs);
    (layout, unique_name)
}

/// `[target.attributes]`: which LDAP attribute holds each field.
fn attributes(t: &mut Reader<'_>, errs: &mut Problems) -> Attributes {
    let mut a = t.table("attributes", errs);
    let d = Attributes::default();
    let mut field = |k: &'static str, default: String| a.string(k, errs).map(|s| s.trim().to_owned()).unwrap_or(default);
    let attributes = Attributes {
        username: field("username", d.username),
        name: field("name", d.name),
        surname: field("surname", d.surname),
        nickname: field("nickname", d.nickname),
        email: field("email", d.email),
        mobile: field("mobile", d.mobile),
        employee_no: field("employee_no", d.employee_no),
        title: field("title", d.title),
        department: field("department", d.department),
        external_id: field("external_id", d.external_id),
        manager: field("manager", d.manager),
        leader: field("leader", d.leader),
    };
    a.finish(errs);
    attributes
}

/// How a leaver is disabled: an attribute, a move out of the tree, or a
/// delete; and the keys that go with each, refused with the others.
fn disable(t: &mut Reader<'_>, errs: &mut Problems, users_dn: &str, departments_dn: &str, layout: Layout) -> Disable {
    let disable = match t.one_of::<String>("disable", &["attribute", "move", "delete"], errs).as_deref() {
        Some("delete") => Disable::Delete,
        Some("move") => match t.string("disabled_dn", errs) {
            Some(dn) => {
                dn_shaped(t, "disabled_dn", &dn, errs);
                for (key, base) in [("departments_dn", departments_dn), ("users_dn", users_dn)] {
                    if !base.is_empty() && is_under(&dn, base) && layout == Layout::OuTree {
                        t.problem(
                            errs,
                            "disabled_dn",
                            format!("must not be inside {key} ({base}): disabled users would be taken for members"),
                        );
                    }
                }
                Disable::Move { disabled_dn: dn }
            }
            None => {
                t.problem(errs, "disabled_dn", "is required with disable = \"move\"");
                Disable::Delete
            }
        },
        Some(_) => match (t.string("disable_attribute", errs), t.string("disable_value", errs)) {
            (Some(name), Some(value)) => Disable::Attribute { name, value },
            _ => {
                t.problem(
                    errs,
                    "disable_attribute",
                    "disable = \"attribute\" needs disable_attribute and disable_value (389-DS: nsAccountLock = \"true\"; \
                     OpenLDAP with ppolicy: pwdAccountLockedTime = \"000001010000Z\")",
                );
                Disable::Delete
            }
        },
        None => {
            if !t.has("disable") {
                t.problem(
                    errs,
                    "disable",
                    "is required: \"attribute\" (with disable_attribute and disable_value), \"move\" (with disabled_dn) or \"delete\"",
                );
            }
            Disable::Delete
        }
    };
    if !matches!(disable, Disable::Move { .. }) && t.has("disabled_dn") {
        t.problem(errs, "disabled_dn", "is only used with disable = \"move\"");
    }
    if !matches!(disable, Disable::Attribute { .. }) {
        for key in ["disable_attribute", "disable_value"] {
            if t.has(key) {
                t.problem(errs, key, "is only used with disable = \"attribute\"");
            }
        }
    }
    disable
}
