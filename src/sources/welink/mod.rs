//! Source `welink` (Huawei WeLink): the contact APIs with the token in
//! `x-wlk-Authorization` (docs/vendor-apis.md section 4).
//!
//! Departments: `v2/departments/list` per root, every page (`offset` is a
//! page number, `limit` 100). The root `0` cannot be recursed: its direct
//! children are listed (`recursiveflag=0`), then each child's subtree
//! (`recursiveflag=1`); any other root is listed recursively at once.
//! Users: `v1/user/users` per department and per root (direct members, by
//! `pageNo`, 50 a page), `source.concurrency` departments at once. A user
//! listed in several departments is one user; the department its record
//! names (`deptCode`) is the primary.

mod api;
mod config;
pub mod events;
mod mapping;

pub use config::*;

use super::saas::by_id;
use super::saas::pager::{Page, all_pages};
use super::saas::wire::{Item, text};
use super::saas::{Client, Token, Vendor, Verdict, by_status, envelope, request_token, split};
use super::{IdentitySource, Objects, SourceError};
use crate::model::{Department, Kind, Snapshot, Unreadable};
use crate::reconcile::only::Only;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::json;
use std::collections::HashSet;

const VENDOR: &str = "WeLink";
const TOKEN_PATH: &str = "/api/auth/v2/tickets";
const DEPT_LIST: &str = "/api/contact/v2/departments/list";
const USER_LIST: &str = "/api/contact/v1/user/users";
const USER_GET: &str = "/api/contact/v1/users";
const DEPT_PAGE: u64 = 100;
const USER_PAGE: u64 = 50;

pub struct WeLinkSource {
    config: WeLinkConfig,
    /// `[mapping]`: fields set by expressions over the records.
    mapping: crate::mapping::Mapping,
}

impl std::fmt::Debug for WeLinkSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeLinkSource").field("client_id", &self.config.client_id).finish()
    }
}

impl Vendor for WeLinkSource {
    fn name(&self) -> &'static str {
        VENDOR
    }

    fn fetch_token<'a>(&'a self, client: &'a Client) -> BoxFuture<'a, Result<Token, SourceError>> {
        Box::pin(async move {
            let body = json!({"client_id": self.config.client_id, "client_secret": self.config.client_secret.expose()});
            let req = client.raw(Method::POST, TOKEN_PATH).json(&body);
            request_token(client, self, TOKEN_PATH, req, "access_token", "expires_in").await
        })
    }

    fn authorize(&self, req: reqwest::RequestBuilder, token: &str) -> reqwest::RequestBuilder {
        let mut v = reqwest::header::HeaderValue::from_str(token).unwrap_or(reqwest::header::HeaderValue::from_static(""));
        v.set_sensitive(true);
        req.header("x-wlk-Authorization", v)
    }

    fn check(&self, status: u16, _headers: &HeaderMap, body: &[u8]) -> Verdict {
        // "501 第三方接口无权限": an API the app has no permission for.
        // Whether it comes as HTTP 501 or in the body is unverified: both are final.
        if status == 501 {
            return Verdict::Fatal { code: "501".into(), message: String::from_utf8_lossy(body).chars().take(200).collect() };
        }
        let (e, v) = match envelope::<api::Envelope>(status, body) {
            Ok(e) => e,
            Err(verdict) => return verdict,
        };
        let Some(code) = text(&e.code) else {
            return by_status(status, format!("HTTP {status}"), "no code in the answer".into());
        };
        let message = e.message.unwrap_or_default();
        match code.as_str() {
            "0" if (200..300).contains(&status) => Verdict::Ok(v),
            "48503" => Verdict::Throttled { code, message, wait: None },
            // Credentials, the lock after repeated failures, permissions: final.
            "10007" | "41403" | "41579" | "41580" | "47000" | "47001" | "501" => Verdict::Fatal { code, message },
            _ if message.contains("无权限") => Verdict::Fatal { code, message },
            // The token class: refresh once, retry once.
            c if c.len() == 5 && (c.starts_with("41") || c.starts_with("47")) => Verdict::TokenInvalid { code, message },
            _ => by_status(status, code, message),
        }
    }

    fn hint(&self, code: &str) -> Option<&'static str> {
        Some(match code {
            "10007" => {
                "the client id or secret is wrong: check source.client_id and source.client_secret (the WeLink open platform app's credentials)"
            }
            "41579" => "the client id is empty: check source.client_id",
            "41580" => "the client secret is empty: check source.client_secret (or client_secret_file)",
            "41403" => {
                "the app is locked after repeated failed logins: not retried (retrying keeps it locked); fix source.client_secret, wait for the lock to lift, then run again"
            }
            "47000" | "501" => {
                "the app lacks a contact permission: grant the contact read permission (通讯录读取) to the app on the WeLink open platform; the next run fetches a token that carries it"
            }
            "48503" => "rate limited: lower source.rate_limit (WeLink allows 40 requests/s and 1,500/min per API per client id)",
            _ => return None,
        })
    }
}

