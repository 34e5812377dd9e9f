//! Source `wecom` (企业微信): the contact APIs under `/cgi-bin/` with
//! `?access_token=` (docs/vendor-apis.md section 3).
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

mod api;
mod config;
pub mod events;
mod mapping;

pub use config::*;

use super::saas::by_id;
use super::saas::pager::{Page, all_pages};
use super::saas::wire::{Item, text, without_id};
use super::saas::{Client, Token, Vendor, Verdict, by_status, envelope, query_token, request_token, split};
use super::{IdentitySource, Objects, SourceError};
use crate::model::{Department, Kind, Snapshot, SourceId, Unreadable};
use crate::reconcile::only::Only;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;
use serde_json::json;
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
    /// `[scope] include_departments`: read only their subtrees (when
    /// `roots` is the whole organisation).
    include: Vec<i64>,
    /// `[mapping]`: fields set by expressions over the records.
    mapping: crate::mapping::Mapping,
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
        let (e, v) = match envelope::<api::Envelope>(status, body) {
            Ok(e) => e,
            Err(verdict) => return verdict,
        };
        let code = text(&e.errcode).unwrap_or_else(|| format!("HTTP {status}"));
        let message = e.errmsg.unwrap_or_else(|| "no errcode in the answer".into());
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
        Self { config, include: Vec::new(), mapping: Default::default() }
    }

    /// Fields set by `[mapping]`'s expressions over each record.
    pub fn mapped(mut self, mapping: crate::mapping::Mapping) -> Self {
        self.mapping = mapping;
        self
    }

    /// Read only these departments' subtrees (each one itself too) when
    /// `roots` is the whole organisation: what `[scope]
    /// include_departments` keeps anyway. Ids that are not numbers leave
    /// the fetch whole.
    pub fn narrowed_to(mut self, include: &[String]) -> Self {
        self.include = super::saas::config::integer_include(include);
        self
    }

    /// The departments whose subtrees are read, and whether they are the
    /// included departments (read as departments) rather than containers.
    fn roots(&self) -> (&[i64], bool) {
        super::saas::config::read_roots(&self.config.roots, &self.include)
    }

    async fn get<T: DeserializeOwned>(
        &self,
        client: &Client,
        path: &'static str,
        query: [(&'static str, String); 1],
    ) -> Result<T, SourceError> {
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
        // The configured roots are containers; included departments are not.
        let roots: HashSet<i64> = self.config.roots.iter().copied().collect();
        let (root_ids, narrowed) = self.roots();
        let left_out: HashSet<i64> = if narrowed { HashSet::new() } else { roots.clone() };
        let mut seen = HashSet::new();
        let mut rows: Vec<(i64, Option<Item<api::Department>>)> = Vec::new();
        for root in root_ids {
            let q = [("id", root.to_string())];
            let listed: Vec<(i64, Option<Item<api::Department>>)> = match self.config.api {
                Api::Simplelist => {
                    self.get::<api::SimpleList>(client, DEPT_SIMPLELIST, q).await?.department_id.into_iter().map(|d| (d.id, None)).collect()
                }
                Api::List => {
                    let list: api::DepartmentList = self.get(client, DEPT_LIST, q).await?;
                    let id = |d: &Item<api::Department>| match d {
                        Item::Ok(d, ..) => Some(d.id),
                        Item::Bad(b) => b.scalar("id").and_then(|i| i.parse().ok()),
                    };
                    let with_ids: Option<Vec<_>> = list.department.into_iter().map(|d| id(&d).map(|i| (i, Some(d)))).collect();
                    with_ids.ok_or_else(|| self.malformed(DEPT_LIST, "a department without an integer id"))?
                }
            };
            rows.extend(listed.into_iter().filter(|(id, _)| !left_out.contains(id) && seen.insert(*id)));
        }
        let rows: Vec<(i64, Item<api::Department>)> = futures::stream::iter(rows)
            .map(|(id, row)| async move {
                if let Some(row) = row {
                    return Ok((id, row));
                }
                let got: api::DepartmentGet = self.get(client, DEPT_GET, [("id", id.to_string())]).await?;
                match &got.department {
                    Item::Ok(d, ..) if d.id != id => Err(self.malformed(DEPT_GET, "no department with the id asked for")),
                    _ => Ok((id, got.department)),
                }
            })
            .buffered(self.config.concurrency.max(1))
            .try_collect()
            .await?;
        Ok(split(rows.into_iter().map(|(id, d)| mapping::department(id, d, &roots, &self.mapping))))
    }

    /// Users by `user/list_id` (every page) then `user/get` for each one
    /// in a department in scope; the rows without a userid, unreadable.
    async fn users_by_id(&self, client: &Client, scope: &HashSet<String>) -> Result<(Vec<Item<api::User>>, Vec<Unreadable>), SourceError> {
        let rows = all_pages("WeCom", USER_LIST_ID, String::new(), |cursor| async move {
            let body = json!({"cursor": cursor, "limit": self.config.page_size});
            let build = |c: &Client| c.raw(Method::POST, USER_LIST_ID).json(&body);
            let page: api::ListId = client.call(self, USER_LIST_ID, &build).await?;
            // An empty next_cursor ends the list.
            Ok(Page { items: page.dept_user, next: page.next_cursor.filter(|c| !c.is_empty()) })
        })
        .await?;
        let mut ids: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        // A row without a userid is reported as a user without an id (and
        // holds back disables and deletes).
        let mut anonymous = Vec::new();
        for row in rows {
            let row = match row {
                Item::Ok(row, ..) => row,
                Item::Bad(b) => {
                    anonymous.push(b.unreadable(Kind::User, "userid", &["department"]));
                    continue;
                }
            };
            let Some(user) = text(&row.userid) else {
                anonymous.push(without_id(Kind::User, "userid", &[("department", text(&row.department))]));
                continue;
            };
            // A row without a department is read: user/get says where it is.
            let in_scope = text(&row.department).is_none_or(|d| scope.contains(&d));
            if in_scope && seen.insert(user.clone()) {
                ids.push(user);
            }
        }
        let users: Vec<Item<api::User>> = futures::stream::iter(ids)
            .map(|id| self.get(client, USER_GET, [("userid", id)]))
            .buffered(self.config.concurrency.max(1))
            .try_collect()
            .await?;
        Ok((users, anonymous))
    }

    /// Users by `user/list`, one request per department.
    async fn users_by_department(&self, client: &Client, scope: &HashSet<String>) -> Result<Vec<Item<api::User>>, SourceError> {
        let mut listed: Vec<String> = scope.iter().cloned().collect();
        listed.sort();
        let lists: Vec<api::UserList> = futures::stream::iter(listed)
            .map(|d| self.get(client, USER_LIST, [("department_id", d)]))
            .buffered(self.config.concurrency.max(1))
            .try_collect()
            .await?;
        Ok(lists.into_iter().flat_map(|l| l.userlist).collect())
    }

    async fn fetch_all(&self) -> Result<Snapshot, SourceError> {
        let c = &self.config;
        let client = Client::new("WeCom", &c.http)?;
        let (departments, unreadable_departments) = self.departments(&client).await?;
        let mut scope: HashSet<String> = self.roots().0.iter().map(i64::to_string).collect();
        scope.extend(departments.iter().map(|d| d.source_id.0.clone()));
        // Members of a department that did not map are still read.
        scope.extend(unreadable_departments.iter().filter_map(|u| u.source_id.as_ref()).map(|s| s.0.clone()));
        let (items, anonymous) = match c.api {
            Api::Simplelist => self.users_by_id(&client, &scope).await?,
            Api::List => (self.users_by_department(&client, &scope).await?, Vec::new()),
        };
        let (users, mut unreadable) = split(items.into_iter().map(|u| mapping::user(u, &self.mapping)));
        unreadable.extend(anonymous);
        unreadable.extend(unreadable_departments);
        let mut users = super::merge_by_id(users);
        super::drop_root_memberships(&mut users, &self.config.roots.iter().map(i64::to_string).collect::<Vec<_>>());
        tracing::debug!(requests = client.requests(), tokens = client.token_fetches(), "WeCom fetch done");
        Ok(Snapshot { departments, users, scoped: true, unreadable, ..Snapshot::default() })
    }
}

/// The contact-change callback of a `wecom` source with `[source.events]`.
pub fn callback(source: &super::SourceConfig) -> Option<Result<events::Callback, &'static str>> {
    match source {
        super::SourceConfig::WeCom(c) => c.events.as_ref().map(|e| events::Callback::new(e.token.clone(), e.aes_key.expose(), &c.corp_id)),
        _ => None,
    }
}

