//! A fast SCIM server in memory, on loopback: correct for what orgsync
//! uses (`attr eq "value"` filters, paging, PATCH with members add and
//! remove in both dialects, 409 on a taken userName, discovery), and quick
//! enough that orgsync, not the server, is what a run measures. Used by the
//! e2e benchmark and by the crash test at 20,000 users.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

#[derive(Default)]
pub struct Store {
    pub users: Vec<Option<Value>>,
    pub groups: Vec<Option<Value>>,
    by_username: HashMap<String, usize>,
    requests: HashMap<&'static str, usize>,
    /// Every request as (method, path, status), when asked for.
    log: Option<Vec<(String, String, u16)>>,
    /// Lists of users without a filter (the whole directory read).
    user_lists: usize,
}

pub type S = Arc<Mutex<Store>>;

fn count(s: &mut Store, what: &'static str) {
    *s.requests.entry(what).or_default() += 1;
}

fn err(status: StatusCode, detail: &str) -> Response {
    (
        status,
        axum::Json(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": status.as_u16().to_string(), "detail": detail}),
        ),
    )
        .into_response()
}

/// `attr eq "value"` filters (what orgsync sends).
fn matches(r: &Value, filter: &str) -> bool {
    let Some((attr, value)) = filter.split_once(" eq ") else { return false };
    let value: String = serde_json::from_str(value).unwrap_or_default();
    let eq = |v: &Value| v.as_str().is_some_and(|s| s.eq_ignore_ascii_case(&value));
    match attr.split_once('.') {
        Some((multi, sub)) if !attr.starts_with("urn:") => r[multi].as_array().is_some_and(|a| a.iter().any(|i| eq(&i[sub]))),
        _ => match attr.strip_prefix(&format!("{ENTERPRISE}:")) {
            Some(ext) => eq(&r[ENTERPRISE][ext]),
            None => eq(&r[attr]),
        },
    }
}

fn list(items: &[Option<Value>], q: &HashMap<String, String>) -> Response {
    let start: usize = q.get("startIndex").and_then(|s| s.parse().ok()).unwrap_or(1).max(1);
    let count: usize = q.get("count").and_then(|s| s.parse().ok()).unwrap_or(100).min(1000);
    let all: Vec<&Value> = items.iter().flatten().filter(|r| q.get("filter").is_none_or(|f| matches(r, f))).collect();
    let page: Vec<&Value> = all.iter().skip(start - 1).take(count).copied().collect();
    axum::Json(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": all.len(),
        "startIndex": start, "itemsPerPage": page.len(), "Resources": page}))
    .into_response()
}

fn set_path(r: &mut Value, path: &str, v: Option<Value>) {
    let (obj, key) = match path.strip_prefix(&format!("{ENTERPRISE}:")) {
        Some(ext) => {
            if !r[ENTERPRISE].is_object() {
                r[ENTERPRISE] = json!({});
            }
            (&mut r[ENTERPRISE], ext.to_owned())
        }
        None => match path.split_once('.') {
            Some((a, b)) => {
                if !r[a].is_object() {
                    r[a] = json!({});
                }
                (&mut r[a], b.to_owned())
            }
            None => (r, path.to_owned()),
        },
    };
    match v {
        Some(v) => obj[&key] = v,
        None => {
            obj.as_object_mut().map(|o| o.remove(&key));
        }
    }
}

fn patch(r: &mut Value, ops: &Value) {
    for op in ops["Operations"].as_array().into_iter().flatten() {
        let path = op["path"].as_str().unwrap_or_default();
        let kind = op["op"].as_str().unwrap_or_default().to_ascii_lowercase();
        if path == "members" || path.starts_with("members[") {
            let members = r["members"].as_array().cloned().unwrap_or_default();
            let mut members: Vec<Value> = members;
            match kind.as_str() {
                "add" => members.extend(op["value"].as_array().cloned().unwrap_or_default()),
                _ => {
                    let gone: Vec<String> = match path.strip_prefix("members[value eq ") {
                        Some(rest) => vec![serde_json::from_str(rest.trim_end_matches(']')).unwrap_or_default()],
                        None => {
                            op["value"].as_array().into_iter().flatten().filter_map(|m| m["value"].as_str().map(str::to_owned)).collect()
                        }
                    };
                    members.retain(|m| !gone.iter().any(|g| m["value"] == g.as_str()));
                }
            }
            r["members"] = Value::Array(members);
        } else if kind == "remove" {
            set_path(r, path, None);
        } else {
            set_path(r, path, Some(op["value"].clone()));
        }
    }
}

async fn users_get(State(s): State<S>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut s = s.lock().unwrap();
    count(&mut s, "GET");
    if !q.contains_key("filter") && q.get("startIndex").is_none_or(|i| i == "1") {
        s.user_lists += 1;
    }
    list(&s.users, &q)
}

async fn groups_get(State(s): State<S>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut s = s.lock().unwrap();
    count(&mut s, "GET");
    list(&s.groups, &q)
}

async fn users_post(State(s): State<S>, body: axum::body::Bytes) -> Response {
    let mut s = s.lock().unwrap();
    count(&mut s, "POST");
    let mut v: Value = serde_json::from_slice(&body).unwrap_or_default();
    let name = v["userName"].as_str().unwrap_or_default().to_ascii_lowercase();
    if s.by_username.contains_key(&name) {
        return err(StatusCode::CONFLICT, "userName is taken");
    }
    let i = s.users.len();
    v["id"] = json!(format!("U{i}"));
    s.by_username.insert(name, i);
    s.users.push(Some(v.clone()));
    (StatusCode::CREATED, axum::Json(v)).into_response()
}

