//! `[target] kind = "rest"`: the keys, the preset, and every template and
//! JSONPath compiled while the config is read.

use super::template::{Builder, Path, Templates};
use crate::config::Secret;
use crate::config::reader::{Problems, Reader};
use crate::targets::TargetConfig;
use serde_json::{Map, Value};
use std::sync::LazyLock;
use std::time::Duration;

/// `[target.auth]`.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    /// `api_key`: `name` = `value` in a header or the query.
    ApiKey {
        name: String,
        value: Secret,
        in_query: bool,
    },
    Bearer(Secret),
    Basic {
        username: String,
        password: Secret,
    },
    /// `oauth2_client_credentials`; `token_url` is template `target.auth.token_url`.
    OAuth2 {
        client_id: String,
        client_secret: Secret,
        scope: Option<String>,
        audience: Option<String>,
        /// `auth_style = "basic"`: the client in an Authorization header, not the body.
        basic: bool,
        /// Lifetime when the answer has no `expires_in`.
        token_ttl: Duration,
    },
}

/// Where a created object's id is.
#[derive(Clone, Debug)]
pub enum IdFrom {
    /// The last path segment of the `Location` header.
    Location,
    Path(Path),
}

/// One HTTP request, its templates named `{name}.path`, `{name}.query.K`,
/// `{name}.headers.K` and `{name}.body`.
#[derive(Clone, Debug)]
pub struct Request {
    pub name: String,
    pub method: reqwest::Method,
    pub query: Vec<String>,
    pub headers: Vec<String>,
    pub body: bool,
    pub id: Option<IdFrom>,
    /// Statuses that mean done; default any 2xx.
    pub ok_status: Vec<u16>,
}

#[derive(Clone, Debug)]
pub enum Paging {
    None,
    /// `page`: `page_param` = 1, 2, … (from `first_page`) and `size_param`.
    Page {
        param: String,
        size_param: String,
        first: u64,
    },
    /// `offset`: `offset_param` = 0, size, 2·size, … and `size_param`.
    Offset {
        param: String,
        size_param: String,
    },
    /// `cursor`: `cursor_param` = the cursor `next` found in the last page.
    Cursor {
        param: String,
        next: Path,
    },
    /// `link`: the next page's URL at `next`, else in the `Link` header.
    Link {
        next: Option<Path>,
    },
}

/// A list request read page by page.
#[derive(Clone, Debug)]
pub struct Listing {
    pub request: Request,
    /// The page's objects.
    pub items: Path,
    /// Objects nested in each object (a tree in one answer), read too.
    pub children: Option<Path>,
    pub paging: Paging,
    pub page_size: u64,
    /// `stop = "empty"`: a page is the last only when it is empty (servers
    /// whose pages hold fewer items than asked before the end); default
    /// `short`: a page with fewer than `page_size` items is the last.
    pub stop_empty: bool,
}

