//! The made-up "Acme HR" API of `config/rest-hr-platform.toml`, served for
//! the REST target's tests. It checks every request exactly: the auth of
//! the kind under test, the tenant query on lists and the `X-Tenant`
//! header on writes, the paging parameters of the style under test, and the
//! shape of every body; anything else is recorded as unexpected (and
//! refused), which fails the test.

use crate::fake::{Common, Fake, World};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

pub const CLIENT_SECRET: &str = "acme-client-secret";
pub const API_KEY: &str = "acme-api-key";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// OAuth2 client credentials, the client in a Basic header.
    OAuth2Basic,
    ApiKeyHeader,
    ApiKeyQuery,
    Bearer,
    Basic,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageMode {
    /// `cursor` / `$.meta.next_cursor`, pages of 4.
    Cursor,
    /// `page` (from 1) / `per_page`.
    Page,
    /// `$.links.next`, a full URL.
    Link,
    /// The next URL in a `Link: <…>; rel="next"` header.
    LinkHeader,
}

pub struct Hr {
    common: Common,
    pub auth: AuthMode,
    pub paging: PageMode,
    pub employees: BTreeMap<String, Value>,
    pub units: BTreeMap<String, Value>,
    next: usize,
    pub tokens: usize,
    /// Revoke the current token after this many API requests (once): a
    /// token that expires in the middle of a run.
    pub revoke_after: Option<usize>,
    revoked: bool,
    api_requests: usize,
    /// Every next cursor is the first page's (a server that does not advance).
    pub repeat_cursor: bool,
    /// Unit names are unique: 409 for a name another unit has.
    pub unique_names: bool,
}

impl Hr {
    /// A 409 when names are unique and another unit than `own` has `name`.
    fn name_taken(&self, body: &Value, own: Option<&str>) -> Option<Response> {
        let name = body["name"].as_str()?;
        let taken = self.units.iter().any(|(id, u)| u["name"] == name && Some(id.as_str()) != own);
        (self.unique_names && taken)
            .then(|| (StatusCode::CONFLICT, axum::Json(json!({"message": format!("a unit named {name} exists")}))).into_response())
    }
}

impl World for Hr {
    fn common(&self) -> &Common {
        &self.common
    }

    fn common_mut(&mut self) -> &mut Common {
        &mut self.common
    }
}

type S = Arc<Mutex<Hr>>;

fn unexpected(w: &mut Hr, what: String) -> Response {
    w.common.unexpected.push(what.clone());
    (StatusCode::BAD_REQUEST, axum::Json(json!({"message": what}))).into_response()
}

impl Hr {
    /// The request's credentials, as the mode wants them.
    fn authorized(&self, h: &HeaderMap, q: &HashMap<String, String>) -> bool {
        let header = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
        match self.auth {
            AuthMode::OAuth2Basic => header("authorization") == format!("Bearer hr-token-{}", self.tokens),
            AuthMode::ApiKeyHeader => header("x-api-key") == API_KEY,
            AuthMode::ApiKeyQuery => q.get("api_key").map(String::as_str) == Some(API_KEY),
            AuthMode::Bearer => header("authorization") == format!("Bearer {API_KEY}"),
            AuthMode::Basic => {
                use base64::Engine;
                header("authorization")
                    == format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("orgsync:{API_KEY}")))
            }
        }
    }

    /// Auth, tenant (query on reads, header on writes): a refusal when wrong.
    fn gate(&mut self, what: &str, h: &HeaderMap, q: &HashMap<String, String>, write: bool) -> Option<Response> {
        self.common.log.push((std::time::Instant::now(), what.to_owned()));
        self.api_requests += 1;
        if self.revoke_after.is_some_and(|n| self.api_requests > n) && !self.revoked {
            self.revoked = true;
            self.tokens += 1; // the one in use is no longer valid
        }
        let stale = self.auth == AuthMode::OAuth2Basic
            && h.get("authorization").and_then(|v| v.to_str().ok()).is_some_and(|a| a.starts_with("Bearer hr-token-"));
        if stale && !self.authorized(h, q) {
            return Some((StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_token"}))).into_response());
        }
        if !self.authorized(h, q) {
            return Some(unexpected(self, format!("{what}: not authorized as {:?}", self.auth)));
        }
        let tenant = if write { h.get("x-tenant").and_then(|v| v.to_str().ok()).map(str::to_owned) } else { q.get("tenant").cloned() };
        if tenant.as_deref() != Some("acme") {
            return Some(unexpected(self, format!("{what}: tenant {tenant:?}")));
        }
        None
    }

    fn id(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}-{}", self.next)
    }
}

/// Exactly these keys, each of the given JSON kind.
fn shaped(body: &Value, keys: &[(&str, &str)]) -> Result<(), String> {
    let Some(m) = body.as_object() else { return Err(format!("not an object: {body}")) };
    for k in m.keys() {
        if !keys.iter().any(|(n, _)| n == k) {
            return Err(format!("unknown key {k} in {body}"));
        }
    }
    for (k, kind) in keys {
        let v = m.get(*k).ok_or_else(|| format!("no {k} in {body}"))?;
        let ok = match *kind {
            "string" => v.is_string(),
            "string?" => v.is_string() || v.is_null(),
            "bool" => v.is_boolean(),
            "array" => v.is_array(),
            _ => true,
        };
        if !ok {
            return Err(format!("{k} is not {kind} in {body}"));
        }
    }
    Ok(())
}

