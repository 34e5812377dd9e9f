//! A fake Microsoft identity platform + Microsoft Graph v1.0 following
//! docs/vendor-apis.md sections 5 and 8: the form-encoded token endpoint
//! (`/{tenant}/oauth2/v2.0/token`) with OAuth errors naming AADSTS codes;
//! `/v1.0/users` with `$select` (the properties outside Graph's default
//! set must be asked for), `$top` 1..999 (else 400) and no `$skip` (400),
//! absolute `@odata.nextLink`s with opaque skiptokens; security groups and
//! their members (users and nested groups by `@odata.type`);
//! `/users/delta` and `/groups/delta` with `$deltatoken=latest`, rounds of
//! partial records and both `@removed` reasons, `syncStateNotFound` for
//! expired tokens; 401 `InvalidAuthenticationToken`; 429 with and without
//! `Retry-After`. Every request is logged; unexpected ones are kept.

use crate::fake::{Common, Fake, Gate};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const TENANT: &str = "contoso.onmicrosoft.com";
pub const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
pub const CLIENT_SECRET: &str = "fake-entra-secret-never-logged";
/// Properties outside Graph's default set: a request that does not select them gets none.
pub const MUST_SELECT: [&str; 3] = ["accountEnabled", "employeeId", "department"];

/// A group: id, displayName, securityEnabled, members (id, is a group).
pub type GroupRow = (String, String, bool, Vec<(String, bool)>);

/// Graph's documented answers that tell a delta client to start again.
#[derive(Clone, Copy, Debug, Default)]
pub enum Restart {
    /// 400 `syncStateNotFound` (the token is older than 7 days).
    #[default]
    NotFound,
    /// 400 `syncStateInvalid`.
    Invalid,
    /// 410 Gone with `resyncRequired`.
    Required,
    /// 410 Gone with no body.
    Gone,
}

#[derive(Default)]
pub struct World {
    pub base: String,
    /// Users as Graph holds them (full records).
    pub users: Vec<Value>,
    /// id, displayName, securityEnabled, members (id, is a group).
    pub groups: Vec<GroupRow>,
    /// Delta records, in order: what each change looks like in a round.
    users_log: Vec<Value>,
    groups_log: Vec<Value>,
    /// Bumped to expire every delta token.
    generation: u32,
    /// How a token of an older generation is answered.
    restart: Restart,
    /// Every `$select` asked for users.
    pub selects: Vec<String>,
    /// The `$expand` of the listing under way (its next links keep it).
    expand: Option<String>,
    throttled: usize,
    pub common: Common,
}

pub type FakeGraph = Fake<World>;

impl crate::fake::World for World {
    fn common(&self) -> &Common {
        &self.common
    }

    fn common_mut(&mut self) -> &mut Common {
        &mut self.common
    }
}

type Shared = Arc<Mutex<World>>;
type Q = Query<HashMap<String, String>>;

fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message, "innerError": {"date": "2026-11-30T00:00:00", "request-id": "fake"}}})),
    )
        .into_response()
}

async fn token(State(w): State<Shared>, Path(tenant): Path<String>, headers: HeaderMap, body: String) -> Response {
    let mut w = w.lock().unwrap();
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/x-www-form-urlencoded") {
        w.common.unexpected.push("a token request that is not form-encoded".into());
    }
    let f: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let oauth = |w: &mut World, status: StatusCode, error: &str, code: u64, text: &str| {
        w.common.log.push((std::time::Instant::now(), "token refused".into()));
        let d = format!("AADSTS{code}: {text}\r\nTrace ID: fake\r\nCorrelation ID: fake\r\nTimestamp: 2026-11-30 00:00:00Z");
        (status, Json(json!({"error": error, "error_description": d, "error_codes": [code], "timestamp": "t", "trace_id": "x", "correlation_id": "y"})))
            .into_response()
    };
    if tenant != TENANT {
        return oauth(&mut w, StatusCode::BAD_REQUEST, "invalid_request", 90002, &format!("Tenant '{tenant}' not found."));
    }
    if f.get("grant_type").map(String::as_str) != Some("client_credentials") || f.get("scope") != Some(&format!("{}/.default", w.base)) {
        w.common.unexpected.push(format!("token request with {:?}", f.keys().collect::<Vec<_>>()));
        return oauth(&mut w, StatusCode::BAD_REQUEST, "invalid_scope", 1002012, "The provided value for scope is not valid.");
    }
    if f.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return oauth(&mut w, StatusCode::BAD_REQUEST, "unauthorized_client", 700016, "Application not found in the directory.");
    }
    if f.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET) {
        return oauth(&mut w, StatusCode::UNAUTHORIZED, "invalid_client", 7000215, "Invalid client secret provided.");
    }
    let t = w.common.issue_token("eyJfake");
    Json(json!({"token_type": "Bearer", "expires_in": w.common.ttl(), "ext_expires_in": w.common.ttl(), "access_token": t})).into_response()
}