async fn groups_post(State(s): State<S>, body: axum::body::Bytes) -> Response {
    let mut s = s.lock().unwrap();
    count(&mut s, "POST");
    let mut v: Value = serde_json::from_slice(&body).unwrap_or_default();
    let i = s.groups.len();
    v["id"] = json!(format!("G{i}"));
    s.groups.push(Some(v.clone()));
    (StatusCode::CREATED, axum::Json(v)).into_response()
}

fn index(id: &str) -> Option<usize> {
    id.get(1..)?.parse().ok()
}

async fn user_one(State(s): State<S>, method: axum::http::Method, Path(id): Path<String>, body: axum::body::Bytes) -> Response {
    let mut s = s.lock().unwrap();
    let m = match method {
        axum::http::Method::GET => "GET",
        axum::http::Method::PATCH => "PATCH",
        _ => "DELETE",
    };
    count(&mut s, m);
    let Some(i) = index(&id).filter(|i| s.users.get(*i).is_some_and(Option::is_some)) else { return err(StatusCode::NOT_FOUND, "no user") };
    if method == axum::http::Method::GET {
        return axum::Json(s.users[i].clone()).into_response();
    }
    if method == axum::http::Method::DELETE {
        s.users[i] = None;
        return StatusCode::NO_CONTENT.into_response();
    }
    let ops: Value = serde_json::from_slice(&body).unwrap_or_default();
    let u = s.users[i].as_mut().unwrap();
    patch(u, &ops);
    axum::Json(u.clone()).into_response()
}

async fn group_one(State(s): State<S>, method: axum::http::Method, Path(id): Path<String>, body: axum::body::Bytes) -> Response {
    let mut s = s.lock().unwrap();
    let m = match method {
        axum::http::Method::GET => "GET",
        axum::http::Method::PATCH => "PATCH",
        _ => "DELETE",
    };
    count(&mut s, m);
    let Some(i) = index(&id).filter(|i| s.groups.get(*i).is_some_and(Option::is_some)) else {
        return err(StatusCode::NOT_FOUND, "no group");
    };
    if method == axum::http::Method::GET {
        return axum::Json(s.groups[i].clone()).into_response();
    }
    if method == axum::http::Method::DELETE {
        s.groups[i] = None;
        return StatusCode::NO_CONTENT.into_response();
    }
    let ops: Value = serde_json::from_slice(&body).unwrap_or_default();
    patch(s.groups[i].as_mut().unwrap(), &ops);
    StatusCode::NO_CONTENT.into_response()
}

async fn spc() -> Response {
    axum::Json(json!({"patch": {"supported": true}, "filter": {"supported": true, "maxResults": 1000}, "bulk": {"supported": false}}))
        .into_response()
}

async fn resource_types() -> Response {
    axum::Json(json!({"Resources": [{"id": "User", "name": "User", "endpoint": "/Users", "schemaExtensions": [{"schema": ENTERPRISE, "required": false}]},
        {"id": "Group", "name": "Group", "endpoint": "/Groups"}]}))
    .into_response()
}

pub struct Server {
    pub base: String,
    pub store: S,
    _rt: tokio::runtime::Runtime,
}

/// Keep each request's method, path and status in the store's log.
async fn record(State(s): State<S>, req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let (method, path) = (req.method().to_string(), req.uri().path().to_owned());
    let resp = next.run(req).await;
    if let Some(log) = s.lock().unwrap().log.as_mut() {
        log.push((method, path, resp.status().as_u16()));
    }
    resp
}

impl Server {
    pub fn start() -> Server {
        Self::serve(Store::default())
    }

    /// A server that keeps a log of every request (see [`Server::log`]).
    #[allow(dead_code)]
    pub fn logged() -> Server {
        Self::serve(Store { log: Some(Vec::new()), ..Store::default() })
    }

    fn serve(store: Store) -> Server {
        let store: S = Arc::new(Mutex::new(store));
        let app = Router::new()
            .route("/v2/Users", get(users_get).post(users_post))
            .route("/v2/Users/{id}", get(user_one).patch(user_one).delete(user_one))
            .route("/v2/Groups", get(groups_get).post(groups_post))
            .route("/v2/Groups/{id}", get(group_one).patch(group_one).delete(group_one))
            .route("/v2/ServiceProviderConfig", get(spc))
            .route("/v2/ResourceTypes", get(resource_types))
            .layer(axum::middleware::from_fn_with_state(store.clone(), record))
            .with_state(store.clone());
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let base = format!("http://{}/v2", listener.local_addr().unwrap());
        rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
        Server { base, store, _rt: rt }
    }

    /// Every request so far as (method, path, status), for a [`Server::logged`] one.
    #[allow(dead_code)]
    pub fn log(&self) -> Vec<(String, String, u16)> {
        self.store.lock().unwrap().log.clone().unwrap_or_default()
    }

    /// Unfiltered lists of the users so far (each a whole read of them).
    #[allow(dead_code)]
    pub fn user_lists(&self) -> usize {
        self.store.lock().unwrap().user_lists
    }

    /// Requests by method since the last call.
    pub fn requests(&self) -> HashMap<&'static str, usize> {
        std::mem::take(&mut self.store.lock().unwrap().requests)
    }
}

impl Server {
    /// The users there now.
    pub fn users(&self) -> Vec<Value> {
        self.store.lock().unwrap().users.iter().flatten().cloned().collect()
    }

    /// The groups there now.
    pub fn groups(&self) -> Vec<Value> {
        self.store.lock().unwrap().groups.iter().flatten().cloned().collect()
    }
}
