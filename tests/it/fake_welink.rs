//! A fake Huawei WeLink open platform following docs/vendor-apis.md sections 4
//! and 8: `POST /api/auth/v2/tickets` with a JSON body; the token in the
//! `x-wlk-Authorization` header (no "Bearer"); business errors behind HTTP
//! 200 with a string `code` on token and department answers and an integer
//! `code` on user lists; `departments/list` paged by `offset` (a page
//! number) and `limit` at most 100 with `totalCount`, the root `0` never
//! recursed; `user/users` paged by `pageNo`/`pageSize` at most 50 with
//! `pages`/`total` and `pageSize` as a string; 48503 for throttling; a
//! client locked (41403) after repeated wrong secrets. Every request is
//! logged; unexpected ones are kept (and answered with an error).

use crate::fake::{Common, Fake, Gate};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const CLIENT_ID: &str = "20190828163922073733756";
/// 32 characters: the event callback's AES-256-GCM key too.
pub const CLIENT_SECRET: &str = "fake-welink-secret-never-logged!";

#[derive(Default)]
pub struct World {
    /// code, father code ("0" for top level), Chinese name, orderNo.
    pub departments: Vec<(String, String, String, i64)>,
    /// A user record as `user/users` returns it, and the departments it is
    /// listed in (its `deptCode` first).
    pub users: Vec<(Value, Vec<String>)>,
    /// Wrong secrets before the client is locked (41403); `None`: never.
    pub lock_after: Option<usize>,
    wrong_secrets: usize,
    pub common: Common,
}

pub type FakeWeLink = Fake<World>;

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

fn err(code: &str, message: &str) -> Response {
    Json(json!({"code": code, "message": message})).into_response()
}

async fn tickets(State(w): State<Shared>, Json(body): Json<Value>) -> Response {
    let mut w = w.lock().unwrap();
    let id = body["client_id"].as_str().unwrap_or_default();
    let secret = body["client_secret"].as_str().unwrap_or_default();
    let refuse = |w: &mut World, code: &str, message: &str| {
        w.common.log.push((std::time::Instant::now(), "token refused".into()));
        err(code, message)
    };
    if w.lock_after.is_some_and(|n| w.wrong_secrets >= n) {
        return refuse(&mut w, "41403", "The account is locked due to multiple authentication failures.");
    }
    if id.is_empty() {
        return refuse(&mut w, "41579", "client_id is empty");
    }
    if secret.is_empty() {
        return refuse(&mut w, "41580", "client_secret is empty");
    }
    if id != CLIENT_ID || secret != CLIENT_SECRET {
        w.wrong_secrets += 1;
        return refuse(&mut w, "10007", "client_id or client_secret is incorrect");
    }
    let t = w.common.issue_token("wlk-");
    Json(json!({"code": "0", "message": "ok", "access_token": t, "expires_in": w.common.ttl()})).into_response()
}

/// The token, throttling and failure checks of every data API; `int_code`
/// for the APIs whose envelope carries an integer code.
fn gate(w: &mut World, headers: &HeaderMap, what: &str, dept: &str, page: usize, int_code: bool) -> Option<Response> {
    let token = headers.get("x-wlk-Authorization").and_then(|v| v.to_str().ok());
    let refused = w.common.gate(token, what, dept, page)?;
    let code = |c: &str| if int_code { json!(c.parse::<i64>().unwrap()) } else { json!(c) };
    Some(match refused {
        Gate::Missing => Json(json!({"code": code("47101"), "message": "token format error"})).into_response(),
        Gate::Invalid | Gate::Expired => Json(json!({"code": code("41500"), "message": "token error"})).into_response(),
        Gate::Throttled => Json(json!({"code": code("48503"), "message": "The API call frequency exceeds the limit."})).into_response(),
        Gate::Fail => (StatusCode::INTERNAL_SERVER_ERROR, "<html>500 Internal Server Error</html>").into_response(),
    })
}

fn number(q: &HashMap<String, String>, k: &str, default: usize) -> Option<usize> {
    q.get(k).map_or(Some(default), |v| v.parse().ok())
}