/// Token, throttling and failure checks of every Graph call.
fn gate(w: &mut World, headers: &HeaderMap, what: &str, page: usize) -> Option<Response> {
    let token = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    Some(match w.common.gate(token, what, "", page)? {
        Gate::Missing | Gate::Invalid | Gate::Expired => {
            graph_error(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")
        }
        Gate::Throttled => {
            w.throttled += 1;
            let mut r = graph_error(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", "Too many requests.");
            // Every other one says how long to wait; the rest do not (as some identity endpoints).
            if w.throttled % 2 == 1 {
                r.headers_mut().insert("retry-after", "1".parse().unwrap());
            }
            r
        }
        Gate::Fail => graph_error(StatusCode::SERVICE_UNAVAILABLE, "serviceNotAvailable", "The service is temporarily unavailable."),
    })
}

/// `$top` 1..999 (else 400), no `$skip`; the page size.
fn top(w: &mut World, q: &HashMap<String, String>, default: usize) -> Result<usize, Box<Response>> {
    if q.contains_key("$skip") {
        w.common.unexpected.push("$skip".into());
        return Err(Box::new(graph_error(
            StatusCode::BAD_REQUEST,
            "Request_UnsupportedQuery",
            "The query parameter '$skip' is not supported.",
        )));
    }
    match q.get("$top").map(|t| t.parse::<usize>()) {
        None => Ok(default),
        Some(Ok(n)) if (1..=999).contains(&n) => Ok(n),
        _ => {
            w.common.unexpected.push(format!("$top {:?}", q.get("$top")));
            Err(Box::new(graph_error(
                StatusCode::BAD_REQUEST,
                "Request_UnsupportedQuery",
                "Invalid page size specified: must be between 1 and 999.",
            )))
        }
    }
}

/// An opaque skiptoken for an offset (and the page size it continues).
fn skiptoken(offset: usize, size: usize) -> String {
    format!("X'4453707{offset:08x}{size:04x}'")
}

fn from_skiptoken(t: &str) -> Option<(usize, usize)> {
    let hex = t.strip_prefix("X'4453707")?.strip_suffix('\'')?;
    Some((usize::from_str_radix(&hex[..8], 16).ok()?, usize::from_str_radix(&hex[8..], 16).ok()?))
}

/// One page of `all` at the request's position, with a nextLink to `path` when more follow.
fn page(w: &World, all: &[Value], q: &HashMap<String, String>, size: usize, path: &str) -> Value {
    let (offset, size) = q.get("$skiptoken").and_then(|t| from_skiptoken(t)).unwrap_or((0, size));
    let end = (offset + size).min(all.len());
    let mut v = json!({"@odata.context": format!("{}/v1.0/$metadata#{}", w.base, path.trim_start_matches("/v1.0/")), "value": all[offset.min(end)..end]});
    if end < all.len() {
        v["@odata.nextLink"] = json!(format!("{}{path}?$skiptoken={}", w.base, skiptoken(end, size)));
    }
    v
}

/// Only the selected properties of a record (and `id`).
fn selected(v: &Value, select: &str) -> Value {
    let keep: Vec<&str> = select.split(',').collect();
    let obj = v.as_object().unwrap();
    Value::Object(obj.iter().filter(|(k, _)| *k == "id" || keep.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect())
}

async fn users(State(w): State<Shared>, headers: HeaderMap, Query(q): Q) -> Response {
    let mut w = w.lock().unwrap();
    let first = !q.contains_key("$skiptoken");
    let page_no = q.get("$skiptoken").and_then(|t| from_skiptoken(t)).map_or(1, |(o, s)| o / s + 1);
    if let Some(r) = gate(&mut w, &headers, "users", page_no) {
        return r;
    }
    let size = match top(&mut w, &q, 100) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    let select = if first {
        let s = q.get("$select").cloned().unwrap_or_default();
        w.selects.push(s.clone());
        s
    } else {
        w.selects.last().cloned().unwrap_or_default()
    };
    if MUST_SELECT.iter().any(|p| !select.split(',').any(|s| s == *p)) {
        w.common.unexpected.push(format!("users without $select of {MUST_SELECT:?}: {select:?}"));
    }
    // `$expand=manager($select=id)`: the manager's id (kept as `_manager`);
    // with `$expand` a page holds at most 100 users, whatever `$top` says.
    if first {
        w.expand = q.get("$expand").cloned();
    }
    let expand = w.expand.clone();
    let size = match expand.as_deref() {
        None => size,
        Some("manager($select=id)") => size.min(100),
        Some(other) => {
            w.common.unexpected.push(format!("$expand {other}"));
            return graph_error(StatusCode::BAD_REQUEST, "Request_UnsupportedQuery", "Unsupported $expand.");
        }
    };
    let all: Vec<Value> = w
        .users
        .iter()
        .map(|u| {
            let mut v = selected(u, &select);
            if let (Some(_), Some(m)) = (&expand, u["_manager"].as_str()) {
                v["manager"] = json!({"@odata.type": "#microsoft.graph.user", "id": m});
            }
            v
        })
        .collect();
    Json(page(&w, &all, &q, size, "/v1.0/users")).into_response()
}

/// A delta round of `log` (users or groups) from the token in the query.
fn delta(w: &mut World, q: &HashMap<String, String>, users: bool, path: &str) -> Response {
    let log_len = if users { w.users_log.len() } else { w.groups_log.len() };
    let link = |w: &World| format!("{}{path}?$deltatoken=g{}s{log_len}", w.base, w.generation);
    if q.get("$deltatoken").map(String::as_str) == Some("latest") {
        if !q.contains_key("$select") {
            w.common.unexpected.push(format!("{path} latest without $select"));
        }
        return Json(json!({"@odata.context": "x", "value": [], "@odata.deltaLink": link(w)})).into_response();
    }
    let (from, offset) = match (q.get("$deltatoken"), q.get("$skiptoken")) {
        (Some(t), None) => match t.strip_prefix('g').and_then(|t| t.split_once('s')) {
            Some((g, s)) if g.parse::<u32>().ok() == Some(w.generation) => (s.parse::<usize>().unwrap_or(0), 0),
            Some(_) => {
                return match w.restart {
                    Restart::NotFound => {
                        graph_error(StatusCode::BAD_REQUEST, "syncStateNotFound", "The sync state generation is not found. Please resync.")
                    }
                    Restart::Invalid => graph_error(StatusCode::BAD_REQUEST, "syncStateInvalid", "Invalid sync state. Please resync."),
                    Restart::Required => {
                        graph_error(StatusCode::GONE, "resyncRequired", "Resync required. Replace any local items with the server's.")
                    }
                    Restart::Gone => StatusCode::GONE.into_response(),
                };
            }
            None => {
                w.common.unexpected.push(format!("{path} with a token it never gave: {t}"));
                return graph_error(StatusCode::BAD_REQUEST, "badRequest", "Invalid delta token.");
            }
        },
        // A nextLink of a round: "from.offset".
        (None, Some(s)) => match s.split_once('.').and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?))) {
            Some(p) => p,
            None => return graph_error(StatusCode::BAD_REQUEST, "badRequest", "Invalid skip token."),
        },
        _ => {
            w.common.unexpected.push(format!("{path} without a token"));
            return graph_error(StatusCode::BAD_REQUEST, "badRequest", "Start a round with $deltatoken=latest or a deltaLink.");
        }
    };
    let log = if users { &w.users_log } else { &w.groups_log };
    let changes: Vec<Value> = log[from.min(log.len())..].to_vec();
    const ROUND_PAGE: usize = 100;
    let end = (offset + ROUND_PAGE).min(changes.len());
    let mut v = json!({"@odata.context": "x", "value": changes[offset.min(end)..end]});
    if end < changes.len() {
        v["@odata.nextLink"] = json!(format!("{}{path}?$skiptoken={from}.{end}", w.base));
    } else {
        v["@odata.deltaLink"] = json!(link(w));
    }
    Json(v).into_response()
}