impl WeLinkSource {
    pub fn new(config: WeLinkConfig) -> Self {
        Self { config, mapping: Default::default() }
    }

    /// Fields set by `[mapping]`'s expressions over each record.
    pub fn mapped(mut self, mapping: crate::mapping::Mapping) -> Self {
        self.mapping = mapping;
        self
    }

    fn malformed(path: &str, what: String) -> SourceError {
        SourceError::Api { vendor: VENDOR, path: path.to_owned(), message: format!("unexpected answer: {what}") }
    }

    /// Every page of one department listing: direct children, or the
    /// whole subtree when `recursive`.
    async fn departments_of(&self, client: &Client, code: &str, recursive: bool) -> Result<Vec<Item<api::Department>>, SourceError> {
        all_pages(VENDOR, DEPT_LIST, 1u64, |page| async move {
            let q = [
                ("deptCode", code.to_owned()),
                ("recursiveflag", if recursive { "1" } else { "0" }.to_owned()),
                ("offset", page.to_string()),
                ("limit", DEPT_PAGE.to_string()),
            ];
            let build = |c: &Client| c.raw(Method::GET, DEPT_LIST).query(&q);
            let p: api::DepartmentPage = client.call(self, DEPT_LIST, &build).await?;
            let read = (page - 1) * DEPT_PAGE + p.department_info.len() as u64;
            let next = match api::count(&p.total_count) {
                Some(total) if read < total && p.department_info.is_empty() => {
                    return Err(Self::malformed(DEPT_LIST, format!("an empty page {page} of {code} though totalCount is {total}")));
                }
                Some(total) => (read < total).then_some(page + 1),
                // No total: a full page may have a next one.
                None => (p.department_info.len() as u64 == DEPT_PAGE).then_some(page + 1),
            };
            Ok(Page { items: p.department_info, next })
        })
        .await
    }

    /// Every department under the roots (the roots themselves are not
    /// departments), each once.
    async fn departments(&self, client: &Client) -> Result<(Vec<Department>, Vec<Unreadable>), SourceError> {
        let roots = &self.config.roots;
        let mut listings: Vec<Vec<Item<api::Department>>> = Vec::new();
        for root in roots {
            if root == "0" {
                // The organisation's root cannot be recursed: its children, then each subtree.
                let children = self.departments_of(client, root, false).await?;
                let codes: Vec<String> =
                    children.iter().filter_map(|d| if let Item::Ok(d, ..) = d { text(&d.dept_code) } else { None }).collect();
                listings.push(children);
                let subtrees: Vec<Vec<Item<api::Department>>> = futures::stream::iter(codes)
                    .map(|c| async move { self.departments_of(client, &c, true).await })
                    .buffered(self.config.concurrency.max(1))
                    .try_collect()
                    .await?;
                listings.extend(subtrees);
            } else {
                listings.push(self.departments_of(client, root, true).await?);
            }
        }
        let (departments, unreadable) = split(listings.into_iter().flatten().map(|d| mapping::department(d, roots, &self.mapping)));
        // Overlapping roots list a department twice: once is enough.
        let mut seen = HashSet::new();
        let departments = departments.into_iter().filter(|d| seen.insert(d.source_id.clone())).collect();
        Ok((departments, unreadable))
    }

    /// Every page of one department's members.
    async fn members(&self, client: &Client, dept: String) -> Result<Vec<(String, Item<api::User>)>, SourceError> {
        let dept = &dept;
        let items = all_pages(VENDOR, USER_LIST, 1u64, |page| async move {
            let q = [("deptCode", dept.clone()), ("pageNo", page.to_string()), ("pageSize", USER_PAGE.to_string())];
            let build = |c: &Client| c.raw(Method::GET, USER_LIST).query(&q);
            let p: api::UserPage = client.call(self, USER_LIST, &build).await?;
            let next = match (api::count(&p.pages), api::count(&p.total)) {
                (Some(pages), _) => (page < pages).then_some(page + 1),
                (None, Some(total)) => (page * USER_PAGE < total).then_some(page + 1),
                (None, None) => (p.data.len() as u64 == USER_PAGE).then_some(page + 1),
            };
            if next.is_some() && p.data.is_empty() {
                return Err(Self::malformed(USER_LIST, format!("an empty page {page} of {dept} before the last")));
            }
            Ok(Page { items: p.data, next })
        })
        .await?;
        Ok(items.into_iter().map(|u| (dept.clone(), u)).collect())
    }

