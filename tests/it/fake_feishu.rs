//! A fake Feishu/Lark open platform following docs/vendor-apis.md sections 1 and 8:
//! the same paths and methods, top-level token fields, `{"code","msg","data"}`
//! envelopes, `order` as a string, page_size capped at 50 (larger is a
//! validation error), `page_token` absent on the last page, HTTP 400 with
//! 99991661/99991663 for missing/invalid tokens, HTTP 429 + 99991400 +
//! `x-ogw-ratelimit-reset` for throttling, and a plain-text 404 for any
//! other path. Every request is logged; unexpected ones are kept so the
//! test can fail on them (tests/it/fake.rs has what the fakes share).

use crate::fake::{Common, Fake, Gate};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const APP_ID: &str = "cli_fake_app";
pub const APP_SECRET: &str = "fake-app-secret-never-logged";

#[derive(Default)]
pub struct World {
    /// open_department_id, parent ("0" for top level), name, order.
    pub departments: Vec<(String, String, String, i64)>,
    pub users: Vec<Value>,
    /// While set, department listings wait (a run in the middle of its fetch).
    pub stall: Arc<std::sync::atomic::AtomicBool>,
    pub common: Common,
    /// The long connection (EVENTS.md §1.4).
    pub long: LongSide,
}

pub type FakeFeishu = Fake<World>;

/// The long connection's side: `callback/ws/endpoint` and the WebSocket.
#[derive(Default)]
pub struct LongSide {
    pub socket: crate::fake::Socket,
    /// `device_id`s given out; a connection must present the last one.
    pub devices: Vec<String>,
    /// `ClientConfig.PingInterval` given, in seconds (default 120).
    pub ping_interval: Option<u64>,
    pub messages: u64,
}

/// The service id the endpoint URL carries and every frame repeats.
pub const SERVICE_ID: i32 = 33;

/// `pbbp2.Header` (EVENTS.md §1.4), defined here apart from the client's.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PbHeader {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(string, required, tag = "2")]
    pub value: String,
}

/// `pbbp2.Frame` (EVENTS.md §1.4).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PbFrame {
    #[prost(uint64, required, tag = "1")]
    pub seq_id: u64,
    #[prost(uint64, required, tag = "2")]
    pub log_id: u64,
    #[prost(int32, required, tag = "3")]
    pub service: i32,
    #[prost(int32, required, tag = "4")]
    pub method: i32,
    #[prost(message, repeated, tag = "5")]
    pub headers: Vec<PbHeader>,
    #[prost(string, optional, tag = "6")]
    pub payload_encoding: Option<String>,
    #[prost(string, optional, tag = "7")]
    pub payload_type: Option<String>,
    #[prost(bytes = "vec", optional, tag = "8")]
    pub payload: Option<Vec<u8>>,
    #[prost(string, optional, tag = "9")]
    pub log_id_new: Option<String>,
}

#[allow(dead_code)] // benches/saas_fetch.rs takes the fake without the long connection
impl PbFrame {
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers.iter().find(|h| h.key == key).map(|h| h.value.as_str())
    }
}

impl crate::fake::Sockets for World {
    fn socket(&mut self) -> &mut crate::fake::Socket {
        &mut self.long.socket
    }

    /// `/ws?device_id=…&service_id=…` with the last device id given.
    fn admit(&self, uri: &axum::http::Uri) -> bool {
        let q: HashMap<String, String> = url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()).into_owned().collect();
        uri.path() == "/ws" && q.get("device_id") == self.long.devices.last() && q.get("service_id") == Some(&SERVICE_ID.to_string())
    }

    /// A `ping` control frame is answered with a `pong` (no new ClientConfig),
    /// as the server does: a client that hears nothing for a while reconnects.
    fn answer(&self, m: &tokio_tungstenite::tungstenite::Message) -> Option<tokio_tungstenite::tungstenite::Message> {
        let ping = <PbFrame as prost::Message>::decode(m.clone().into_data().as_ref()).ok()?;
        (ping.method == 0 && ping.header("type") == Some("ping")).then(|| {
            let pong = PbFrame {
                service: ping.service,
                method: 0,
                headers: vec![PbHeader { key: "type".into(), value: "pong".into() }],
                ..PbFrame::default()
            };
            tokio_tungstenite::tungstenite::Message::Binary(prost::Message::encode_to_vec(&pong).into())
        })
    }
}