async fn users_delta(State(w): State<Shared>, headers: HeaderMap, Query(q): Q) -> Response {
    let mut w = w.lock().unwrap();
    if let Some(r) = gate(&mut w, &headers, "users_delta", 1) {
        return r;
    }
    delta(&mut w, &q, true, "/v1.0/users/delta")
}

async fn groups_delta(State(w): State<Shared>, headers: HeaderMap, Query(q): Q) -> Response {
    let mut w = w.lock().unwrap();
    if let Some(r) = gate(&mut w, &headers, "groups_delta", 1) {
        return r;
    }
    delta(&mut w, &q, false, "/v1.0/groups/delta")
}

async fn groups(State(w): State<Shared>, headers: HeaderMap, Query(q): Q) -> Response {
    let mut w = w.lock().unwrap();
    if let Some(r) = gate(&mut w, &headers, "groups", 1) {
        return r;
    }
    let size = match top(&mut w, &q, 100) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    if !q.contains_key("$skiptoken") && q.get("$filter").map(String::as_str) != Some("securityEnabled eq true") {
        w.common.unexpected.push(format!("groups with $filter {:?}", q.get("$filter")));
    }
    let all: Vec<Value> =
        w.groups.iter().filter(|g| g.2).map(|(id, name, sec, _)| json!({"id": id, "displayName": name, "securityEnabled": sec})).collect();
    Json(page(&w, &all, &q, size, "/v1.0/groups")).into_response()
}