/// The descendants of `code`, parents before children.
fn descendants<'a>(w: &'a World, code: &str) -> Vec<&'a (String, String, String, i64)> {
    let mut out = Vec::new();
    let mut level = vec![code.to_owned()];
    while !level.is_empty() {
        let next: Vec<&(String, String, String, i64)> = w.departments.iter().filter(|d| level.contains(&d.1)).collect();
        level = next.iter().map(|d| d.0.clone()).collect();
        out.extend(next);
    }
    out
}

async fn departments(State(w): State<Shared>, headers: HeaderMap, Query(q): Q, uri: Uri) -> Response {
    let mut w = w.lock().unwrap();
    let code = q.get("deptCode").cloned().unwrap_or_default();
    let (Some(page), Some(limit), Some(flag)) = (number(&q, "offset", 1), number(&q, "limit", 100), q.get("recursiveflag")) else {
        w.common.unexpected.push(format!("departments without offset/limit/recursiveflag: {uri}"));
        return err("48001", "parameter error");
    };
    if page == 0 || limit == 0 || limit > 100 || !["0", "1"].contains(&flag.as_str()) {
        w.common.unexpected.push(format!("departments with a bad parameter: {uri}"));
        return err("48001", "parameter error: limit must be 1..100");
    }
    if let Some(r) = gate(&mut w, &headers, "departments", &code, page, false) {
        return r;
    }
    if code == "0" && flag == "1" {
        w.common.unexpected.push("the root 0 recursed".into());
        return err("48001", "the level-0 department cannot be queried recursively");
    }
    if code != "0" && !w.departments.iter().any(|d| d.0 == code) {
        return err("48002", "department does not exist");
    }
    let all: Vec<&(String, String, String, i64)> =
        if flag == "1" { descendants(&w, &code) } else { w.departments.iter().filter(|d| d.1 == code).collect() };
    let from = ((page - 1) * limit).min(all.len());
    let to = (from + limit).min(all.len());
    let info: Vec<Value> = all[from..to]
        .iter()
        .map(|(c, f, name, order)| {
            let level = 1 + descendants_depth(&w, c);
            json!({"deptCode": c, "deptNameCn": name, "deptNameEn": format!("{name} (en)"), "fatherCode": f,
                   "deptLevel": level.to_string(), "orderNo": order})
        })
        .collect();
    Json(json!({"code": "0", "message": "OK", "offset": page, "limit": limit, "totalCount": all.len(), "departmentInfo": info}))
        .into_response()
}

/// How deep `code` is (top level 1).
fn descendants_depth(w: &World, code: &str) -> usize {
    let mut depth = 0;
    let mut at = code.to_owned();
    while let Some(d) = w.departments.iter().find(|d| d.0 == at) {
        depth += 1;
        at = d.1.clone();
    }
    depth
}

async fn users(State(w): State<Shared>, headers: HeaderMap, Query(q): Q, uri: Uri) -> Response {
    let mut w = w.lock().unwrap();
    let code = q.get("deptCode").cloned().unwrap_or_default();
    let (Some(page), Some(size)) = (number(&q, "pageNo", 1), number(&q, "pageSize", 10)) else {
        w.common.unexpected.push(format!("users with a bad page: {uri}"));
        return Json(json!({"code": 48001, "message": "parameter error"})).into_response();
    };
    if page == 0 || size == 0 || size > 50 {
        w.common.unexpected.push(format!("users with pageSize over 50: {uri}"));
        return Json(json!({"code": 48001, "message": "pageSize must be 1..50"})).into_response();
    }
    if let Some(r) = gate(&mut w, &headers, "users", &code, page, true) {
        return r;
    }
    let members: Vec<&Value> = w.users.iter().filter(|(_, ds)| ds.contains(&code)).map(|(u, _)| u).collect();
    let pages = members.len().div_ceil(size).max(1);
    let from = ((page - 1) * size).min(members.len());
    let to = (from + size).min(members.len());
    Json(json!({"code": 0, "message": "OK", "pageNo": page, "pages": pages, "pageSize": size.to_string(),
                "total": members.len(), "data": members[from..to]}))
    .into_response()
}

