//! `[source] kind = "ldap"`: its keys, their defaults and their validation.

use super::{Attributes, Departments, Flavor};
use crate::config::Secret;
use crate::config::reader::{Problems, Reader};
use crate::sources::SourceConfig;
use std::path::PathBuf;
use std::time::Duration;

/// `kind = "ldap"`.
#[derive(Clone, Debug)]
pub struct LdapConfig {
    /// `url`: `ldap://host:389` or `ldaps://host:636` (required).
    pub url: url::Url,
    /// `starttls`: upgrade an `ldap://` connection with StartTLS. Default false.
    pub starttls: bool,
    /// `ca_file`: PEM CA certificates to trust; default the system's roots.
    pub ca_file: Option<PathBuf>,
    /// `tls_insecure`: skip certificate checks (logged as a warning every run). Default false.
    pub tls_insecure: bool,
    /// `bind_dn`; anonymous when absent.
    pub bind_dn: Option<String>,
    /// `bind_password` / `bind_password_file`.
    pub bind_password: Option<Secret>,
    /// `base_dn`: where users and OUs are searched (required).
    pub base_dn: String,
    /// `user_filter`: default per flavor.
    pub user_filter: String,
    /// `page_size`: paged-results page size. Default 500 (AD caps pages at 1000).
    pub page_size: u32,
    /// `timeout`: connect and per-operation. Default `30s`.
    pub timeout: Duration,
    /// `flavor`: `openldap` (default), `active_directory` or `389ds`.
    pub flavor: Flavor,
    /// `[source.attributes]`: user field -> LDAP attribute; defaults per flavor.
    pub attributes: Attributes,
    /// `departments.from`: `ou_tree` (default), `attribute` (with
    /// `departments.attribute`) or `groups` (with optional `departments.base_dn`
    /// and `departments.filter`).
    pub departments: Departments,
}

pub fn parse(s: &mut Reader<'_>, errs: &mut Problems) -> Option<SourceConfig> {
    let url = s.url("url", &["ldap", "ldaps"], "must be ldap://host[:port] or ldaps://host[:port]", "bind_dn + bind_password_file", errs);
    let starttls = s.bool("starttls", errs).unwrap_or(false);
    if starttls && url.as_ref().is_some_and(|u| u.scheme() == "ldaps") {
        s.problem(errs, "starttls", "is for ldap:// URLs; ldaps:// is TLS from the start");
    }
    let flavor = match s.one_of::<String>("flavor", &["openldap", "active_directory", "389ds"], errs).as_deref() {
        Some("active_directory") => Flavor::ActiveDirectory,
        Some("389ds") => Flavor::Ds389,
        _ => Flavor::OpenLdap,
    };
    let mut a = s.table("attributes", errs);
    let d = flavor.default_attributes();
    let attributes = Attributes {
        username: a.string("username", errs).unwrap_or(d.username),
        name: a.string("name", errs).unwrap_or(d.name),
        email: a.string("email", errs).unwrap_or(d.email),
        mobile: a.string("mobile", errs).unwrap_or(d.mobile),
        employee_no: a.string("employee_no", errs).unwrap_or(d.employee_no),
        nickname: a.string("nickname", errs).unwrap_or(d.nickname),
        title: a.string("title", errs).unwrap_or(d.title),
        manager: a.string("manager", errs).unwrap_or(d.manager),
    };
    a.finish(errs);
    let mut dp = s.table("departments", errs);
    let from = dp.one_of::<String>("from", &["ou_tree", "attribute", "groups"], errs);
    let attribute = dp.string("attribute", errs);
    let group_base = dp.string("base_dn", errs);
    let group_filter = dp.string("filter", errs);
    let from = from.as_deref().unwrap_or("ou_tree");
    if from != "attribute" && attribute.is_some() {
        dp.problem(errs, "attribute", "is only used with from = \"attribute\"");
    }
    for (key, set) in [("base_dn", group_base.is_some()), ("filter", group_filter.is_some())] {
        if from != "groups" && set {
            dp.problem(errs, key, "is only used with from = \"groups\"");
        }
    }
    let departments = match (from, attribute) {
        ("attribute", Some(a)) => Departments::Attribute(a),
        ("attribute", None) => {
            dp.problem(errs, "attribute", "is required with from = \"attribute\"");
            Departments::OuTree
        }
        ("groups", _) => {
            Departments::Groups { base_dn: group_base, filter: group_filter.unwrap_or_else(|| flavor.default_group_filter().to_owned()) }
        }
        _ => Departments::OuTree,
    };
    dp.finish(errs);
    let page_size = s.u64("page_size", errs).unwrap_or(500);
    if !(1..=1000).contains(&page_size) {
        s.problem(errs, "page_size", format!("{page_size} is out of range 1..=1000 (Active Directory caps pages at 1000)"));
    }
    let bind_dn = s.string("bind_dn", errs);
    let bind_password = s.secret("bind_password", "bind_password_file", errs);
    if bind_dn.is_some() != bind_password.is_some() && !errs.iter().any(|e| e.key.starts_with(&s.key("bind_password"))) {
        s.problem(
            errs,
            "bind_password",
            "bind_dn and bind_password (or bind_password_file) go together; leave both out for an anonymous bind",
        );
    }
    let config = LdapConfig {
        starttls,
        ca_file: s.path("ca_file", errs),
        tls_insecure: s.bool("tls_insecure", errs).unwrap_or(false),
        bind_dn,
        bind_password,
        base_dn: s.required_string("base_dn", errs).unwrap_or_default(),
        user_filter: s.string("user_filter", errs).unwrap_or_else(|| flavor.default_user_filter().to_owned()),
        page_size: page_size as u32,
        timeout: s.duration("timeout", crate::config::TIMEOUTS, errs).unwrap_or(Duration::from_secs(30)),
        flavor,
        attributes,
        departments,
        url: url?,
    };
    Some(SourceConfig::Ldap(Box::new(config)))
}
