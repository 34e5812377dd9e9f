//! A fake DingTalk oapi following docs/vendor-apis.md sections 2 and 8:
//! `GET /gettoken?appkey=&appsecret=`, `POST /topapi/...?access_token=`
//! with JSON bodies, everything HTTP 200 with `errcode`; an invalid token
//! is `errcode 88` + `sub_code "40014"`, a missing one sub_code `40000`;
//! throttling is `errcode 90018`; int64 department ids (above 2^53, so a
//! client that reads them as floats gets them wrong); `listsubid` one level
//! only; `user/list` pages by cursor with `size` at most 100; root 1;
//! the optional per-IP ban body `{"status":1111,…}`; an unknown method is
//! `errcode 22`. Every request is logged; unexpected ones are kept.

use crate::fake::{Common, Fake, Gate};
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const APP_KEY: &str = "dingfakeappkey";
pub const APP_SECRET: &str = "fake-dingtalk-secret-never-logged";
/// Department ids start above 2^53.
pub const ID_BASE: i64 = 9_007_199_254_740_993;

#[derive(Default)]
pub struct World {
    /// id, parent (1 for top level), name, order (smaller first).
    pub departments: Vec<(i64, i64, String, i64)>,
    /// `user/list` items; `dept_id_list` says where each is listed.
    pub users: Vec<Value>,
    /// Answer every data request with the per-IP ban body.
    pub ip_banned: bool,
    pub common: Common,
    /// Stream mode (EVENTS.md §2), when started with [`FakeDingTalk::start_with_stream`].
    pub stream: StreamSide,
}

/// The Stream gateway's side: `connections/open` and the WebSocket.
#[derive(Default)]
pub struct StreamSide {
    pub socket: crate::fake::Socket,
    /// Tickets given out; a connection must present the last one.
    pub tickets: Vec<String>,
    messages: usize,
}

impl crate::fake::Sockets for World {
    fn socket(&mut self) -> &mut crate::fake::Socket {
        &mut self.stream.socket
    }

    /// `/connect?ticket=` with the last ticket given.
    fn admit(&self, uri: &Uri) -> bool {
        let ticket = url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .find(|(k, _)| k == "ticket")
            .map(|(_, v)| v.into_owned());
        uri.path() == "/connect" && ticket.is_some() && ticket.as_ref() == self.stream.tickets.last()
    }
}

pub type FakeDingTalk = Fake<World>;

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

fn ok(result: Value) -> Response {
    Json(json!({"errcode": 0, "errmsg": "ok", "result": result, "request_id": "fake"})).into_response()
}

fn err(errcode: i64, errmsg: &str) -> Response {
    Json(json!({"errcode": errcode, "errmsg": errmsg, "request_id": "fake"})).into_response()
}

fn sub_err(sub_code: &str, sub_msg: &str) -> Response {
    Json(json!({"errcode": 88, "sub_code": sub_code, "sub_msg": sub_msg,
                "errmsg": format!("ding talk error[subcode={sub_code},submsg={sub_msg}]"), "request_id": "fake"}))
    .into_response()
}

async fn gettoken(State(w): State<Shared>, Query(q): Q) -> Response {
    let mut w = w.lock().unwrap();
    let (Some(key), Some(secret)) = (q.get("appkey"), q.get("appsecret")) else {
        w.common.log.push((std::time::Instant::now(), "token refused".into()));
        return err(40035, "缺少参数");
    };
    if key != APP_KEY || secret != APP_SECRET {
        w.common.log.push((std::time::Instant::now(), "token refused".into()));
        return err(40096, "不合法的appKey或appSecret");
    }
    let t = w.common.issue_token("dtfake");
    Json(json!({"errcode": 0, "errmsg": "ok", "access_token": t, "expires_in": w.common.ttl()})).into_response()
}

