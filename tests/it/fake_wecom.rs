//! A fake WeCom (企业微信) contact API following docs/vendor-apis.md sections 3 and
//! 8: `GET /cgi-bin/gettoken?corpid=&corpsecret=`, `GET` APIs with
//! `?access_token=`, `POST user/list_id` by cursor (limit 1..10000, an empty
//! `next_cursor` at the end); everything HTTP 200 with `errcode`: 40013 /
//! 40001 for a bad corp id / secret, 41001 missing token, 40014 invalid
//! token, 42001 expired token, 45009 throttled, 60020 untrusted IP;
//! `department/list` and `department/simplelist` return the whole subtree
//! including the department asked for; users carry `department[]` and
//! `order[]` as parallel arrays, `main_department`, `status` 1/2/4/5, and
//! (like apps created after 2022-06-20) no email or mobile. Every request
//! is logged; unexpected ones are kept.

use crate::fake::{Common, Fake, Gate};
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const CORP_ID: &str = "wwfakecorp0001";
pub const CORP_SECRET: &str = "fake-wecom-contact-sync-secret";

#[derive(Default)]
pub struct World {
    /// id, parentid (the root 1 has 0), name, order (larger first).
    pub departments: Vec<(i64, i64, String, i64)>,
    /// `user/get` answers (without errcode); `department` says where each is.
    pub users: Vec<Value>,
    /// Refuse every data request with 60020.
    pub untrusted_ip: bool,
    /// An app created before 2022-06-20 (with the field permissions): user
    /// answers carry `email`, `biz_mail` and `mobile` (unless the user's
    /// record sets them itself). Otherwise the keys are left out.
    pub full_app: bool,
    /// A gateway in front that answers 502 with an error page echoing the
    /// request line (query string and all): for `gettoken` (the secret) or
    /// for the data APIs (the access token).
    pub echo_token_request: bool,
    pub echo_data_requests: bool,
    pub common: Common,
}

pub type FakeWeCom = Fake<World>;

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

fn ok(mut body: Value) -> Response {
    body["errcode"] = json!(0);
    body["errmsg"] = json!("ok");
    Json(body).into_response()
}

fn err(errcode: i64, errmsg: &str) -> Response {
    Json(json!({"errcode": errcode, "errmsg": format!("{errmsg}, hint: [1700000000_fake], from ip: 127.0.0.1, more info at https://open.work.weixin.qq.com/devtool/query?e={errcode}")})).into_response()
}

fn echo(uri: &Uri) -> Response {
    let page = format!("<html><body><h1>502 Bad Gateway</h1><p>upstream failed for GET {uri} HTTP/1.1</p></body></html>");
    (StatusCode::BAD_GATEWAY, page).into_response()
}

async fn gettoken(State(w): State<Shared>, uri: Uri, Query(q): Q) -> Response {
    let mut w = w.lock().unwrap();
    if w.echo_token_request {
        return echo(&uri);
    }
    if q.get("corpid").map(String::as_str) != Some(CORP_ID) {
        w.common.log.push((std::time::Instant::now(), "token refused".into()));
        return err(40013, "invalid corpid");
    }
    if q.get("corpsecret").map(String::as_str) != Some(CORP_SECRET) {
        w.common.log.push((std::time::Instant::now(), "token refused".into()));
        return err(40001, "invalid credential");
    }
    let t = w.common.issue_token("wcfake");
    ok(json!({"access_token": t, "expires_in": w.common.ttl()}))
}

/// The token, IP, throttling and failure checks of every data API.
fn gate(w: &mut World, q: &HashMap<String, String>, what: &str, key: &str, page: usize) -> Option<Response> {
    let refused = w.common.gate(q.get("access_token").map(String::as_str), what, key, page);
    if w.untrusted_ip {
        return Some(err(60020, "not allow to access from your ip"));
    }
    Some(match refused? {
        Gate::Missing => err(41001, "access_token missing"),
        Gate::Invalid => err(40014, "invalid access_token"),
        Gate::Expired => err(42001, "access_token expired"),
        Gate::Throttled => err(45009, "api freq out of limit"),
        Gate::Fail => (StatusCode::INTERNAL_SERVER_ERROR, "<html>500 Internal Server Error</html>").into_response(),
    })
}

/// `id` and every department under it.
fn subtree(w: &World, id: i64) -> Vec<&(i64, i64, String, i64)> {
    let mut out: Vec<&(i64, i64, String, i64)> = w.departments.iter().filter(|d| d.0 == id).collect();
    let mut i = 0;
    while i < out.len() {
        let parent = out[i].0;
        out.extend(w.departments.iter().filter(|d| d.1 == parent && d.0 != parent));
        i += 1;
    }
    out
}

