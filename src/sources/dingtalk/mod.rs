//! Source `dingtalk`: the oapi contact APIs with `?access_token=`
//! (docs/vendor-apis.md section 2).
//!
//! Departments: `topapi/v2/department/listsubid` one level at a time from
//! each root (default `1`, the whole organisation), and
//! `topapi/v2/department/get` for each department's name and order.
//! Users: `topapi/v2/user/list` per department (direct members), every
//! page (cursor, size 100), `source.concurrency` departments at once. A
//! user in several departments is one user; the primary department is the
//! first of theirs by department order (DingTalk lists have no primary).
//! DingTalk lists carry no leavers: a user who left disappears, and the
//! target-only policy decides what happens to their account.

mod api;
mod config;
pub mod events;
mod mapping;
pub mod stream;

pub use config::*;

use super::saas::by_id;
use super::saas::pager::{Page, all_pages};
use super::saas::wire::{Item, Text, text};
use super::saas::{Client, Token, Vendor, Verdict, by_status, envelope, query_token, request_token, split};
use super::{IdentitySource, Objects, SourceError};
use crate::model::{Department, Kind, Snapshot, SourceId, Unreadable};
use crate::reconcile::only::Only;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use std::collections::{HashMap, HashSet};

const TOKEN_PATH: &str = "/gettoken";
const LISTSUBID: &str = "/topapi/v2/department/listsubid";
const DEPT_GET: &str = "/topapi/v2/department/get";
const USER_LIST: &str = "/topapi/v2/user/list";
const USER_GET: &str = "/topapi/v2/user/get";
const PAGE_SIZE: u64 = 100;

pub struct DingTalkSource {
    config: DingTalkConfig,
    /// `[scope] include_departments`: read only their subtrees (when
    /// `roots` is the whole organisation).
    include: Vec<i64>,
    /// `[mapping]`: fields set by expressions over the records.
    mapping: crate::mapping::Mapping,
}

impl std::fmt::Debug for DingTalkSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DingTalkSource").field("app_key", &self.config.app_key).finish()
    }
}

impl Vendor for DingTalkSource {
    fn name(&self) -> &'static str {
        "DingTalk"
    }

    fn fetch_token<'a>(&'a self, client: &'a Client) -> BoxFuture<'a, Result<Token, SourceError>> {
        Box::pin(async move {
            let q = [("appkey", self.config.app_key.as_str()), ("appsecret", self.config.app_secret.expose())];
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
        // The per-IP flood ban is not an errcode envelope. Retrying would
        // only extend it: fail the run, the next one starts clean.
        if e.status == Some(1111) {
            let wait = text(&e.wait).unwrap_or_else(|| "5".into());
            return Verdict::Fatal { code: "1111".into(), message: format!("this server's IP is banned for about {wait} minutes") };
        }
        let Some(errcode) = text(&e.errcode) else {
            return by_status(status, format!("HTTP {status}"), "no errcode in the answer".into());
        };
        // errcode 88 wraps the real reason in sub_code / sub_msg.
        let sub = text(&e.sub_code).filter(|s| s != "0");
        let (code, message) = match sub {
            Some(s) if errcode == "88" => (s, e.sub_msg.or(e.errmsg)),
            _ => (errcode, e.errmsg),
        };
        let message = message.unwrap_or_default();
        match code.as_str() {
            "0" if (200..300).contains(&status) => Verdict::Ok(v),
            "40014" | "42001" => Verdict::TokenInvalid { code, message },
            "90002" | "90018" | "90019" => Verdict::Throttled { code, message, wait: None },
            "-1" => Verdict::Transient { code, message },
            _ => by_status(status, code, message),
        }
    }

    fn hint(&self, code: &str) -> Option<&'static str> {
        Some(match code {
            "40096" | "40089" => {
                "the AppKey or AppSecret is wrong: check source.app_key and source.app_secret (the app's Credentials page)"
            }
            "40035" => "a required parameter is missing: check source.app_key and source.app_secret are set",
            "60011" => {
                "the app lacks a contact permission: grant \"Address book read-only\" (通讯录只读权限) and the email/mobile field permissions, then publish"
            }
            "60121" => "no such user in DingTalk (left, or a userid of another organisation)",
            "90020" => "the organisation's monthly API call quota is used up",
            "1111" => {
                "more than 10,000 calls in 20 s came from this IP (other tools on it?): lower source.rate_limit; the ban lifts after 5 minutes"
            }
            "22" | "404" => "unknown API: check source.base_url (the oapi host, https://oapi.dingtalk.com)",
            _ => return None,
        })
    }
}