/// The token, ban, throttling and failure checks of every data API.
fn gate(w: &mut World, q: &HashMap<String, String>, what: &str, dept: i64, page: usize) -> Option<Response> {
    let refused = w.common.gate(q.get("access_token").map(String::as_str), what, &dept.to_string(), page);
    if w.ip_banned {
        return Some(Json(json!({"status": 1111, "wait": 5, "source": "x5", "punish": "deny", "uuid": "fake"})).into_response());
    }
    Some(match refused? {
        Gate::Missing => sub_err("40000", "access_token is blank"),
        Gate::Invalid | Gate::Expired => sub_err("40014", "不合法的access_token"),
        Gate::Throttled => err(90018, "当前企业所调用的该接口超过了限制"),
        Gate::Fail => (StatusCode::INTERNAL_SERVER_ERROR, "<html>500 Internal Server Error</html>").into_response(),
    })
}

fn dept_id(body: &Value) -> Option<i64> {
    body.get("dept_id").and_then(Value::as_i64)
}

async fn listsubid(State(w): State<Shared>, Query(q): Q, Json(body): Json<Value>) -> Response {
    let mut w = w.lock().unwrap();
    let Some(id) = dept_id(&body) else { return err(400002, "参数错误: dept_id") };
    if let Some(r) = gate(&mut w, &q, "listsubid", id, 1) {
        return r;
    }
    if id != 1 && !w.departments.iter().any(|d| d.0 == id) {
        return err(60003, "部门不存在");
    }
    let kids: Vec<i64> = w.departments.iter().filter(|d| d.1 == id).map(|d| d.0).collect();
    ok(json!({"dept_id_list": kids}))
}

async fn department_get(State(w): State<Shared>, Query(q): Q, Json(body): Json<Value>) -> Response {
    let mut w = w.lock().unwrap();
    let Some(id) = dept_id(&body) else { return err(400002, "参数错误: dept_id") };
    if let Some(r) = gate(&mut w, &q, "get", id, 1) {
        return r;
    }
    match w.departments.iter().find(|d| d.0 == id) {
        Some((id, parent, name, order)) => ok(json!({"dept_id": id, "name": name, "parent_id": parent, "order": order,
            "dept_manager_userid_list": [], "source_identifier": "", "hide_dept": false, "outer_dept": false,
            "create_dept_group": true, "auto_add_user": true, "brief": ""})),
        None => err(60003, "部门不存在"),
    }
}

async fn user_list(State(w): State<Shared>, Query(q): Q, Json(body): Json<Value>) -> Response {
    let mut w = w.lock().unwrap();
    let Some(id) = dept_id(&body) else { return err(400002, "参数错误: dept_id") };
    let size = body["size"].as_u64().unwrap_or(0) as usize;
    if size == 0 || size > 100 {
        return err(400002, "参数错误: size 不能超过100");
    }
    let Some(cursor) = body["cursor"].as_u64().map(|c| c as usize) else { return err(400002, "参数错误: cursor") };
    if let Some(r) = gate(&mut w, &q, "users", id, cursor / size + 1) {
        return r;
    }
    let members: Vec<&Value> =
        w.users.iter().filter(|u| u["dept_id_list"].as_array().unwrap().iter().any(|d| d.as_i64() == Some(id))).collect();
    let end = (cursor + size).min(members.len());
    // The documented list schema has no `manager_userid` (user/get has it).
    let list: Vec<Value> = members[cursor.min(end)..end]
        .iter()
        .map(|u| {
            let mut u = (*u).clone();
            u.as_object_mut().map(|o| o.remove("manager_userid"));
            u
        })
        .collect();
    let mut result = json!({"has_more": end < members.len(), "list": list});
    if end < members.len() {
        result["next_cursor"] = json!(if w.common.knobs.repeat_cursor { size } else { end });
    }
    ok(result)
}