/// WeCom's answer for a userid (60111) or department id (60123) it does
/// not have: the object is gone, not unreadable.
fn is_no_such(e: &SourceError) -> bool {
    matches!(e, SourceError::Api { message, .. } if message.starts_with("code 60111") || message.starts_with("code 60123"))
}

impl WeComSource {
    /// The users named (`user/get`), and the departments named and theirs
    /// with those above them up to a root (`department/get`).
    async fn fetch_by_id(&self, only: &Only) -> Result<Objects, SourceError> {
        let c = &self.config;
        let client = Client::new("WeCom", &c.http)?;
        let client = &client;
        let mut raw = std::collections::BTreeMap::new();
        let mut items = Vec::new();
        for id in &only.users {
            let answer: serde_json::Value = match self.get(client, USER_GET, [("userid", id.to_string())]).await {
                Ok(a) => a,
                // Gone from WeCom (a delete_user event names it): the plan judges it gone.
                Err(e) if is_no_such(&e) => continue,
                Err(e) => return Err(e),
            };
            let (r, item) = by_id::record::<api::User>(&answer, "");
            raw.insert((Kind::User, id.clone()), r);
            items.push(item);
        }
        let (mut users, unreadable) = split(items.into_iter().map(|u| mapping::user(u, &self.mapping)));
        super::drop_root_memberships(&mut users, &c.roots.iter().map(i64::to_string).collect::<Vec<_>>());
        let roots: HashSet<i64> = c.roots.iter().copied().collect();
        let start: Vec<SourceId> = only.departments.iter().chain(users.iter().flat_map(|u| &u.department_ids)).cloned().collect();
        let is_top = |d: &SourceId| d.as_str().parse::<i64>().map_or(true, |d| roots.contains(&d));
        let roots = &roots;
        let mut chain = by_id::chain(start, is_top, |id| async move {
            let dept = id.as_str().parse::<i64>().unwrap_or_default();
            let answer: serde_json::Value = match self.get(client, DEPT_GET, [("id", dept.to_string())]).await {
                Ok(a) => a,
                // Gone (a delete_party event names it): not read, the plan judges it gone.
                Err(e) if is_no_such(&e) => serde_json::Value::Null,
                Err(e) => return Err(e),
            };
            let (r, item) = by_id::record::<api::Department>(&answer, "/department");
            let sent = match &item {
                Item::Ok(d, ..) => d.parentid.filter(|p| *p != 0).map(|p| SourceId(p.to_string())),
                Item::Bad(_) => None,
            };
            let mapped = if answer.is_null() { by_id::gone(&id) } else { mapping::department(dept, item, roots, &self.mapping) };
            Ok((r, mapped, sent))
        })
        .await?;
        // Configured roots other than the whole company: only what is under them.
        let whole = c.roots == [1];
        let roots: Option<HashSet<SourceId>> = (!whole).then(|| c.roots.iter().map(|r| SourceId(r.to_string())).collect());
        chain.confine(&mut users, roots.as_ref());
        Ok(chain.objects(only, users, unreadable, raw, client.requests()))
    }
}

impl IdentitySource for WeComSource {
    fn kind(&self) -> &'static str {
        "wecom"
    }

    fn fetch(&self) -> BoxFuture<'_, Result<Snapshot, SourceError>> {
        Box::pin(self.fetch_all())
    }

    fn fetch_objects<'a>(&'a self, only: &'a Only) -> BoxFuture<'a, Result<Objects, SourceError>> {
        Box::pin(self.fetch_by_id(only))
    }
}

#[cfg(test)]
mod tests;