    async fn fetch_all(&self) -> Result<Snapshot, SourceError> {
        let c = &self.config;
        let client = Client::new(VENDOR, &c.http)?;
        let client = &client;
        let (departments, unreadable_departments) = self.departments(client).await?;
        // Direct members of every department, and of each root itself.
        let mut listed: Vec<String> = c.roots.clone();
        listed.extend(departments.iter().map(|d| d.source_id.0.clone()));
        listed.extend(unreadable_departments.iter().filter_map(|u| u.source_id.as_ref()).map(|s| s.0.clone()));
        let lists: Vec<Vec<(String, Item<api::User>)>> =
            futures::stream::iter(listed).map(|d| self.members(client, d)).buffered(c.concurrency.max(1)).try_collect().await?;
        let (users, mut unreadable) = split(lists.into_iter().flatten().map(|(dept, u)| mapping::user(u, &dept, &self.mapping)));
        unreadable.extend(unreadable_departments);
        let mut users = super::merge_by_id(users);
        super::drop_root_memberships(&mut users, &c.roots);
        tracing::debug!(requests = client.requests(), tokens = client.token_fetches(), "WeLink fetch done");
        Ok(Snapshot { departments, users, scoped: true, unreadable, ..Snapshot::default() })
    }
}

impl WeLinkSource {
    /// The users named (`users?userId=`), and the department tree: WeLink
    /// has no one-department call, so the departments are listed (not
    /// their members), then narrowed to the ones above these objects.
    async fn fetch_by_id(&self, only: &Only) -> Result<Objects, SourceError> {
        let c = &self.config;
        let client = Client::new(VENDOR, &c.http)?;
        let client = &client;
        let mut raw = std::collections::BTreeMap::new();
        let mut items = Vec::new();
        for id in &only.users {
            let q = [("userId", id.to_string())];
            let build = |cl: &Client| cl.raw(Method::GET, USER_GET).query(&q);
            let answer: serde_json::Value = client.call(self, USER_GET, &build).await?;
            // The record: `data` (a list of one, as the lists, or the object itself); none: no such user.
            let record = match &answer["data"] {
                serde_json::Value::Array(a) => a.iter().find(|u| u["userId"] == id.as_str()).cloned(),
                d @ serde_json::Value::Object(_) if d["userId"] == id.as_str() => Some(d.clone()),
                _ => None,
            };
            // No record and no error: the answer's shape is not documented
            // for sure, so this is no proof the user is gone.
            let Some(record) = record else {
                return Err(SourceError::Api {
                    vendor: VENDOR,
                    path: USER_GET.to_owned(),
                    message: format!("no record for userId {id:?} in the answer"),
                });
            };
            let dept = record["deptCode"].as_str().unwrap_or_default().to_owned();
            let (r, item) = by_id::record::<api::User>(&record, "");
            raw.insert((Kind::User, id.clone()), r);
            items.push((dept, item));
        }
        let (mut users, mut unreadable) = split(items.into_iter().map(|(dept, u)| mapping::user(u, &dept, &self.mapping)));
        super::drop_root_memberships(&mut users, &c.roots);
        let (departments, bad) = self.departments(client).await?;
        // A user in a department outside the roots is not listed by a whole read.
        let listed: HashSet<&str> = departments.iter().map(|d| d.source_id.as_str()).collect();
        users.retain(|u| u.department_ids.is_empty() || u.department_ids.iter().any(|d| listed.contains(d.as_str())));
        unreadable.extend(bad);
        let snapshot = super::narrow(Snapshot { departments, users, scoped: true, unreadable, ..Snapshot::default() }, only);
        Ok(Objects { snapshot, raw, requests: Some(client.requests()), by_id: true })
    }
}

/// The event callback of a WeLink source with `[source.events]` (`None`
/// for another source, or without), or why its key cannot be used.
pub fn callback(source: &super::SourceConfig) -> Option<Result<events::Callback, &'static str>> {
    match source {
        super::SourceConfig::WeLink(c) => {
            let e = c.events.as_ref()?;
            Some(events::Callback::new(e.aes_key.as_ref().unwrap_or(&c.client_secret).expose()))
        }
        _ => None,
    }
}

impl IdentitySource for WeLinkSource {
    fn kind(&self) -> &'static str {
        "welink"
    }

    fn fetch_objects<'a>(&'a self, only: &'a Only) -> BoxFuture<'a, Result<Objects, SourceError>> {
        Box::pin(self.fetch_by_id(only))
    }

    fn fetch(&self) -> BoxFuture<'_, Result<Snapshot, SourceError>> {
        Box::pin(self.fetch_all())
    }
}

#[cfg(test)]
mod tests;