/// `POST topapi/v2/user/get` `{"userid"}`: one user, with `dept_id_list`.
async fn user_get(State(w): State<Shared>, Query(q): Q, Json(body): Json<Value>) -> Response {
    let mut w = w.lock().unwrap();
    let Some(id) = body["userid"].as_str().map(str::to_owned) else { return err(400002, "参数错误: userid") };
    if let Some(r) = gate(&mut w, &q, &format!("user {id}"), 0, 1) {
        return r;
    }
    match w.users.iter().find(|u| u["userid"] == id.as_str()) {
        Some(u) => ok(u.clone()),
        None => err(60121, "找不到该用户"),
    }
}

async fn fallback(State(w): State<Shared>, method: Method, uri: Uri) -> Response {
    w.lock().unwrap().common.unexpected.push(format!("{method} {uri}"));
    err(22, &format!("Invalid method[{}]", uri.path()))
}

impl FakeDingTalk {
    pub fn start(world: World) -> FakeDingTalk {
        Fake::serve(world, |world| {
            Router::new()
                .route("/gettoken", get(gettoken))
                .route("/topapi/v2/department/listsubid", post(listsubid))
                .route("/topapi/v2/department/get", post(department_get))
                .route("/topapi/v2/user/list", post(user_list))
                .route("/topapi/v2/user/get", post(user_get))
                .route("/v1.0/gateway/connections/open", post(connections_open))
                .fallback(fallback)
                .with_state(world)
        })
    }
}

/// `POST /v1.0/gateway/connections/open` (EVENTS.md §2.1): the app's
/// credentials and subscriptions in, `{endpoint, ticket}` out.
async fn connections_open(State(w): State<Shared>, Json(body): Json<Value>) -> Response {
    let mut w = w.lock().unwrap();
    w.common.log.push((std::time::Instant::now(), "stream open".into()));
    if body["clientId"] != APP_KEY || body["clientSecret"] != APP_SECRET {
        return (StatusCode::UNAUTHORIZED, Json(json!({"code": "InvalidAuthentication", "message": "鉴权失败"}))).into_response();
    }
    let subscribed = body["subscriptions"].as_array().is_some_and(|s| s.iter().any(|s| s["type"] == "EVENT" && s["topic"] == "*"));
    if !subscribed {
        w.common.unexpected.push(format!("connections/open without the EVENT * subscription: {body}"));
    }
    if w.stream.socket.refuse_open {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"code": "ServiceUnavailable", "message": "系统繁忙"}))).into_response();
    }
    let ticket = format!("ticket+{}/{}", w.stream.tickets.len() + 1, APP_KEY);
    w.stream.tickets.push(ticket.clone());
    Json(json!({"endpoint": format!("{}/connect", w.stream.socket.endpoint), "ticket": ticket})).into_response()
}

impl FakeDingTalk {
    /// The fake with Stream mode: `connections/open` on the oapi fake, the
    /// WebSocket on a port of its own.
    pub fn start_with_stream(world: World) -> FakeDingTalk {
        let fake = FakeDingTalk::start(world);
        fake.serve_socket();
        fake
    }

    /// Send a frame on the live connection (false when there is none).
    pub fn push_frame(&self, frame: &Value) -> bool {
        self.send(tokio_tungstenite::tungstenite::Message::Text(frame.to_string().into()))
    }

    /// A contact event as Stream mode sends it (EVENTS.md §2.2), under a
    /// new messageId; its frame, to send again as a redelivery.
    pub fn event_frame(&self, event_id: &str, event_type: &str, data: &Value) -> Value {
        let mut w = self.world.lock().unwrap();
        w.stream.messages += 1;
        json!({"specVersion": "1.0", "type": "EVENT", "time": 1_700_000_000_000_i64,
            "headers": {"appId": "a1", "connectionId": "c1", "contentType": "application/json",
                "messageId": format!("msg-{}", w.stream.messages), "time": "1700000000000", "topic": "*",
                "eventBornTime": "1700000000000", "eventCorpId": "ding1", "eventId": event_id,
                "eventType": event_type, "eventUnifiedAppId": "u1"},
            "data": data.to_string()})
    }