const EMPLOYEE: &[(&str, &str)] = &[
    ("external_ref", "string"),
    ("login", "string"),
    ("display_name", "string?"),
    ("work_email", "string?"),
    ("phone", "string?"),
    ("employee_number", "string?"),
    ("active", "bool"),
    ("org_unit_ids", "array"),
    ("manager_id", "string?"),
];

async fn token(State(s): State<S>, h: HeaderMap, body: String) -> Response {
    use base64::Engine;
    let mut w = s.lock().unwrap();
    w.common.log.push((std::time::Instant::now(), "token".into()));
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("orgsync:{CLIENT_SECRET}")));
    let auth = h.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    if w.auth != AuthMode::OAuth2Basic || form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return unexpected(&mut w, format!("token request {form:?}"));
    }
    if auth != basic {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_client", "error_description": "bad client credentials"})))
            .into_response();
    }
    if form.get("scope").map(String::as_str) != Some("employees:write org:write") || form.contains_key("client_secret") {
        return unexpected(&mut w, format!("token request {form:?}"));
    }
    w.tokens += 1;
    axum::Json(json!({"access_token": format!("hr-token-{}", w.tokens), "token_type": "Bearer", "expires_in": 3600})).into_response()
}

async fn list_employees(State(s): State<S>, h: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut w = s.lock().unwrap();
    if let Some(r) = w.gate("GET employees", &h, &q, false) {
        return r;
    }
    let all: Vec<Value> = w.employees.values().cloned().collect();
    let (from, size) = match w.paging {
        PageMode::Cursor => {
            if q.get("limit").map(String::as_str) != Some("100") {
                return unexpected(&mut w, format!("GET employees without limit=100: {q:?}"));
            }
            let from = match q.get("cursor") {
                None => 0,
                Some(c) => match c.strip_prefix('c').and_then(|n| n.parse().ok()) {
                    Some(n) => n,
                    None => return unexpected(&mut w, format!("cursor {c}")),
                },
            };
            (from, 4)
        }
        PageMode::Page => match (q.get("page").and_then(|p| p.parse::<usize>().ok()), q.get("per_page").and_then(|p| p.parse().ok())) {
            (Some(p), Some(n)) if p >= 1 => ((p - 1) * n, n),
            _ => return unexpected(&mut w, format!("GET employees page params {q:?}")),
        },
        PageMode::Link | PageMode::LinkHeader => (q.get("after").and_then(|a| a.parse().ok()).unwrap_or(0), 4),
    };
    let page: Vec<Value> = all.iter().skip(from).take(size).cloned().collect();
    let more = from + size < all.len();
    let next_from = if w.repeat_cursor { size } else { from + size };
    let host = h.get("host").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    if w.paging == PageMode::LinkHeader {
        let mut resp = axum::Json(json!({"data": page})).into_response();
        if more {
            let link = format!("<http://{host}/api/v2/employees?tenant=acme&after={next_from}>; rel=\"next\"");
            resp.headers_mut().insert("link", link.parse().unwrap());
        }
        return resp;
    }
    let body = match w.paging {
        PageMode::Cursor => json!({"data": page, "meta": {"next_cursor": if more { json!(format!("c{next_from}")) } else { Value::Null }}}),
        PageMode::Page | PageMode::LinkHeader => json!({"data": page}),
        PageMode::Link => {
            let next = more.then(|| format!("http://{host}/api/v2/employees?tenant=acme&after={next_from}"));
            json!({"data": page, "links": {"next": next}})
        }
    };
    axum::Json(body).into_response()
}

async fn create_employee(
    State(s): State<S>,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut w = s.lock().unwrap();
    if let Some(r) = w.gate("POST employees", &h, &q, true) {
        return r;
    }
    if let Err(e) = shaped(&body, EMPLOYEE) {
        return unexpected(&mut w, format!("POST employees: {e}"));
    }
    if body["phone"].as_str().is_some_and(|p| p.starts_with("+86")) {
        return unexpected(&mut w, format!("POST employees: the phone kept its +86: {body}"));
    }
    let id = w.id("e");
    let mut e = body;
    e["id"] = json!(id);
    w.employees.insert(id.clone(), e.clone());
    (StatusCode::CREATED, axum::Json(json!({"data": e}))).into_response()
}

async fn patch_employee(
    State(s): State<S>,
    h: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut w = s.lock().unwrap();
    if let Some(r) = w.gate(&format!("PATCH employees/{id}"), &h, &q, true) {
        return r;
    }
    if let Err(e) = shaped(&body, EMPLOYEE) {
        return unexpected(&mut w, format!("PATCH employees/{id}: {e}"));
    }
    let Some(e) = w.employees.get_mut(&id) else { return StatusCode::NOT_FOUND.into_response() };
    for (k, v) in body.as_object().unwrap() {
        e[k] = v.clone();
    }
    axum::Json(json!({"data": e.clone()})).into_response()
}

