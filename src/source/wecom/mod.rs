//! Source `wecom` (企业微信): the contact APIs under `/cgi-bin/` with
//! `?access_token=` (docs/sources.md section 3).
//!
//! `source.api` picks one of two paths:
//! - `simplelist` (default; the only one open to contact-sync IPs added
//!   since 2022-08-15): `department/simplelist` per root, `department/get`
//!   per department for its name, `user/list_id` (cursor, up to 10,000
//!   rows a page) and `user/get` per user;
//! - `list` (tenants that still allow it): `department/list` per root and
//!   `user/list` per department (direct members; `fetch_child` is not used).
//!
//! A user in several departments is one user; `main_department` is the
//! primary. `status` 1 is active; 2 (disabled), 4 (not activated) and 5
//! (left) are inactive. WeCom orders larger-first; orgsync's order is
//! smaller-first, so the order is negated.

mod config;
mod mapping;

pub use config::*;
use mapping::*;

use super::saas::pager::{Page, all_pages};
use super::saas::{
    Client, Record, Token, Vendor, Verdict, absent_fields, by_status, json_body, query_token, request_token, split, text, without_id,
};
use super::{IdentitySource, SourceError};
use crate::model::{Department, Kind, Snapshot, SourceId, Unreadable, User, UserField};
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use std::collections::HashSet;

const TOKEN_PATH: &str = "/cgi-bin/gettoken";
const DEPT_SIMPLELIST: &str = "/cgi-bin/department/simplelist";
const DEPT_GET: &str = "/cgi-bin/department/get";
const DEPT_LIST: &str = "/cgi-bin/department/list";
const USER_LIST_ID: &str = "/cgi-bin/user/list_id";
const USER_GET: &str = "/cgi-bin/user/get";
const USER_LIST: &str = "/cgi-bin/user/list";

pub struct WeComSource {
    config: WeComConfig,
}

impl std::fmt::Debug for WeComSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeComSource").field("corp_id", &self.config.corp_id).field("api", &self.config.api).finish()
    }
}

impl Vendor for WeComSource {
    fn name(&self) -> &'static str {
        "WeCom"
    }

    fn fetch_token<'a>(&'a self, client: &'a Client) -> BoxFuture<'a, Result<Token, SourceError>> {
        Box::pin(async move {
            let q = [("corpid", self.config.corp_id.as_str()), ("corpsecret", self.config.corp_secret.expose())];
            let req = client.raw(Method::GET, TOKEN_PATH).query(&q);
            request_token(client, self, TOKEN_PATH, req, "access_token", "expires_in").await
        })
    }

    fn authorize(&self, req: reqwest::RequestBuilder, token: &str) -> reqwest::RequestBuilder {
        query_token(req, token)
    }

    fn check(&self, status: u16, _headers: &HeaderMap, body: &[u8]) -> Verdict {
        let v = match json_body(status, body) {
            Ok(v) => v,
            Err(verdict) => return verdict,
        };
        let code = v.get("errcode").and_then(text).unwrap_or_else(|| format!("HTTP {status}"));
        let message = v.get("errmsg").and_then(Value::as_str).unwrap_or("no errcode in the answer").to_owned();
        match code.as_str() {
            "0" if (200..300).contains(&status) => Verdict::Ok(v),
            "40014" | "42001" | "41001" => Verdict::TokenInvalid { code, message },
            "45009" | "45033" => Verdict::Throttled { code, message, wait: None },
            "-1" => Verdict::Transient { code, message },
            _ => by_status(status, code, message),
        }
    }

    fn hint(&self, code: &str) -> Option<&'static str> {
        Some(match code {
            "40001" => {
                "the secret is wrong: check source.corp_secret (the Contact Sync secret: Security and Management → Management Tools → Contact Sync)"
            }
            "40013" => "the corp id is wrong: check source.corp_id (My Company → Company Information → Company ID)",
            "60020" => "this server's IP is not trusted by the app: add it to the trusted IPs of Contact Sync (or of the app)",
            "60011" => "the secret may not read this department or user: use the Contact Sync secret, or widen the app's visibility scope",
            "48002" => {
                "the API is closed to this secret or IP (WeCom closed department/list and user/list to new contact-sync IPs in 2022): set source.api = \"simplelist\""
            }
            "48009" => "this API needs the Contact Sync secret, not an app secret: check source.corp_secret",
            _ => return None,
        })
    }
}

impl WeComSource {
    pub fn new(config: WeComConfig) -> Self {
        Self { config }
    }