/// `GET users?userId=`: one user, answered as the lists are (`data`, a
/// list of one); an unknown id: an empty list.
async fn one_user(State(w): State<Shared>, headers: HeaderMap, Query(q): Q) -> Response {
    let mut w = w.lock().unwrap();
    let Some(id) = q.get("userId").cloned() else {
        w.common.unexpected.push("users without userId".into());
        return Json(json!({"code": 48001, "message": "parameter error"})).into_response();
    };
    if let Some(r) = gate(&mut w, &headers, "user", &id, 1, true) {
        return r;
    }
    let found: Vec<Value> = w.users.iter().filter(|(u, _)| u["userId"] == id.as_str()).map(|(u, _)| u.clone()).collect();
    Json(json!({"code": 0, "message": "OK", "pageNo": 1, "pages": 1, "pageSize": "10", "total": found.len(), "data": found}))
        .into_response()
}

async fn fallback(State(w): State<Shared>, method: Method, uri: Uri) -> Response {
    w.lock().unwrap().common.unexpected.push(format!("{method} {uri}"));
    (StatusCode::NOT_FOUND, Json(json!({"code": "404", "message": "Not Found"}))).into_response()
}

impl FakeWeLink {
    pub fn start(world: World) -> FakeWeLink {
        Fake::serve(world, |world| {
            Router::new()
                .route("/api/auth/v2/tickets", post(tickets))
                .route("/api/contact/v2/departments/list", get(departments))
                .route("/api/contact/v1/user/users", get(users))
                .route("/api/contact/v1/users", get(one_user))
                .fallback(fallback)
                .with_state(world)
        })
    }
}

/// A user as `user/users` lists it; `status` is `userStatus`.
pub fn user(i: usize, dept: &str, status: &str) -> Value {
    json!({"userStatus": status, "userId": format!("user{i}@welink"), "deptCode": dept, "deptNameCn": "部门",
           "deptNameEn": "Dept", "mobileNumber": format!("+86-158{i:08}"), "phoneNumber": format!("+86-158{i:08}"),
           "landlineNumber": "0755-88888888", "userNameCn": format!("用户{i}"), "userNameEn": format!("user {i}"),
           "sex": "M", "corpUserId": format!("{}", 36000 + i), "userEmail": format!("user{i}@example.test")})
}

/// An org 3 levels deep: 3 top departments, 2 children each, 2
/// grandchildren each (21 in all, codes 1001..) plus a big department (code
/// 1022) with 130 members (three pages of 50). User i < 40 is in
/// department i % 21 and, every
/// fifth one, also in the next; users 1, 2 and 4 have statuses 1, 2 and 4
/// (not active), the rest 3.
pub fn org() -> World {
    let mut w = World::default();
    let mut codes = Vec::new();
    let mut n = 0;
    let mut add = |w: &mut World, parent: &str, name: String| {
        n += 1;
        let code = format!("{}", 1000 + n);
        w.departments.push((code.clone(), parent.to_owned(), name, n));
        code
    };
    for a in 0..3 {
        let top = add(&mut w, "0", format!("部门{a}"));
        codes.push(top.clone());
        for b in 0..2 {
            let mid = add(&mut w, &top, format!("部门{a}.{b}"));
            codes.push(mid.clone());
            for c in 0..2 {
                codes.push(add(&mut w, &mid, format!("部门{a}.{b}.{c}")));
            }
        }
    }
    let big = add(&mut w, "0", "大部门".into());
    for i in 0..40 {
        let mut depts = vec![codes[i % codes.len()].clone()];
        if i % 5 == 0 {
            depts.push(codes[(i + 1) % codes.len()].clone());
        }
        let status = match i {
            1 => "1",
            2 => "2",
            4 => "4",
            _ => "3",
        };
        w.users.push((user(i, &depts[0], status), depts));
    }
    for i in 40..170 {
        w.users.push((user(i, &big, "3"), vec![big.clone()]));
    }
    w
}

/// `depts` departments and `users` users in the benchmark's shape.
#[allow(dead_code)] // benches/saas_fetch.rs
pub fn sized(depts: usize, users: usize) -> World {
    let (parents, members) = crate::fake::shape(depts, users);
    let code = |k: usize| format!("{}", 100_000 + k);
    let mut w = World::default();
    for (k, p) in parents.iter().enumerate() {
        w.departments.push((code(k), p.map_or("0".into(), code), format!("Dept {k}"), k as i64));
    }
    for (i, ds) in members.iter().enumerate() {
        let ds: Vec<String> = ds.iter().map(|&k| code(k)).collect();
        w.users.push((user(i, &ds[0], "3"), ds));
    }
    w
}