async fn deactivate(
    State(s): State<S>,
    h: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: String,
) -> Response {
    let mut w = s.lock().unwrap();
    if let Some(r) = w.gate(&format!("POST employees/{id}/deactivate"), &h, &q, true) {
        return r;
    }
    if !body.is_empty() {
        return unexpected(&mut w, format!("deactivate with a body: {body}"));
    }
    match w.employees.get_mut(&id) {
        Some(e) => {
            e["active"] = json!(false);
            StatusCode::NO_CONTENT.into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn delete_employee(State(s): State<S>, h: HeaderMap, Path(id): Path<String>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut w = s.lock().unwrap();
    if let Some(r) = w.gate(&format!("DELETE employees/{id}"), &h, &q, true) {
        return r;
    }
    match w.employees.remove(&id) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn list_units(State(s): State<S>, h: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut w = s.lock().unwrap();
    if let Some(r) = w.gate("GET org-units", &h, &q, false) {
        return r;
    }
    let (Some(offset), Some(limit)) =
        (q.get("offset").and_then(|o| o.parse::<usize>().ok()), q.get("limit").and_then(|o| o.parse::<usize>().ok()))
    else {
        return unexpected(&mut w, format!("GET org-units without offset/limit: {q:?}"));
    };
    let page: Vec<Value> = w.units.values().skip(offset).take(limit).cloned().collect();
    axum::Json(json!({"items": page})).into_response()
}

async fn create_unit(
    State(s): State<S>,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut w = s.lock().unwrap();
    if let Some(r) = w.gate("POST org-units", &h, &q, true) {
        return r;
    }
    if let Err(e) = shaped(&body, &[("external_ref", "string"), ("name", "string"), ("parent_id", "string?")]) {
        return unexpected(&mut w, format!("POST org-units: {e}"));
    }
    if let Some(p) = body["parent_id"].as_str().filter(|p| !w.units.contains_key(*p)) {
        return unexpected(&mut w, format!("POST org-units under a parent that does not exist: {p}"));
    }
    if let Some(r) = w.name_taken(&body, None) {
        return r;
    }
    let id = w.id("ou");
    let mut u = body;
    u["id"] = json!(id);
    w.units.insert(id, u.clone());
    (StatusCode::CREATED, axum::Json(u)).into_response()
}

async fn patch_unit(
    State(s): State<S>,
    h: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut w = s.lock().unwrap();
    if let Some(r) = w.gate(&format!("PATCH org-units/{id}"), &h, &q, true) {
        return r;
    }
    let rename = shaped(&body, &[("external_ref", "string"), ("name", "string")]);
    let moved = shaped(&body, &[("parent_id", "string?")]);
    let leaders = shaped(&body, &[("leader_ids", "array")]);
    if rename.is_err() && moved.is_err() && leaders.is_err() {
        return unexpected(&mut w, format!("PATCH org-units/{id}: {body}"));
    }
    if let Some(r) = w.name_taken(&body, Some(&id)) {
        return r;
    }
    let Some(u) = w.units.get_mut(&id) else { return StatusCode::NOT_FOUND.into_response() };
    for (k, v) in body.as_object().unwrap() {
        u[k] = v.clone();
    }
    axum::Json(u.clone()).into_response()
}

async fn delete_unit(State(s): State<S>, h: HeaderMap, Path(id): Path<String>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut w = s.lock().unwrap();
    if let Some(r) = w.gate(&format!("DELETE org-units/{id}"), &h, &q, true) {
        return r;
    }
    match w.units.remove(&id) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn other(State(s): State<S>, uri: axum::http::Uri, method: axum::http::Method) -> Response {
    let mut w = s.lock().unwrap();
    unexpected(&mut w, format!("{method} {uri}"))
}

pub type FakeHr = Fake<Hr>;

pub fn start(auth: AuthMode, paging: PageMode) -> FakeHr {
    let hr = Hr {
        common: Common::default(),
        auth,
        paging,
        employees: BTreeMap::new(),
        units: BTreeMap::new(),
        next: 0,
        tokens: 0,
        revoke_after: None,
        revoked: false,
        api_requests: 0,
        repeat_cursor: false,
        unique_names: false,
    };
    Fake::serve(hr, |s| {
        Router::new()
            .route("/oauth/token", post(token))
            .route("/api/v2/employees", get(list_employees).post(create_employee))
            .route("/api/v2/employees/{id}", patch(patch_employee).delete(delete_employee))
            .route("/api/v2/employees/{id}/deactivate", post(deactivate))
            .route("/api/v2/org-units", get(list_units).post(create_unit))
            .route("/api/v2/org-units/{id}", patch(patch_unit).delete(delete_unit))
            .fallback(other)
            .with_state(s)
    })
}