async fn members(State(w): State<Shared>, headers: HeaderMap, Path(id): Path<String>, Query(q): Q) -> Response {
    let mut w = w.lock().unwrap();
    if let Some(r) = gate(&mut w, &headers, &format!("members {id}"), 1) {
        return r;
    }
    let size = match top(&mut w, &q, 100) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    let Some(g) = w.groups.iter().find(|g| g.0 == id) else {
        return graph_error(StatusCode::NOT_FOUND, "Request_ResourceNotFound", &format!("Resource '{id}' does not exist."));
    };
    let all: Vec<Value> = g
        .3
        .iter()
        .map(|(m, is_group)| json!({"@odata.type": if *is_group { "#microsoft.graph.group" } else { "#microsoft.graph.user" }, "id": m}))
        .collect();
    Json(page(&w, &all, &q, size, &format!("/v1.0/groups/{id}/members"))).into_response()
}

/// `GET /users/{id}` (by id or userPrincipalName), with `$select`.
async fn one_user(State(w): State<Shared>, headers: HeaderMap, Path(id): Path<String>, Query(q): Q) -> Response {
    let mut w = w.lock().unwrap();
    if let Some(r) = gate(&mut w, &headers, &format!("user {id}"), 1) {
        return r;
    }
    let select = q.get("$select").cloned().unwrap_or_default();
    if MUST_SELECT.iter().any(|p| !select.split(',').any(|s| s == *p)) {
        w.common.unexpected.push(format!("user {id} without $select of {MUST_SELECT:?}: {select:?}"));
    }
    match w.users.iter().find(|u| u["id"] == id.as_str() || u["userPrincipalName"] == id.as_str()) {
        Some(u) => Json(selected(u, &select)).into_response(),
        None => graph_error(StatusCode::NOT_FOUND, "Request_ResourceNotFound", &format!("Resource '{id}' does not exist.")),
    }
}

