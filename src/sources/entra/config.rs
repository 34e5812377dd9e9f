//! `[source] kind = "entra"`: its keys, their defaults and their validation.

use crate::config::Secret;
use crate::config::reader::{Problems, Reader};
use crate::sources::SourceConfig;
use crate::sources::saas::{HttpSettings, config};
use std::time::Duration;

pub const AUTHORITY_HOST: &str = "https://login.microsoftonline.com";
pub const GRAPH_HOST: &str = "https://graph.microsoft.com";

/// `source.departments.from`: where departments come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DepartmentsFrom {
    /// Security groups, nested through group members.
    Groups,
    /// The distinct values of the users' `department` (flat).
    DepartmentAttribute,
    /// Administrative units (flat).
    AdministrativeUnits,
}

impl std::str::FromStr for DepartmentsFrom {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "groups" => Ok(DepartmentsFrom::Groups),
            "department_attribute" => Ok(DepartmentsFrom::DepartmentAttribute),
            "administrative_units" => Ok(DepartmentsFrom::AdministrativeUnits),
            _ => Err(()),
        }
    }
}

/// `kind = "entra"`.
#[derive(Clone, Debug)]
pub struct EntraConfig {
    /// `tenant`: a GUID or `<name>.onmicrosoft.com`.
    pub tenant: String,
    pub client_id: String,
    /// `client_secret` / `client_secret_file`.
    pub client_secret: Secret,
    /// `authority_host`: where tokens come from.
    pub authority_host: String,
    /// Graph's host (`graph_host`) is `http.base_url`.
    pub http: HttpSettings,
    pub departments_from: DepartmentsFrom,
    /// `departments.group_filter`: an OData `$filter` for which groups are departments.
    pub group_filter: Option<String>,
    /// `delta`: read changes since the last run (`/users/delta`, `/groups/delta`).
    pub delta: bool,
    /// `full_every`: a full fetch at least this often even with delta on.
    pub full_every: Duration,
    pub concurrency: usize,
    /// `user_properties`: more user properties to read (`$select`), for `[mapping]`.
    pub user_properties: Vec<String>,
}

/// A tenant: a GUID or a domain name (letters, digits, dots, hyphens).
fn tenant_ok(t: &str) -> bool {
    !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

pub fn parse(s: &mut Reader<'_>, errs: &mut Problems) -> Option<SourceConfig> {
    // Graph's limits are resource units per app and tenant per 10 s; a user
    // page costs 1-2 units: 20 requests a second stays far under.
    let mut http = config::http_settings(s, GRAPH_HOST, 20, 100, errs);
    let hosts = ["https", "http"];
    let host = |s: &mut Reader<'_>, k: &'static str, default: &str, errs: &mut Problems| {
        if s.has(k) {
            s.url(k, &hosts, "must be https://host", "the source's secret keys", errs).map(|u| u.as_str().trim_end_matches('/').to_owned())
        } else {
            Some(default.to_owned())
        }
    };
    let authority_host = host(s, "authority_host", AUTHORITY_HOST, errs).unwrap_or_default();
    if let Some(g) = host(s, "graph_host", GRAPH_HOST, errs) {
        http.base_url = g;
    }
    let concurrency = config::concurrency(s, errs);
    let tenant = s.required_string("tenant", errs);
    if let Some(t) = tenant.as_deref().filter(|t| !tenant_ok(t)) {
        s.problem(errs, "tenant", format!("{t:?} is neither a tenant GUID nor a domain like contoso.onmicrosoft.com"));
    }
    let client_id = s.required_string("client_id", errs);
    let client_secret = config::required_secret(s, "client_secret", "client_secret_file", errs);
    let delta = s.bool("delta", errs).unwrap_or(true);
    let user_properties = s.strings("user_properties", errs).unwrap_or_default();
    for (i, p) in user_properties.iter().enumerate() {
        if p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            errs.push(crate::config::Problem {
                key: format!("{}[{i}]", s.key("user_properties")),
                message: format!("{p:?} is not a Graph property name (letters, digits, _)"),
            });
        }
    }
    let full_every =
        s.duration("full_every", Duration::from_secs(60)..=Duration::from_secs(30 * 86_400), errs).unwrap_or(Duration::from_secs(86_400));
    let mut d = s.table("departments", errs);
    let departments_from = d
        .one_of::<DepartmentsFrom>("from", &["groups", "department_attribute", "administrative_units"], errs)
        .unwrap_or(DepartmentsFrom::Groups);
    let group_filter = d.string("group_filter", errs);
    if group_filter.is_some() && departments_from != DepartmentsFrom::Groups {
        d.problem(errs, "group_filter", "applies only with from = \"groups\"");
    }
    d.finish(errs);
    Some(SourceConfig::Entra(Box::new(EntraConfig {
        tenant: tenant?,
        client_id: client_id?,
        client_secret: client_secret?,
        authority_host,
        http,
        departments_from,
        group_filter,
        delta,
        full_every,
        concurrency,
        user_properties,
    })))
}