/// `POST /callback/ws/endpoint` with `{"AppID", "AppSecret"}`.
async fn ws_endpoint(State(w): State<Shared>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let mut w = w.lock().unwrap();
    w.common.log.push((std::time::Instant::now(), "ws endpoint".into()));
    if headers.get("locale").is_none() {
        w.common.unexpected.push("callback/ws/endpoint without the locale header".into());
    }
    if body["AppID"] != APP_ID || body["AppSecret"] != APP_SECRET {
        return Json(json!({"code": 1000040344, "msg": "no credential"})).into_response();
    }
    if w.long.socket.refuse_open {
        return Json(json!({"code": 1, "msg": "system busy"})).into_response();
    }
    let device = format!("dev-{}", w.long.devices.len() + 1);
    w.long.devices.push(device.clone());
    let url = format!("{}/ws?device_id={device}&service_id={SERVICE_ID}", w.long.socket.endpoint);
    let ping = w.long.ping_interval.unwrap_or(120);
    Json(json!({"code": 0, "msg": "ok", "data": {"URL": url,
        "ClientConfig": {"ReconnectCount": -1, "ReconnectInterval": 120, "ReconnectNonce": 30, "PingInterval": ping}}}))
    .into_response()
}

#[allow(dead_code)] // benches/saas_fetch.rs takes the fake without the long connection
impl FakeFeishu {
    /// The fake with the long connection.
    pub fn start_with_long_connection(world: World) -> FakeFeishu {
        let fake = FakeFeishu::start(world);
        fake.serve_socket();
        fake
    }

    /// Send a schema-2.0 event on the long connection in `parts` data
    /// frames (`sum`, `seq`); its message_id.
    pub fn push_event(&self, event: &Value, parts: usize) -> String {
        let id = {
            let mut w = self.world.lock().unwrap();
            w.long.messages += 1;
            format!("msg-{}", w.long.messages)
        };
        let bytes = event.to_string().into_bytes();
        let size = bytes.len().div_ceil(parts);
        for (seq, part) in bytes.chunks(size).enumerate() {
            let h = |k: &str, v: String| PbHeader { key: k.into(), value: v };
            let frame = PbFrame {
                seq_id: seq as u64 + 1,
                log_id: 7,
                service: SERVICE_ID,
                method: 1,
                headers: vec![
                    h("type", "event".into()),
                    h("message_id", id.clone()),
                    h("sum", parts.to_string()),
                    h("seq", seq.to_string()),
                    h("trace_id", "tr".into()),
                    h("timestamp", "1700000000000".into()),
                ],
                payload: Some(part.to_vec()),
                ..PbFrame::default()
            };
            assert!(self.send(tokio_tungstenite::tungstenite::Message::Binary(prost::Message::encode_to_vec(&frame).into())));
        }
        id
    }

    /// The client's frames, decoded.
    pub fn frames(&self) -> Vec<PbFrame> {
        self.received().into_iter().filter_map(|m| <PbFrame as prost::Message>::decode(m.into_data().as_ref()).ok()).collect()
    }
}

impl crate::fake::World for World {
    fn common(&self) -> &Common {
        &self.common
    }

    fn common_mut(&mut self) -> &mut Common {
        &mut self.common
    }
}

type Shared = Arc<Mutex<World>>;

fn envelope(code: i64, msg: &str, data: Value) -> Json<Value> {
    Json(json!({"code": code, "msg": msg, "data": data}))
}

fn error(status: StatusCode, code: i64, msg: &str) -> Response {
    (status, Json(json!({"code": code, "msg": msg, "error": {"log_id": "fake"}}))).into_response()
}

async fn token(State(w): State<Shared>, Json(body): Json<Value>) -> Response {
    let mut w = w.lock().unwrap();
    if body["app_id"] != APP_ID || body["app_secret"] != APP_SECRET {
        w.common.log.push((std::time::Instant::now(), "token refused".into()));
        // HTTP 200 even on failure.
        return Json(json!({"code": 10014, "msg": "app secret invalid", "data": {}})).into_response();
    }
    let t = w.common.issue_token("t-fake");
    Json(json!({"code": 0, "msg": "ok", "tenant_access_token": t, "expire": w.common.ttl()})).into_response()
}

/// Token, throttling and failure checks shared by the data APIs.
fn gate(w: &mut World, headers: &HeaderMap, what: &str, page: usize, dept: &str) -> Option<Response> {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    Some(match w.common.gate(auth.strip_prefix("Bearer "), what, dept, page)? {
        Gate::Missing => error(StatusCode::BAD_REQUEST, 99991661, "Missing access token for authorization."),
        Gate::Invalid | Gate::Expired => error(StatusCode::BAD_REQUEST, 99991663, "Invalid access token for authorization."),
        Gate::Throttled => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, 99991400, "request trigger frequency limit");
            r.headers_mut().insert("x-ogw-ratelimit-limit", "50".parse().unwrap());
            r.headers_mut().insert("x-ogw-ratelimit-reset", "1".parse().unwrap());
            r
        }
        Gate::Fail => (StatusCode::INTERNAL_SERVER_ERROR, "upstream error").into_response(),
    })
}