/// `GET /groups/{id}`, with `$select`.
async fn one_group(State(w): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let mut w = w.lock().unwrap();
    if let Some(r) = gate(&mut w, &headers, &format!("group {id}"), 1) {
        return r;
    }
    match w.groups.iter().find(|g| g.0 == id) {
        Some((id, name, sec, _)) => Json(json!({"id": id, "displayName": name, "securityEnabled": sec})).into_response(),
        None => graph_error(StatusCode::NOT_FOUND, "Request_ResourceNotFound", &format!("Resource '{id}' does not exist.")),
    }
}

/// `GET /{users|groups}/{id}/memberOf/microsoft.graph.group`: the groups
/// it is a direct member of (every kind: the caller keeps the security ones).
fn member_of(w: &mut World, headers: &HeaderMap, id: &str, is_group: bool, q: &HashMap<String, String>) -> Response {
    if let Some(r) = gate(w, headers, &format!("memberOf {id}"), 1) {
        return r;
    }
    let size = match top(w, q, 100) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    let all: Vec<Value> = w
        .groups
        .iter()
        .filter(|g| g.3.iter().any(|(m, g)| m == id && *g == is_group))
        .map(|(gid, name, sec, _)| json!({"@odata.type": "#microsoft.graph.group", "id": gid, "displayName": name, "securityEnabled": sec}))
        .collect();
    let kind = if is_group { "groups" } else { "users" };
    Json(page(w, &all, q, size, &format!("/v1.0/{kind}/{id}/memberOf/microsoft.graph.group"))).into_response()
}

async fn user_member_of(State(w): State<Shared>, headers: HeaderMap, Path(id): Path<String>, Query(q): Q) -> Response {
    member_of(&mut w.lock().unwrap(), &headers, &id, false, &q)
}

async fn group_member_of(State(w): State<Shared>, headers: HeaderMap, Path(id): Path<String>, Query(q): Q) -> Response {
    member_of(&mut w.lock().unwrap(), &headers, &id, true, &q)
}

async fn fallback(State(w): State<Shared>, method: Method, uri: Uri) -> Response {
    w.lock().unwrap().common.unexpected.push(format!("{method} {uri}"));
    graph_error(StatusCode::BAD_REQUEST, "BadRequest", &format!("Resource not found for the segment '{}'.", uri.path()))
}

impl FakeGraph {
    pub fn start(world: World) -> FakeGraph {
        let fake = Fake::serve(world, |world| {
            Router::new()
                .route("/{tenant}/oauth2/v2.0/token", post(token))
                .route("/v1.0/users", get(users))
                .route("/v1.0/users/delta", get(users_delta))
                .route("/v1.0/groups", get(groups))
                .route("/v1.0/groups/delta", get(groups_delta))
                .route("/v1.0/groups/{id}/members", get(members))
                .route("/v1.0/users/{id}", get(one_user))
                .route("/v1.0/groups/{id}", get(one_group))
                .route("/v1.0/users/{id}/memberOf/microsoft.graph.group", get(user_member_of))
                .route("/v1.0/groups/{id}/memberOf/microsoft.graph.group", get(group_member_of))
                .fallback(fallback)
                .with_state(world)
        });
        fake.world.lock().unwrap().base = fake.base.clone();
        fake
    }
}

impl World {
    fn user_mut(&mut self, id: &str) -> &mut Value {
        self.users.iter_mut().find(|u| u["id"] == id).unwrap_or_else(|| panic!("no user {id}"))
    }