impl DingTalkSource {
    pub fn new(config: DingTalkConfig) -> Self {
        Self { config, include: Vec::new(), mapping: Default::default() }
    }

    /// Fields set by `[mapping]`'s expressions over each record.
    pub fn mapped(mut self, mapping: crate::mapping::Mapping) -> Self {
        self.mapping = mapping;
        self
    }

    /// Read only these departments' subtrees (each one's own record too)
    /// when `roots` is the whole organisation: what `[scope]
    /// include_departments` keeps anyway. Ids that are not numbers leave
    /// the fetch whole.
    pub fn narrowed_to(mut self, include: &[String]) -> Self {
        self.include = super::saas::config::integer_include(include);
        self
    }

    /// The departments whose subtrees are read, and whether they are the
    /// included departments (real departments) rather than containers.
    fn roots(&self) -> (&[i64], bool) {
        super::saas::config::read_roots(&self.config.roots, &self.include)
    }

    /// `result` of one call.
    async fn post<T: DeserializeOwned>(&self, client: &Client, path: &'static str, body: impl Serialize + Sync) -> Result<T, SourceError> {
        let build = |c: &Client| c.raw(Method::POST, path).json(&body);
        let answer: api::Answer<T> = client.call(self, path, &build).await?;
        Ok(answer.result)
    }

    /// The ids of `dept`'s direct children.
    async fn children(&self, client: &Client, dept: i64) -> Result<Vec<i64>, SourceError> {
        let ids: api::SubIds = self.post(client, LISTSUBID, json!({"dept_id": dept})).await?;
        Ok(ids.dept_id_list)
    }

    /// One department (`Err` inside: a record that does not map, kept to be reported).
    async fn department(&self, client: &Client, id: i64, parent: Option<i64>) -> Result<Result<Department, Unreadable>, SourceError> {
        let d: Item<api::Department> = self.post(client, DEPT_GET, json!({"dept_id": id, "language": "zh_CN"})).await?;
        Ok(mapping::department(id, parent, d, &self.mapping))
    }

    /// Every department under the roots, one level at a time.
    async fn departments(&self, client: &Client) -> Result<(Vec<Department>, Vec<Unreadable>), SourceError> {
        let width = self.config.concurrency.max(1);
        let (root_ids, narrowed) = self.roots();
        let mut seen: HashSet<i64> = root_ids.iter().copied().collect();
        // Containers give their children no parent; included departments do.
        let containers: HashSet<i64> = if narrowed { HashSet::new() } else { seen.clone() };
        let roots = &containers;
        let mut level: Vec<i64> = root_ids.to_vec();
        let mut out = Vec::new();
        if narrowed {
            for &id in root_ids {
                let d: Item<api::Department> = self.post(client, DEPT_GET, json!({"dept_id": id, "language": "zh_CN"})).await?;
                let parent = match &d {
                    Item::Ok(d, ..) => d.parent_id.as_ref().and_then(Text::get).and_then(|p| p.parse::<i64>().ok()).filter(|p| *p != 1),
                    Item::Bad(_) => None,
                };
                out.push(mapping::department(id, parent, d, &self.mapping));
            }
        }
        while !level.is_empty() {
            let kids: Vec<(i64, Vec<i64>)> = futures::stream::iter(level)
                .map(|d| async move { Ok::<_, SourceError>((d, self.children(client, d).await?)) })
                .buffered(width)
                .try_collect()
                .await?;
            // A department seen twice (a cycle, or two overlapping roots) is read once.
            let next: Vec<(i64, Option<i64>)> = kids
                .into_iter()
                .flat_map(|(parent, ks)| ks.into_iter().map(move |k| (k, (!roots.contains(&parent)).then_some(parent))))
                .filter(|(k, _)| seen.insert(*k))
                .collect();
            level = next.iter().map(|(k, _)| *k).collect();
            let got: Vec<Result<Department, Unreadable>> =
                futures::stream::iter(next).map(|(k, parent)| self.department(client, k, parent)).buffered(width).try_collect().await?;
            out.extend(got);
        }
        Ok(split(out))
    }