fn id_param(q: &HashMap<String, String>, key: &str) -> Option<i64> {
    q.get(key).and_then(|s| s.parse().ok())
}

async fn department_list(State(w): State<Shared>, uri: Uri, Query(q): Q) -> Response {
    let mut w = w.lock().unwrap();
    if w.echo_data_requests {
        return echo(&uri);
    }
    let id = id_param(&q, "id").unwrap_or(1);
    if let Some(r) = gate(&mut w, &q, "department/list", &id.to_string(), 1) {
        return r;
    }
    let list: Vec<Value> = subtree(&w, id)
        .into_iter()
        .map(|(id, parent, name, order)| json!({"id": id, "name": name, "name_en": "", "department_leader": [], "parentid": parent, "order": order}))
        .collect();
    ok(json!({"department": list}))
}

async fn department_simplelist(State(w): State<Shared>, uri: Uri, Query(q): Q) -> Response {
    let mut w = w.lock().unwrap();
    if w.echo_data_requests {
        return echo(&uri);
    }
    let id = id_param(&q, "id").unwrap_or(1);
    if let Some(r) = gate(&mut w, &q, "department/simplelist", &id.to_string(), 1) {
        return r;
    }
    let list: Vec<Value> =
        subtree(&w, id).into_iter().map(|(id, parent, _, order)| json!({"id": id, "parentid": parent, "order": order})).collect();
    ok(json!({"department_id": list}))
}

async fn department_get(State(w): State<Shared>, Query(q): Q) -> Response {
    let mut w = w.lock().unwrap();
    let Some(id) = id_param(&q, "id") else { return err(40058, "id is required") };
    if let Some(r) = gate(&mut w, &q, "department/get", &id.to_string(), 1) {
        return r;
    }
    match w.departments.iter().find(|d| d.0 == id) {
        Some((id, parent, name, order)) => {
            ok(json!({"department": {"id": id, "name": name, "name_en": "", "department_leader": [], "parentid": parent, "order": order}}))
        }
        None => err(60123, "invalid party id"),
    }
}

fn member_of(u: &Value, dept: i64) -> bool {
    u["department"].as_array().unwrap().iter().any(|d| d.as_i64() == Some(dept))
}

/// A user as this app sees it: with contact fields only for a full app.
fn answer(w: &World, u: &Value) -> Value {
    let mut u = u.clone();
    if w.full_app {
        let id = u["userid"].as_str().unwrap_or_default().to_owned();
        let n: String = id.chars().filter(char::is_ascii_digit).collect();
        for (k, v) in
            [("email", format!("{id}@corp.example")), ("biz_mail", format!("{id}@corp.wecom.work")), ("mobile", format!("1380000{n:0>4}"))]
        {
            if u.get(k).is_none() {
                u[k] = json!(v);
            }
        }
    }
    u
}

async fn user_list(State(w): State<Shared>, Query(q): Q) -> Response {
    let mut w = w.lock().unwrap();
    let Some(dept) = id_param(&q, "department_id") else { return err(40058, "department_id is required") };
    if q.contains_key("fetch_child") {
        w.common.unexpected.push(format!("user/list with fetch_child: {q:?}"));
    }
    if let Some(r) = gate(&mut w, &q, "user/list", &dept.to_string(), 1) {
        return r;
    }
    let list: Vec<Value> = w.users.iter().filter(|u| member_of(u, dept)).map(|u| answer(&w, u)).collect();
    ok(json!({"userlist": list}))
}

async fn user_list_id(State(w): State<Shared>, Query(q): Q, Json(body): Json<Value>) -> Response {
    let mut w = w.lock().unwrap();
    let limit = body["limit"].as_u64().unwrap_or(10_000) as usize;
    if !(1..=10_000).contains(&limit) {
        return err(40058, "limit must be 1..10000");
    }
    let offset: usize = match body["cursor"].as_str().unwrap_or("") {
        "" => 0,
        c => match c.strip_prefix("CUR").and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => return err(40058, "invalid cursor"),
        },
    };
    if let Some(r) = gate(&mut w, &q, "user/list_id", "all", offset / limit + 1) {
        return r;
    }
    let rows: Vec<Value> = w
        .users
        .iter()
        .flat_map(|u| u["department"].as_array().unwrap().iter().map(move |d| json!({"userid": u["userid"], "department": d})))
        .collect();
    let end = (offset + limit).min(rows.len());
    let next = match (end < rows.len(), w.common.knobs.repeat_cursor) {
        (false, _) => String::new(),
        (true, true) => format!("CUR{limit}"),
        (true, false) => format!("CUR{end}"),
    };
    ok(json!({"next_cursor": next, "dept_user": rows[offset.min(end)..end]}))
}