/// (page size, offset) from the query, or the validation error.
#[allow(clippy::result_large_err)] // a test server's error path
fn paging(q: &HashMap<String, String>) -> Result<(usize, usize), Response> {
    let size: usize = q.get("page_size").and_then(|s| s.parse().ok()).unwrap_or(10);
    if size == 0 || size > 50 {
        return Err(error(StatusCode::BAD_REQUEST, 99992402, "field validation failed: page_size must be <= 50"));
    }
    let offset = match q.get("page_token") {
        None => 0,
        Some(t) => {
            t.strip_prefix("PT").and_then(|s| s.parse().ok()).ok_or_else(|| error(StatusCode::BAD_REQUEST, 99992402, "bad page_token"))?
        }
    };
    Ok((size, offset))
}

fn page(items: Vec<Value>, size: usize, offset: usize, repeat: bool) -> Json<Value> {
    let end = (offset + size).min(items.len());
    let mut data = json!({"has_more": end < items.len(), "items": items[offset.min(end)..end]});
    if end < items.len() {
        data["page_token"] = json!(format!("PT{}", if repeat { size } else { end }));
    }
    envelope(0, "success", data)
}

async fn children(
    State(w): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let stall = w.lock().unwrap().stall.clone();
    while stall.load(std::sync::atomic::Ordering::SeqCst) {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut w = w.lock().unwrap();
    let (size, offset) = match paging(&q) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Some(r) = gate(&mut w, &headers, "children", offset / size + 1, &id) {
        return r;
    }
    if q.get("fetch_child").map(String::as_str) != Some("true") {
        w.common.unexpected.push(format!("children of {id} with {q:?}"));
    }
    // Every descendant of `id` ("0": the whole tenant).
    let under = |d: &str| {
        let mut at = w.departments.iter().find(|x| x.0 == d).map(|x| x.1.clone());
        while let Some(p) = at {
            if p == id {
                return true;
            }
            at = w.departments.iter().find(|x| x.0 == p).map(|x| x.1.clone());
        }
        false
    };
    if id != "0" && !w.departments.iter().any(|x| x.0 == id) {
        return error(StatusCode::BAD_REQUEST, 40003, "department not found").into_response();
    }
    let items = w
        .departments
        .iter()
        .filter(|(d, ..)| id == "0" || under(d))
        .map(|(d, p, n, o)| {
            json!({"name": n, "parent_department_id": p, "department_id": format!("D{d}"), "open_department_id": d,
                   "order": o.to_string(), "status": {"is_deleted": false}, "leaders": []})
        })
        .collect();
    page(items, size, offset, w.common.knobs.repeat_cursor).into_response()
}

/// `GET departments/:id`: one department.
async fn department(
    State(w): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut w = w.lock().unwrap();
    if let Some(r) = gate(&mut w, &headers, "department", 1, &id) {
        return r;
    }
    if !q.contains_key("department_id_type") {
        w.common.unexpected.push(format!("department {id} without department_id_type"));
    }
    match w.departments.iter().find(|x| x.0 == id) {
        Some((d, p, n, o)) => envelope(
            0,
            "success",
            json!({"department": {"name": n, "parent_department_id": p, "department_id": format!("D{d}"), "open_department_id": d,
                   "order": o.to_string(), "status": {"is_deleted": false}, "leaders": []}}),
        )
        .into_response(),
        None => error(StatusCode::BAD_REQUEST, 40003, "department not found"),
    }
}

/// `GET users/:id`: one user, by the id of `user_id_type` (default
/// `open_id`). An id it does not know: an error (the code is the fake's).
async fn one_user(
    State(w): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut w = w.lock().unwrap();
    if let Some(r) = gate(&mut w, &headers, "user", 1, &id) {
        return r;
    }
    let key = q.get("user_id_type").map_or("open_id", String::as_str);
    if !q.contains_key("department_id_type") {
        w.common.unexpected.push(format!("user {id} without department_id_type"));
    }
    match w.users.iter().find(|u| u[key] == id.as_str()) {
        Some(u) => envelope(0, "success", json!({"user": leader_as(&w.users, u, key)})).into_response(),
        None => error(StatusCode::BAD_REQUEST, 41050, "no user authority error"),
    }
}

async fn find_by_department(State(w): State<Shared>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut w = w.lock().unwrap();
    let (size, offset) = match paging(&q) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(dept) = q.get("department_id").cloned() else {
        return error(StatusCode::BAD_REQUEST, 99992402, "field validation failed: department_id is required");
    };
    if let Some(r) = gate(&mut w, &headers, "users", offset / size + 1, &dept) {
        return r;
    }
    let key = q.get("user_id_type").map_or("open_id", String::as_str);
    let items = w
        .users
        .iter()
        .filter(|u| u["department_ids"].as_array().unwrap().iter().any(|d| d == &dept))
        .map(|u| leader_as(&w.users, u, key))
        .collect();
    page(items, size, offset, w.common.knobs.repeat_cursor).into_response()
}

/// A user with its `leader_user_id` (kept as the leader's open_id) given
/// in the id type asked for, as Feishu gives it.
fn leader_as(users: &[Value], u: &Value, key: &str) -> Value {
    let mut u = u.clone();
    if let Some(open) = u["leader_user_id"].as_str().filter(|l| !l.is_empty()) {
        let leader = users.iter().find(|l| l["open_id"] == open).map_or(Value::Null, |l| l[key].clone());
        u["leader_user_id"] = leader;
    }
    u
}

async fn not_found(State(w): State<Shared>, uri: axum::http::Uri) -> Response {
    w.lock().unwrap().common.unexpected.push(uri.to_string());
    (StatusCode::NOT_FOUND, "404 page not found").into_response()
}

impl FakeFeishu {
    pub fn start(world: World) -> FakeFeishu {
        Fake::serve(world, |world| {
            Router::new()
                .route("/open-apis/auth/v3/tenant_access_token/internal", post(token))
                .route("/open-apis/contact/v3/departments/{id}/children", get(children))
                .route("/open-apis/contact/v3/departments/{id}", get(department))
                .route("/open-apis/contact/v3/users/find_by_department", get(find_by_department))
                .route("/open-apis/contact/v3/users/{id}", get(one_user))
                .route("/callback/ws/endpoint", post(ws_endpoint))
                .fallback(not_found)
                .with_state(world)
        })
    }
}

/// An org 3 levels deep: 3 top departments, 3 children each, 2
/// grandchildren each (30 in all) plus `od-big` with 130 members (three
/// pages of 50). User i < 100 is in department i % 30 and, every fourth one,
/// also in the next; user 5 has the second one as primary.
pub fn org() -> World {
    let mut w = World::default();
    let mut ids = Vec::new();
    for a in 0..3 {
        let top = format!("od-{a}");
        w.departments.push((top.clone(), "0".into(), format!("Dept {a}"), a));
        ids.push(top.clone());
        for b in 0..3 {
            let mid = format!("od-{a}-{b}");
            w.departments.push((mid.clone(), top.clone(), format!("Dept {a}.{b}"), b));
            ids.push(mid.clone());
            for c in 0..2 {
                let leaf = format!("od-{a}-{b}-{c}");
                w.departments.push((leaf.clone(), mid.clone(), format!("Dept {a}.{b}.{c}"), c));
                ids.push(leaf);
            }
        }
    }
    w.departments.push(("od-big".into(), "0".into(), "Big".into(), 9));
    for i in 0..100 {
        let mut depts = vec![ids[i % ids.len()].clone()];
        if i % 4 == 1 {
            depts.push(ids[(i + 1) % ids.len()].clone());
        }
        w.users.push(user(i, depts, usize::from(i == 5)));
    }
    for i in 100..230 {
        w.users.push(user(i, vec!["od-big".into()], 0));
    }
    w
}

/// A user as `find_by_department` returns it; `primary` indexes `depts`.
pub fn user(i: usize, depts: Vec<String>, primary: usize) -> Value {
    let orders: Vec<Value> = depts
        .iter()
        .enumerate()
        .map(|(k, d)| json!({"department_id": d, "user_order": 0, "department_order": 0, "is_primary_dept": k == primary}))
        .collect();
    json!({"union_id": format!("on_{i:04}"), "open_id": format!("ou_{i:04}"), "user_id": format!("u{i}"),
           "name": format!("User {i}"), "email": format!("user{i}@example.test"), "mobile": format!("+86130{i:08}"),
           "employee_no": format!("E{i}"), "job_title": "Engineer", "department_ids": depts, "orders": orders,
           "status": {"is_frozen": false, "is_resigned": false, "is_activated": true, "is_exited": false, "is_unjoin": false}})
}

/// `depts` departments and `users` users in the benchmark's shape.
#[allow(dead_code)] // benches/saas_fetch.rs
pub fn sized(depts: usize, users: usize) -> World {
    let (parents, members) = crate::fake::shape(depts, users);
    let id = |k: usize| format!("od-{k}");
    let mut w = World::default();
    for (k, p) in parents.iter().enumerate() {
        w.departments.push((id(k), p.map_or("0".into(), id), format!("Dept {k}"), k as i64));
    }
    for (i, ds) in members.iter().enumerate() {
        w.users.push(user(i, ds.iter().map(|&k| id(k)).collect(), 0));
    }
    w
}