    /// Every page of one department's direct members.
    async fn members(&self, client: &Client, dept: i64) -> Result<Vec<Item<api::User>>, SourceError> {
        all_pages("DingTalk", USER_LIST, 0i64, |cursor| async move {
            let body = json!({"dept_id": dept, "cursor": cursor, "size": PAGE_SIZE, "contain_access_limit": false, "language": "zh_CN"});
            let page: api::UserPage = self.post(client, USER_LIST, body).await?;
            let next = match (page.has_more, page.next_cursor) {
                (false, _) => None,
                (true, Some(next)) => Some(next),
                (true, None) => {
                    return Err(SourceError::Api {
                        vendor: "DingTalk",
                        path: USER_LIST.to_owned(),
                        message: "unexpected answer: has_more without a next_cursor".into(),
                    });
                }
            };
            Ok(Page { items: page.list, next })
        })
        .await
    }

    async fn fetch_all(&self) -> Result<Snapshot, SourceError> {
        let c = &self.config;
        let client = Client::new("DingTalk", &c.http)?;
        let client = &client;
        let (departments, unreadable_departments) = self.departments(client).await?;
        let (roots, narrowed) = self.roots();
        let mut listed: Vec<i64> = roots.to_vec();
        listed.extend(departments.iter().filter_map(|d| d.source_id.0.parse::<i64>().ok()));
        let mut seen = HashSet::new();
        listed.retain(|d| seen.insert(*d));
        let listed = listed;
        let lists: Vec<Vec<Item<api::User>>> =
            futures::stream::iter(listed).map(|d| self.members(client, d)).buffered(c.concurrency.max(1)).try_collect().await?;
        let order: HashMap<&str, i64> = departments.iter().map(|d| (d.source_id.0.as_str(), d.order)).collect();
        let (users, mut unreadable) = split(lists.into_iter().flatten().map(|u| mapping::user(u, &c.user_id_type, &order, &self.mapping)));
        unreadable.extend(unreadable_departments);
        let mut users = super::merge_by_id(users);
        if !narrowed {
            super::drop_root_memberships(&mut users, &self.config.roots.iter().map(i64::to_string).collect::<Vec<_>>());
        }
        tracing::debug!(requests = client.requests(), tokens = client.token_fetches(), "DingTalk fetch done");
        Ok(Snapshot { departments, users, scoped: true, unreadable, ..Snapshot::default() })
    }
}

impl DingTalkSource {
    /// `result` of one call, as sent and typed.
    async fn one<T: DeserializeOwned>(
        &self,
        client: &Client,
        path: &'static str,
        body: serde_json::Value,
    ) -> Result<(serde_json::Value, Item<T>), SourceError> {
        let build = |c: &Client| c.raw(Method::POST, path).json(&body);
        let answer: serde_json::Value = client.call(self, path, &build).await?;
        Ok(by_id::record(&answer, "/result"))
    }