async fn user_get(State(w): State<Shared>, Query(q): Q) -> Response {
    let mut w = w.lock().unwrap();
    let Some(id) = q.get("userid").cloned() else { return err(40058, "userid is required") };
    if let Some(r) = gate(&mut w, &q, "user/get", &id, 1) {
        return r;
    }
    match w.users.iter().find(|u| u["userid"].as_str().is_some_and(|u| u.eq_ignore_ascii_case(&id))) {
        Some(u) => ok(answer(&w, u)),
        None => err(60111, "invalid userid"),
    }
}

async fn fallback(State(w): State<Shared>, method: Method, uri: Uri) -> Response {
    w.lock().unwrap().common.unexpected.push(format!("{method} {}", uri.path()));
    (StatusCode::NOT_FOUND, "404 Not Found").into_response()
}

impl FakeWeCom {
    pub fn start(world: World) -> FakeWeCom {
        Fake::serve(world, |world| {
            Router::new()
                .route("/cgi-bin/gettoken", get(gettoken))
                .route("/cgi-bin/department/list", get(department_list))
                .route("/cgi-bin/department/simplelist", get(department_simplelist))
                .route("/cgi-bin/department/get", get(department_get))
                .route("/cgi-bin/user/list", get(user_list))
                .route("/cgi-bin/user/list_id", post(user_list_id))
                .route("/cgi-bin/user/get", get(user_get))
                .fallback(fallback)
                .with_state(world)
        })
    }
}

/// A user as `user/get` returns it: no email or mobile, as for apps
/// created after 2022-06-20; `main` is the main department.
pub fn user(i: usize, depts: &[i64], main: i64) -> Value {
    let orders: Vec<i64> = depts.iter().map(|_| 0).collect();
    let leader: Vec<i64> = depts.iter().map(|_| 0).collect();
    json!({"userid": format!("wc{i}"), "name": format!("User {i}"), "department": depts, "order": orders,
           "position": "Engineer", "gender": "1", "is_leader_in_dept": leader, "direct_leader": [],
           "telephone": "", "alias": format!("alias{i}"), "status": 1, "main_department": main,
           "extattr": {"attrs": []}, "external_position": ""})
}

/// The company root (1) with 3 top departments, 3 children each and 2
/// grandchildren each (30 in all), plus a big department with 210 members.
/// User i < 60 is in department i % 30 and, every fourth one, also in the
/// next; user 5's main department is its second one; user 3 is also
/// directly in the root.
pub fn org() -> World {
    let mut w = World::default();
    w.departments.push((1, 0, "Company".into(), 100_000));
    let mut next = 2;
    let mut ids = Vec::new();
    let mut add = |w: &mut World, parent: i64, name: String, order: i64| {
        let id = next;
        next += 1;
        w.departments.push((id, parent, name, order));
        id
    };
    for a in 0..3 {
        let top = add(&mut w, 1, format!("Dept {a}"), 100_000_000 - a);
        ids.push(top);
        for b in 0..3 {
            let mid = add(&mut w, top, format!("Dept {a}.{b}"), 100_000_000 - b);
            ids.push(mid);
            for c in 0..2 {
                let leaf = add(&mut w, mid, format!("Dept {a}.{b}.{c}"), 100_000_000 - c);
                ids.push(leaf);
            }
        }
    }
    let big = add(&mut w, 1, "Big".into(), 1);
    for i in 0..60 {
        let mut depts = vec![ids[i % ids.len()]];
        if i % 4 == 1 {
            depts.push(ids[(i + 1) % ids.len()]);
        }
        if i == 3 {
            depts.push(1);
        }
        let main = if i == 5 { depts[1] } else { depts[0] };
        w.users.push(user(i, &depts, main));
    }
    for i in 60..270 {
        w.users.push(user(i, &[big], big));
    }
    w
}

/// `depts` departments and `users` users in the benchmark's shape.
#[allow(dead_code)] // benches/saas_fetch.rs
pub fn sized(depts: usize, users: usize) -> World {
    let (parents, members) = crate::fake::shape(depts, users);
    let id = |k: usize| 2 + k as i64;
    let mut w = World::default();
    w.departments.push((1, 0, "Company".into(), 100_000));
    for (k, p) in parents.iter().enumerate() {
        w.departments.push((id(k), p.map_or(1, id), format!("Dept {k}"), (depts - k) as i64));
    }
    for (i, ds) in members.iter().enumerate() {
        let ids: Vec<i64> = ds.iter().map(|&k| id(k)).collect();
        w.users.push(user(i, &ids, ids[0]));
    }
    w
}