    /// A SYSTEM frame (`ping`, `disconnect`) with this data.
    pub fn system_frame(&self, topic: &str, data: &str) -> Value {
        let mut w = self.world.lock().unwrap();
        w.stream.messages += 1;
        json!({"specVersion": "1.0", "type": "SYSTEM", "time": 1_700_000_000_000_i64,
            "headers": {"contentType": "application/json", "messageId": format!("msg-{}", w.stream.messages), "time": "1700000000000", "topic": topic},
            "data": data})
    }

    /// The acknowledgement of a messageId, when it came.
    pub fn ack_of(&self, message_id: &str) -> Option<Value> {
        self.received()
            .into_iter()
            .filter_map(|m| m.into_text().ok().and_then(|t| serde_json::from_str::<Value>(t.as_str()).ok()))
            .find(|a| a["headers"]["messageId"] == message_id)
    }
}

/// A user as `user/list` returns it.
pub fn user(i: usize, depts: &[i64]) -> Value {
    json!({"userid": format!("dt{i}"), "unionid": format!("union{i:05}"), "name": format!("User {i}"),
           "state_code": "86", "mobile": format!("130{i:08}"), "hide_mobile": false, "telephone": "",
           "job_number": format!("J{i}"), "title": "Engineer", "work_place": "", "remark": "",
           "email": format!("private{i}@example.test"), "org_email": format!("dt{i}@example.test"),
           "dept_id_list": depts, "dept_order": 1, "extension": "{}", "hired_date": 1597573616828_i64,
           "active": true, "admin": false, "boss": false, "leader": false, "exclusive_account": false})
}

/// An org 3 levels deep: 3 top departments, 3 children each, 2
/// grandchildren each (30 in all, listed so that a later one has a smaller
/// order) plus a big department with 210 members (three pages of 100).
/// User i < 60 is in department i % 30 and, every fourth one, also in the
/// next; user 3 is also directly in the root.
pub fn org() -> World {
    let mut w = World::default();
    let mut next = ID_BASE;
    let mut ids = Vec::new();
    let mut add = |w: &mut World, parent: i64, name: String| {
        let id = next;
        next += 1;
        w.departments.push((id, parent, name, 1000 - (id - ID_BASE)));
        id
    };
    for a in 0..3 {
        let top = add(&mut w, 1, format!("Dept {a}"));
        ids.push(top);
        for b in 0..3 {
            let mid = add(&mut w, top, format!("Dept {a}.{b}"));
            ids.push(mid);
            for c in 0..2 {
                let leaf = add(&mut w, mid, format!("Dept {a}.{b}.{c}"));
                ids.push(leaf);
            }
        }
    }
    let big = add(&mut w, 1, "Big".into());
    for i in 0..60 {
        let mut depts = vec![ids[i % ids.len()]];
        if i % 4 == 1 {
            depts.push(ids[(i + 1) % ids.len()]);
        }
        if i == 3 {
            depts.push(1);
        }
        w.users.push(user(i, &depts));
    }
    for i in 60..270 {
        w.users.push(user(i, &[big]));
    }
    w
}

/// `depts` departments and `users` users in the benchmark's shape.
#[allow(dead_code)] // benches/saas_fetch.rs
pub fn sized(depts: usize, users: usize) -> World {
    let (parents, members) = crate::fake::shape(depts, users);
    let id = |k: usize| ID_BASE + k as i64;
    let mut w = World::default();
    for (k, p) in parents.iter().enumerate() {
        w.departments.push((id(k), p.map_or(1, id), format!("Dept {k}"), k as i64));
    }
    for (i, ds) in members.iter().enumerate() {
        w.users.push(user(i, &ds.iter().map(|&k| id(k)).collect::<Vec<_>>()));
    }
    w
}