    /// The users named (`user/get`, by userid), and the departments named
    /// and theirs with those above them up to a root (`department/get`).
    async fn fetch_by_id(&self, only: &Only) -> Result<Objects, SourceError> {
        let c = &self.config;
        let client = Client::new("DingTalk", &c.http)?;
        let client = &client;
        let mut raw = std::collections::BTreeMap::new();
        let mut items = Vec::new();
        for id in &only.users {
            let (r, item) = match self.one::<api::User>(client, USER_GET, json!({"userid": id.as_str(), "language": "zh_CN"})).await {
                Ok(found) => found,
                // Gone (a user_leave_org event names it): the plan judges it gone.
                Err(e) if is_no_such(&e) => continue,
                Err(e) => return Err(e),
            };
            raw.insert((Kind::User, id.clone()), r);
            items.push(item);
        }
        let listed = |i: &Item<api::User>| match i {
            Item::Ok(u, ..) => u.dept_id_list.iter().filter_map(Text::get).map(SourceId).collect(),
            Item::Bad(_) => Vec::new(),
        };
        let (roots, narrowed) = self.roots();
        let containers: HashSet<i64> = if narrowed { HashSet::new() } else { roots.iter().copied().collect() };
        let start: Vec<SourceId> = only.departments.iter().cloned().chain(items.iter().flat_map(listed)).collect();
        let is_top = |d: &SourceId| d.as_str().parse::<i64>().map_or(true, |d| d == 1 || containers.contains(&d));
        let containers = &containers;
        let mut chain = by_id::chain(start, is_top, |id| async move {
            let dept = id.as_str().parse::<i64>().unwrap_or_default();
            let (r, item) = match self.one::<api::Department>(client, DEPT_GET, json!({"dept_id": dept, "language": "zh_CN"})).await {
                Ok(found) => found,
                // Gone (an org_dept_remove event names it): not read, the plan judges it gone.
                Err(e) if is_no_such(&e) => return Ok((serde_json::Value::Null, by_id::gone(&id), None)),
                Err(e) => return Err(e),
            };
            let parent = match &item {
                Item::Ok(d, ..) => d.parent_id.as_ref().and_then(Text::get).and_then(|p| p.parse::<i64>().ok()),
                Item::Bad(_) => None,
            };
            let sent = parent.filter(|p| *p != 1).map(|p| SourceId(p.to_string()));
            Ok((r, mapping::department(dept, parent.filter(|p| *p != 1 && !containers.contains(p)), item, &self.mapping), sent))
        })
        .await?;
        let order: HashMap<&str, i64> = chain.departments.iter().map(|d| (d.source_id.as_str(), d.order)).collect();
        let (mut users, unreadable) = split(items.into_iter().map(|u| mapping::user(u, "userid", &order, &self.mapping)));
        if !narrowed {
            super::drop_root_memberships(&mut users, &c.roots.iter().map(i64::to_string).collect::<Vec<_>>());
        }
        // Configured roots other than the whole organisation: only what is under them.
        let roots: Option<HashSet<SourceId>> =
            (!narrowed && containers.iter().any(|r| *r != 1)).then(|| containers.iter().map(|r| SourceId(r.to_string())).collect());
        chain.confine(&mut users, roots.as_ref());
        Ok(chain.objects(only, users, unreadable, raw, client.requests()))
    }
}

/// The event callback of a `dingtalk` source with `[source.events]` (the
/// receiver: the AppKey).
pub fn callback(source: &super::SourceConfig) -> Option<Result<events::Callback, &'static str>> {
    match source {
        super::SourceConfig::DingTalk(c) => match c.events.as_ref()? {
            config::Events::Http(e) => Some(events::Callback::new(e.token.clone(), e.aes_key.expose(), &c.app_key)),
            config::Events::Stream { .. } => None,
        },
        _ => None,
    }
}

/// DingTalk's answer for a userid (60121, 找不到该用户) or department id
/// (60003, 部门不存在) it does not have: the object is gone.
fn is_no_such(e: &SourceError) -> bool {
    matches!(e, SourceError::Api { message, .. } if message.starts_with("code 60121") || message.starts_with("code 60003"))
}

impl IdentitySource for DingTalkSource {
    fn kind(&self) -> &'static str {
        "dingtalk"
    }

    fn fetch(&self) -> BoxFuture<'_, Result<Snapshot, SourceError>> {
        Box::pin(self.fetch_all())
    }

    /// By id where users are keyed by `userid` (what `user/get` takes);
    /// keyed by `unionid`, the whole source is read.
    fn fetch_objects<'a>(&'a self, only: &'a Only) -> BoxFuture<'a, Result<Objects, SourceError>> {
        if self.config.user_id_type == "userid" { Box::pin(self.fetch_by_id(only)) } else { Box::pin(super::narrowed(self.fetch(), only)) }
    }
}

#[cfg(test)]
mod tests;