/// `[target.users]` or `[target.departments]`.
#[derive(Clone, Debug)]
pub struct Resource {
    pub list: Listing,
    /// Model field -> JSONPath in a listed object.
    pub fields: Vec<(&'static str, Path)>,
    pub create: Request,
    pub update: Option<Request>,
    pub disable: Option<Request>,
    pub delete: Option<Request>,
    /// Users: `add_member` / `remove_member`; departments: `set_parent`.
    pub add_member: Option<Request>,
    pub remove_member: Option<Request>,
    pub set_parent: Option<Request>,
    /// Departments: each one's member user ids (`members`, `member_id`).
    pub members: Option<(Listing, Path)>,
    /// Departments: `unique_name`, the name a department takes where the
    /// API answers 409 because another department has its name.
    pub unique_name: crate::targets::unique::Template,
}

impl Resource {
    pub fn field(&self, name: &str) -> Option<&Path> {
        self.fields.iter().find(|(n, _)| *n == name).map(|(_, p)| p)
    }
}

/// `kind = "rest"`.
#[derive(Clone, Debug)]
pub struct RestConfig {
    pub base_url: url::Url,
    pub preset: Option<String>,
    pub timeout: Duration,
    pub concurrency: usize,
    pub max_retries: usize,
    /// `unreachable_after`: operations in a row that cannot reach the API end the run `failed`. Default 5.
    pub unreachable_after: usize,
    /// Requests per second.
    pub rate_limit: u32,
    pub auth: Auth,
    /// `[target.params]`, `params.*` in templates.
    pub params: Value,
    pub templates: Templates,
    pub users: Resource,
    pub departments: Option<Resource>,
}

pub const USER_FIELDS: &[&str] = &[
    "id",
    "external_id",
    "username",
    "name",
    "email",
    "mobile",
    "employee_no",
    "nickname",
    "title",
    "department",
    "manager",
    "attributes",
    "active",
    "departments",
];
pub const DEPARTMENT_FIELDS: &[&str] = &["id", "external_id", "name", "parent", "leaders"];

/// `preset = "keycloak"`: every operation of the Keycloak Admin REST API.
static KEYCLOAK: LazyLock<Map<String, Value>> = LazyLock::new(|| {
    let t: toml::Table = toml::from_str(include_str!("keycloak.toml")).unwrap_or_default();
    match serde_json::to_value(t) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
});

fn method(r: &mut Reader<'_>, default: &str, errs: &mut Problems) -> reqwest::Method {
    let m = r.one_of::<String>("method", &["GET", "POST", "PUT", "PATCH", "DELETE"], errs).unwrap_or_else(|| default.to_owned());
    reqwest::Method::from_bytes(m.as_bytes()).unwrap_or(reqwest::Method::GET)
}

fn template(r: &mut Reader<'_>, key: &'static str, b: &mut Builder, errs: &mut Problems) -> bool {
    match r.string(key, errs) {
        Some(src) => match b.add(&r.key(key), &src) {
            Ok(()) => true,
            Err(e) => {
                r.problem(errs, key, e.to_string());
                false
            }
        },
        None => false,
    }
}

fn path(r: &mut Reader<'_>, key: &'static str, errs: &mut Problems) -> Option<Path> {
    let text = r.string(key, errs)?;
    Path::parse(&text).map_err(|e| r.problem(errs, key, e.to_string())).ok()
}

/// The request keys of an operation's table `r` (named `name`).
fn request_in(r: &mut Reader<'_>, name: String, default_method: &str, b: &mut Builder, errs: &mut Problems) -> Request {
    let method = method(r, default_method, errs);
    if !template(r, "path", b, errs) && !errs.iter().any(|e| e.key == r.key("path")) {
        r.problem(errs, "path", "is required");
    }
    let mut named = |r: &mut Reader<'_>, table: &'static str, errs: &mut Problems| -> Vec<String> {
        let mut names = Vec::new();
        for (k, v) in r.entries(table, errs) {
            let key = format!("{}.{k}", r.key(table));
            let src = match v {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(v) => v.to_string(),
                _ => {
                    errs.push(crate::config::reader::Problem { key, message: "expected a string".into() });
                    continue;
                }
            };
            match b.add(&key, &src) {
                Ok(()) => names.push(k),
                Err(e) => errs.push(crate::config::reader::Problem { key, message: e.to_string() }),
            }
        }
        names
    };
    let query = named(r, "query", errs);
    let headers = named(r, "headers", errs);
    let body = template(r, "body", b, errs);
    let id = match r.string("id", errs).as_deref() {
        None => None,
        Some("location") => Some(IdFrom::Location),
        Some(p) => match Path::parse(p) {
            Ok(p) => Some(IdFrom::Path(p)),
            Err(e) => {
                r.problem(errs, "id", format!("\"location\" or a JSONPath: {e}"));
                None
            }
        },
    };
    let ok_status = r.integers("ok_status", errs).unwrap_or_default();
    if let Some(s) = ok_status.iter().find(|s| !(100..=599).contains(*s)) {
        r.problem(errs, "ok_status", format!("{s} is not an HTTP status"));
    }
    Request { name, method, query, headers, body, id, ok_status: ok_status.into_iter().map(|s| s as u16).collect() }
}

/// Request `op` of table `t`, if configured.
fn request(t: &mut Reader<'_>, op: &'static str, default_method: &str, b: &mut Builder, errs: &mut Problems) -> Option<Request> {
    if !t.has(op) {
        return None;
    }
    let mut r = t.table(op, errs);
    let q = request_in(&mut r, t.key(op), default_method, b, errs);
    r.finish(errs);
    Some(q)
}

/// Listing `op` of table `t`, if configured, and (for `members`) where a member's id is.
fn listing(t: &mut Reader<'_>, op: &'static str, b: &mut Builder, errs: &mut Problems) -> Option<(Listing, Option<Path>)> {
    if !t.has(op) {
        return None;
    }
    let mut r = t.table(op, errs);
    let request = request_in(&mut r, t.key(op), "GET", b, errs);
    let items = path(&mut r, "items", errs).or_else(|| Path::parse("$[*]").ok())?;
    let children = path(&mut r, "children", errs);
    let page_size = r.u64_in("page_size", 1..=10_000, errs).unwrap_or(100);
    let size_param = || "size".to_owned();
    let paging = match r.one_of::<String>("paging", &["none", "page", "offset", "cursor", "link"], errs).as_deref() {
        Some("page") => Paging::Page {
            param: r.string("page_param", errs).unwrap_or_else(|| "page".into()),
            size_param: r.string("size_param", errs).unwrap_or_else(size_param),
            first: r.u64("first_page", errs).unwrap_or(1),
        },
        Some("offset") => Paging::Offset {
            param: r.string("offset_param", errs).unwrap_or_else(|| "offset".into()),
            size_param: r.string("size_param", errs).unwrap_or_else(size_param),
        },
        Some("cursor") => match path(&mut r, "next", errs) {
            Some(next) => Paging::Cursor { param: r.string("cursor_param", errs).unwrap_or_else(|| "cursor".into()), next },
            None => {
                r.problem(errs, "next", "is required with paging = \"cursor\" (the JSONPath of the next cursor)");
                Paging::None
            }
        },
        Some("link") => Paging::Link { next: path(&mut r, "next", errs) },
        _ => Paging::None,
    };
    let stop_empty = r.one_of::<String>("stop", &["short", "empty"], errs).as_deref() == Some("empty");
    let member_id = if op == "members" { Some(path(&mut r, "member_id", errs).or_else(|| Path::parse("$.id").ok())?) } else { None };
    r.finish(errs);
    Some((Listing { request, items, children, paging, page_size, stop_empty }, member_id))
}

fn resource(t: &mut Reader<'_>, what: &'static str, fields: &[&'static str], b: &mut Builder, errs: &mut Problems) -> Option<Resource> {
    let mut r = t.table(what, errs);
    let list = listing(&mut r, "list", b, errs).map(|(l, _)| l);
    if list.is_none() && !errs.iter().any(|e| e.key.starts_with(&r.key("list"))) {
        r.problem(errs, "list", "is required (how orgsync reads what the target holds)");
    }
    let create = request(&mut r, "create", "POST", b, errs);
    if create.is_none() {
        r.problem(errs, "create", "is required");
    }
    let mut f = r.table("fields", errs);
    let mut mapped = Vec::new();
    for &name in fields {
        if let Some(p) = path(&mut f, name, errs) {
            mapped.push((name, p));
        }
    }
    if !mapped.iter().any(|(n, _)| *n == "id") {
        f.problem(errs, "id", "is required (the JSONPath of an object's id)");
    }
    f.finish(errs);
    let members = listing(&mut r, "members", b, errs).and_then(|(l, id)| Some((l, id?)));
    let unique_name = match what {
        "departments" => r.string("unique_name", errs).map_or_else(Default::default, |s| {
            crate::targets::unique::Template::parse(&s).unwrap_or_else(|e| {
                r.problem(errs, "unique_name", e.to_string());
                Default::default()
            })
        }),
        _ => Default::default(),
    };
    let res = Resource {
        unique_name,
        update: request(&mut r, "update", "PUT", b, errs),
        disable: request(&mut r, "disable", "PUT", b, errs),
        delete: request(&mut r, "delete", "DELETE", b, errs),
        add_member: request(&mut r, "add_member", "PUT", b, errs),
        remove_member: request(&mut r, "remove_member", "DELETE", b, errs),
        set_parent: request(&mut r, "set_parent", "PUT", b, errs),
        members,
        fields: mapped,
        list: list?,
        create: create?,
    };
    r.finish(errs);
    Some(res)
}

pub fn parse(t: &mut Reader<'_>, errs: &mut Problems) -> Option<TargetConfig> {
    let preset = t.one_of::<String>("preset", &["keycloak"], errs);
    if preset.is_some() {
        t.set_defaults(&KEYCLOAK);
    }
    let base_url = t.url("base_url", &["http", "https"], "must be an http:// or https:// URL", "the auth table", errs);
    let timeout = t.duration("timeout", crate::config::TIMEOUTS, errs).unwrap_or(Duration::from_secs(30));
    let concurrency = t.u64_in("concurrency", 1..=64, errs).unwrap_or(4) as usize;
    let max_retries = t.u64_in("max_retries", crate::config::RETRIES, errs).unwrap_or(5) as usize;
    let unreachable_after = t.u64_in("unreachable_after", 1..=10_000, errs).unwrap_or(5) as usize;
    let rate_limit = t.u64_in("rate_limit", 1..=1000, errs).unwrap_or(50) as u32;
    let params = Value::Object(t.entries("params", errs).into_iter().collect());
    if preset.as_deref() == Some("keycloak") && params.get("realm").and_then(Value::as_str).is_none_or(str::is_empty) {
        t.problem(errs, "params", "needs realm = \"…\" with preset = \"keycloak\" (the realm orgsync keeps in step)");
    }
    let mut b = Builder::default();
    let mut a = t.table("auth", errs);
    let auth = match a.one_of::<String>("kind", &["none", "api_key", "bearer", "basic", "oauth2_client_credentials"], errs).as_deref() {
        Some("api_key") => match (a.required_string("name", errs), a.secret("value", "value_file", errs)) {
            (Some(name), Some(value)) => {
                let in_query = a.one_of::<String>("in", &["header", "query"], errs).as_deref() == Some("query");
                Auth::ApiKey { name, value, in_query }
            }
            (_, None) => {
                a.problem(errs, "value", "is required (or value_file)");
                Auth::None
            }
            _ => Auth::None,
        },
        Some("bearer") => match a.secret("token", "token_file", errs) {
            Some(t) => Auth::Bearer(t),
            None => {
                a.problem(errs, "token", "is required (or token_file)");
                Auth::None
            }
        },
        Some("basic") => match (a.required_string("username", errs), a.secret("password", "password_file", errs)) {
            (Some(username), Some(password)) => Auth::Basic { username, password },
            (_, None) => {
                a.problem(errs, "password", "is required (or password_file)");
                Auth::None
            }
            _ => Auth::None,
        },
        Some("oauth2_client_credentials") => {
            if !template(&mut a, "token_url", &mut b, errs) && !errs.iter().any(|e| e.key == a.key("token_url")) {
                a.problem(errs, "token_url", "is required");
            }
            let client_id = a.required_string("client_id", errs);
            let secret = a.secret("client_secret", "client_secret_file", errs);
            if secret.is_none() && !errs.iter().any(|e| e.key.starts_with(&a.key("client_secret"))) {
                a.problem(errs, "client_secret", "is required (or client_secret_file)");
            }
            let basic = a.one_of::<String>("auth_style", &["body", "basic"], errs).as_deref() == Some("basic");
            let token_ttl =
                a.duration("token_ttl", Duration::from_secs(10)..=Duration::from_secs(86_400), errs).unwrap_or(Duration::from_secs(300));
            // Read whatever else is wrong, so that a missing secret hides nothing.
            let (scope, audience) = (a.string("scope", errs), a.string("audience", errs));
            match (client_id, secret) {
                (Some(client_id), Some(client_secret)) => Auth::OAuth2 { client_id, client_secret, scope, audience, basic, token_ttl },
                _ => Auth::None,
            }
        }
        _ => Auth::None,
    };
    a.finish(errs);
    let users = resource(t, "users", USER_FIELDS, &mut b, errs);
    let departments = if t.has("departments") { resource(t, "departments", DEPARTMENT_FIELDS, &mut b, errs) } else { None };
    Some(TargetConfig::Rest(Box::new(RestConfig {
        base_url: base_url?,
        preset,
        timeout,
        concurrency,
        unreachable_after,
        max_retries,
        rate_limit,
        auth,
        params,
        templates: b.build(),
        users: users?,
        departments,
    })))
}