    async fn get(&self, client: &Client, path: &'static str, query: [(&'static str, String); 1]) -> Result<Value, SourceError> {
        let build = |c: &Client| c.raw(Method::GET, path).query(&query);
        client.call(self, path, &build).await
    }

    fn malformed(&self, path: &str, what: &str) -> SourceError {
        SourceError::Api { vendor: "WeCom", path: path.to_owned(), message: format!("unexpected answer: {what}") }
    }

    /// The departments under the roots (the roots themselves left out:
    /// their children are top level). With `simplelist`, names come from
    /// `department/get`, one request per department.
    async fn departments(&self, client: &Client) -> Result<(Vec<Department>, Vec<Unreadable>), SourceError> {
        let roots: HashSet<i64> = self.config.roots.iter().copied().collect();
        let (path, key) = match self.config.api {
            Api::Simplelist => (DEPT_SIMPLELIST, "department_id"),
            Api::List => (DEPT_LIST, "department"),
        };
        let mut seen = HashSet::new();
        let mut rows = Vec::new();
        for root in &self.config.roots {
            let v = self.get(client, path, [("id", root.to_string())]).await?;
            let list = v[key].as_array().ok_or_else(|| self.malformed(path, &format!("no {key}")))?;
            for d in list {
                let id = d["id"].as_i64().ok_or_else(|| self.malformed(path, "a department id that is not an integer"))?;
                if !roots.contains(&id) && seen.insert(id) {
                    rows.push(d.clone());
                }
            }
        }
        if self.config.api == Api::Simplelist {
            rows = futures::stream::iter(rows)
                .map(|d| async move {
                    let v = self.get(client, DEPT_GET, [("id", d["id"].to_string())]).await?;
                    match &v["department"] {
                        dept if dept["id"] == d["id"] => Ok(dept.clone()),
                        _ => Err(self.malformed(DEPT_GET, "no department with the id asked for")),
                    }
                })
                .buffered(self.config.concurrency.max(1))
                .try_collect()
                .await?;
        }
        Ok(split(rows.iter().map(|d| {
            let r = Record::new(d);
            let dept = Department {
                source_id: SourceId(d["id"].to_string()),
                parent_id: d["parentid"].as_i64().filter(|p| !roots.contains(p) && *p != 0).map(|p| SourceId(p.to_string())),
                name: r.required("name").unwrap_or_default(),
                order: -d["order"].as_i64().unwrap_or(0),
                leader_ids: Vec::new(),
            };
            r.finish(Kind::Department, &dept.source_id).map(|()| dept)
        })))
    }

    /// Users by `user/list_id` (every page) then `user/get` for each one
    /// in a department in scope.
    async fn users_by_id(&self, client: &Client, scope: &HashSet<String>) -> Result<Vec<Value>, SourceError> {
        let rows = all_pages("WeCom", USER_LIST_ID, String::new(), |cursor| async move {
            let body = json!({"cursor": cursor, "limit": self.config.page_size});
            let build = |c: &Client| c.raw(Method::POST, USER_LIST_ID).json(&body);
            let v = client.call(self, USER_LIST_ID, &build).await?;
            let items = v["dept_user"].as_array().ok_or_else(|| self.malformed(USER_LIST_ID, "no dept_user"))?.clone();
            // An empty next_cursor ends the list.
            let next = v["next_cursor"].as_str().filter(|c| !c.is_empty()).map(str::to_owned);
            Ok(Page { items, next })
        })
        .await?;
        let mut ids: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        // A row without a userid is kept as it is: mapped, it is reported
        // as a user without an id (and holds back disables and deletes).
        let mut anonymous: Vec<Value> = Vec::new();
        for row in rows {
            let Some(user) = row["userid"].as_str().filter(|u| !u.is_empty()) else {
                anonymous.push(row);
                continue;
            };
            // A row without a department is read: user/get says where it is.
            let in_scope = row.get("department").and_then(text).is_none_or(|d| scope.contains(&d));
            if in_scope && seen.insert(user.to_owned()) {
                ids.push(user.to_owned());
            }
        }
        let mut users: Vec<Value> = futures::stream::iter(ids)
            .map(|id| self.get(client, USER_GET, [("userid", id)]))
            .buffered(self.config.concurrency.max(1))
            .try_collect()
            .await?;
        users.extend(anonymous);
        Ok(users)
    }

    /// Users by `user/list`, one request per department.
    async fn users_by_department(&self, client: &Client, scope: &HashSet<String>) -> Result<Vec<Value>, SourceError> {
        let mut listed: Vec<String> = scope.iter().cloned().collect();
        listed.sort();
        let lists: Vec<Value> = futures::stream::iter(listed)
            .map(|d| self.get(client, USER_LIST, [("department_id", d)]))
            .buffered(self.config.concurrency.max(1))
            .try_collect()
            .await?;
        Ok(lists.into_iter().flat_map(|v| v["userlist"].as_array().cloned().unwrap_or_default()).collect())
    }

    async fn fetch_all(&self) -> Result<Snapshot, SourceError> {
        let c = &self.config;
        let client = Client::new("WeCom", &c.http)?;
        let (departments, unreadable_departments) = self.departments(&client).await?;
        let mut scope: HashSet<String> = c.roots.iter().map(i64::to_string).collect();
        scope.extend(departments.iter().map(|d| d.source_id.0.clone()));
        // Members of a department that did not map are still read.
        scope.extend(unreadable_departments.iter().filter_map(|u| u.source_id.as_ref()).map(|s| s.0.clone()));
        let items = match c.api {
            Api::Simplelist => self.users_by_id(&client, &scope).await?,
            Api::List => self.users_by_department(&client, &scope).await?,
        };
        let (users, mut unreadable) = split(items.iter().map(user));
        unreadable.extend(unreadable_departments);
        let mut users = super::merge_by_id(users);
        super::drop_root_memberships(&mut users, &self.config.roots.iter().map(i64::to_string).collect::<Vec<_>>());
        tracing::debug!(requests = client.requests(), tokens = client.token_fetches(), "WeCom fetch done");
        Ok(Snapshot { departments, users, scoped: true, unreadable })
    }
}

impl IdentitySource for WeComSource {
    fn kind(&self) -> &'static str {
        "wecom"
    }

    fn fetch(&self) -> BoxFuture<'_, Result<Snapshot, SourceError>> {
        Box::pin(self.fetch_all())
    }
}

#[cfg(test)]
mod tests;