    /// Change some properties: the round carries only those (and the id).
    pub fn change(&mut self, id: &str, props: Value) {
        let u = self.user_mut(id);
        let mut record = json!({"id": id});
        for (k, v) in props.as_object().unwrap() {
            u[k] = v.clone();
            record[k] = v.clone();
        }
        self.users_log.push(record);
    }

    /// Leave every group `id` is in (a group round for each).
    fn leave_groups(&mut self, id: &str) {
        for (gid, _, _, members) in &mut self.groups {
            if members.iter().any(|(m, _)| m == id) {
                members.retain(|(m, _)| m != id);
                self.groups_log.push(json!({"id": gid, "members@delta": [{"@odata.type": "#microsoft.graph.user", "id": id, "@removed": {"reason": "deleted"}}]}));
            }
        }
    }

    /// Soft-delete (restorable 30 days) or delete for good.
    pub fn remove(&mut self, id: &str, reason: &str) {
        self.users.retain(|u| u["id"] != id);
        self.users_log.push(json!({"id": id, "@removed": {"reason": reason}}));
        self.leave_groups(id);
    }

    pub fn add(&mut self, user: Value) {
        self.users_log.push(user.clone());
        self.users.push(user);
    }

    /// Expire every delta token (as after 7 days).
    pub fn expire_delta_tokens(&mut self) {
        self.expire_delta_tokens_with(Restart::NotFound);
    }

    /// Make every delta token stale, answered as `how` from now on.
    pub fn expire_delta_tokens_with(&mut self, how: Restart) {
        self.generation += 1;
        self.restart = how;
    }
}

/// A user as Graph holds it.
pub fn user(i: usize) -> Value {
    json!({"id": format!("{:08x}-0000-4000-8000-{:012x}", i, i), "userPrincipalName": format!("user{i}@contoso.com"),
           "mail": format!("user{i}@contoso.com"), "displayName": format!("User {i}"), "givenName": "User", "surname": format!("{i}"),
           "mobilePhone": null, "businessPhones": [format!("+1 425 555 {:04}", i % 10_000)], "employeeId": format!("{}", 1000 + i),
           "department": "Retail", "jobTitle": "Clerk", "accountEnabled": true, "onPremisesImmutableId": null})
}

/// `users` users in 13 security groups nested 3 levels (Company > 3
/// divisions > 3 teams each), each user in one team, plus one mail-only
/// group that is not a department.
pub fn org(users: usize) -> World {
    let mut w = World::default();
    let gid = |k: usize| format!("{:08x}-1111-4000-8000-{:012x}", k, k);
    let mut groups: Vec<GroupRow> = vec![(gid(0), "Company".into(), true, vec![])];
    let mut teams = Vec::new();
    for d in 0..3 {
        let div = gid(1 + d);
        groups[0].3.push((div.clone(), true));
        groups.push((div.clone(), format!("Division {d}"), true, vec![]));
        for t in 0..3 {
            let team = gid(10 + d * 3 + t);
            groups.iter_mut().find(|g| g.0 == div).unwrap().3.push((team.clone(), true));
            groups.push((team.clone(), format!("Team {d}.{t}"), true, vec![]));
            teams.push(team);
        }
    }
    for i in 0..users {
        let u = user(i);
        let team = &teams[i % teams.len()];
        groups.iter_mut().find(|g| &g.0 == team).unwrap().3.push((u["id"].as_str().unwrap().to_owned(), false));
        w.users.push(u);
    }
    groups.push((gid(99), "All staff (mail)".into(), false, vec![]));
    w.groups = groups;
    w
}

/// `users` users in `groups` flat security groups (the benchmark).
#[allow(dead_code)] // benches/saas_fetch.rs
pub fn sized(groups: usize, users: usize) -> World {
    let mut w = World::default();
    for k in 0..groups {
        w.groups.push((format!("g{k:05}"), format!("Group {k}"), true, vec![]));
    }
    for i in 0..users {
        let u = user(i);
        w.groups[i % groups].3.push((u["id"].as_str().unwrap().to_owned(), false));
        w.users.push(u);
    }
    w
}
