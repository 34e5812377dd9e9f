//! `[target] kind = "scim"`: its keys, their defaults and their validation.

use crate::config::Secret;
use crate::config::reader::{Problems, Reader};
use crate::reconcile::DepartmentShape;
use crate::targets::TargetConfig;
use std::time::Duration;

/// How orgsync authenticates to a SCIM service.
#[derive(Clone, Debug)]
pub enum ScimAuth {
    /// `token` / `token_file`: `Authorization: Bearer ...`.
    Bearer(Secret),
    /// `username` + `password` / `password_file`: HTTP basic auth.
    Basic { username: String, password: Secret },
    /// Neither given (only for services that need no auth).
    None,
}

/// `kind = "scim"`.
#[derive(Clone, Debug)]
pub struct ScimConfig {
    /// `base_url`: the SCIM base, e.g. `https://idp.example.com/scim/v2` (required).
    pub base_url: url::Url,
    pub auth: ScimAuth,
    /// `timeout`: per request. Default `30s`.
    pub timeout: Duration,
    /// `concurrency`: requests in flight at once. Default 8.
    pub concurrency: usize,
    /// `max_retries`: retries of a transient failure (timeout, 429, 5xx). Default 5.
    pub max_retries: usize,
    /// `unreachable_after`: operations in a row that cannot reach the server (connection
    /// refused, timeouts, 502-504, after their retries) end the run `failed`. Default 5.
    pub unreachable_after: usize,
    /// `page_size`: `count` per list request, at most the server's
    /// `maxResults`. Unset: the server's `maxResults` (up to 1,000), else 100.
    pub page_size: Option<usize>,
    /// `departments`: how departments are kept. `nested_groups` (default):
    /// a group per department, a child group a member of its parent's;
    /// `groups`: a group per department, no group in a group (most servers
    /// cannot hold one); `none`: no groups, only the enterprise
    /// `department` attribute (the primary department's name).
    pub departments: DepartmentShape,
    /// `unique_name`: the displayName a department's group takes where the
    /// server keeps group names unique and its name is another's group.
    pub unique_name: crate::targets::unique::Template,
}

/// `target.departments`' values.
pub const DEPARTMENTS: &[&str] = &["nested_groups", "groups", "none"];

fn shape(s: &str) -> DepartmentShape {
    match s {
        "groups" => DepartmentShape::Flat,
        "none" => DepartmentShape::None,
        _ => DepartmentShape::Tree,
    }
}

pub fn parse(t: &mut Reader<'_>, errs: &mut Problems) -> Option<TargetConfig> {
    let base_url =
        t.url("base_url", &["http", "https"], "must be an http:// or https:// URL", "username + password_file, or token_file", errs);
    let token = t.secret("token", "token_file", errs);
    let username = t.string("username", errs);
    let password = t.secret("password", "password_file", errs);
    let auth = match (token, username, password) {
        (Some(tok), None, None) => ScimAuth::Bearer(tok),
        (None, Some(username), Some(password)) => ScimAuth::Basic { username, password },
        (None, None, None) => ScimAuth::None,
        (Some(_), _, _) => {
            t.problem(errs, "token", "use either token or username + password, not both");
            ScimAuth::None
        }
        (None, _, _) => {
            t.problem(errs, "password", "basic auth needs both username and password (or password_file)");
            ScimAuth::None
        }
    };
    let timeout = t.duration("timeout", crate::config::TIMEOUTS, errs).unwrap_or(Duration::from_secs(30));
    let concurrency = t.u64("concurrency", errs).unwrap_or(8);
    if !(1..=256).contains(&concurrency) {
        t.problem(errs, "concurrency", format!("{concurrency} is out of range 1..=256"));
    }
    let max_retries = t.u64_in("max_retries", crate::config::RETRIES, errs).unwrap_or(5);
    let unreachable_after = t.u64_in("unreachable_after", 1..=10_000, errs).unwrap_or(5) as usize;
    let page_size = t.u64("page_size", errs);
    if let Some(n) = page_size.filter(|n| !(1..=1000).contains(n)) {
        t.problem(errs, "page_size", format!("{n} is out of range 1..=1000"));
    }
    let departments = t.one_of::<String>("departments", DEPARTMENTS, errs).map_or(DepartmentShape::Tree, |d| shape(&d));
    let unique_name = t.string("unique_name", errs).map_or_else(Default::default, |s| {
        crate::targets::unique::Template::parse(&s).unwrap_or_else(|e| {
            t.problem(errs, "unique_name", e.to_string());
            Default::default()
        })
    });
    if departments == DepartmentShape::None && t.has("unique_name") {
        t.problem(errs, "unique_name", "is not used with departments = \"none\" (no groups are written)");
    }
    Some(TargetConfig::Scim(Box::new(ScimConfig {
        base_url: base_url?,
        auth,
        timeout,
        concurrency: concurrency as usize,
        max_retries: max_retries as usize,
        unreachable_after,
        page_size: page_size.map(|n| n as usize),
        departments,
        unique_name,
    })))
}
