//! Sources `feishu` and `lark` (one implementation; the default base URLs
//! differ): contact v3 with a tenant access token (docs/vendor-apis.md section 1).
//!
//! Departments: `departments/:root/children?fetch_child=true` per root,
//! every page (page_size 50). Users: `users/find_by_department` per
//! department (direct members), every page, `source.concurrency` at once.
//! A user listed in several departments is one user with the departments
//! merged; the primary is the one `orders[].is_primary_dept` marks.

mod api;
mod config;
pub mod events;
mod mapping;
pub mod stream;

pub use config::*;
use mapping::merge_users;

use super::saas::by_id;
use super::saas::pager::{Page, all_pages};
use super::saas::wire::{Item, text};
use super::saas::{Client, Token, Vendor, Verdict, by_status, envelope, request_token, split};
use super::{IdentitySource, Objects, SourceError};
use crate::model::{Kind, Snapshot, SourceId};
use crate::reconcile::only::Only;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;
use serde_json::json;
use std::collections::{BTreeMap, HashSet};

const PAGE_SIZE: &str = "50";

const TOKEN_PATH: &str = "/open-apis/auth/v3/tenant_access_token/internal";

impl Vendor for FeishuSource {
    fn name(&self) -> &'static str {
        self.config.vendor
    }

    fn fetch_token<'a>(&'a self, client: &'a Client) -> BoxFuture<'a, Result<Token, SourceError>> {
        Box::pin(async move {
            let body = json!({"app_id": self.config.app_id, "app_secret": self.config.app_secret.expose()});
            let req = client.raw(Method::POST, TOKEN_PATH).json(&body);
            request_token(client, self, TOKEN_PATH, req, "tenant_access_token", "expire").await
        })
    }

    fn authorize(&self, req: reqwest::RequestBuilder, token: &str) -> reqwest::RequestBuilder {
        let mut v =
            reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).unwrap_or(reqwest::header::HeaderValue::from_static(""));
        v.set_sensitive(true);
        req.header(reqwest::header::AUTHORIZATION, v)
    }

    fn check(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> Verdict {
        let (e, v) = match envelope::<api::Envelope>(status, body) {
            Ok(e) => e,
            Err(verdict) => return verdict,
        };
        let code = text(&e.code).unwrap_or_else(|| "-".into());
        let message = e.msg.unwrap_or_default();
        match code.as_str() {
            "0" if (200..300).contains(&status) => Verdict::Ok(v),
            "99991661" | "99991663" | "99991664" | "99991671" => Verdict::TokenInvalid { code, message },
            "99991400" => Verdict::Throttled { code, message, wait: crate::http_client::header_seconds(headers, "x-ogw-ratelimit-reset") },
            _ => by_status(status, code, message),
        }
    }

    fn hint(&self, code: &str) -> Option<&'static str> {
        Some(match code {
            "10003" => "check source.app_id and source.app_secret (the app's credentials page)",
            "10014" => "the app secret is wrong: check source.app_secret",
            "99991672" => "the app lacks a contact scope: grant the contact read scopes and publish a new version",
            "40004" | "40013" => "the department is outside the app's contact scope (range of data it may read)",
            _ => return None,
        })
    }
}

pub struct FeishuSource {
    config: FeishuConfig,
    /// `[scope] include_departments`: read only their subtrees (when
    /// `roots` is the whole tenant).
    include: Vec<String>,
    /// `[mapping]`: fields set by expressions over the records.
    mapping: crate::mapping::Mapping,
}

impl std::fmt::Debug for FeishuSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeishuSource").field("vendor", &self.config.vendor).field("app_id", &self.config.app_id).finish()
    }
}

impl FeishuSource {
    pub fn new(config: FeishuConfig) -> Self {
        Self { config, include: Vec::new(), mapping: Default::default() }
    }

    /// Fields set by `[mapping]`'s expressions over each record.
    pub fn mapped(mut self, mapping: crate::mapping::Mapping) -> Self {
        self.mapping = mapping;
        self
    }

    /// Read only these departments' subtrees (each department's own record
    /// too) instead of the whole tenant, when `roots` is the whole tenant:
    /// what `[scope] include_departments` keeps anyway.
    pub fn narrowed_to(mut self, include: &[String]) -> Self {
        self.include = include.to_vec();
        self
    }

    /// Every item of a paged list (`has_more` / `page_token`).
    async fn pages<T: DeserializeOwned>(
        &self,
        client: &Client,
        path: &str,
        query: Vec<(&'static str, String)>,
    ) -> Result<Vec<Item<T>>, SourceError> {
        all_pages(self.config.vendor, path, None, |token: Option<String>| {
            let mut q = query.clone();
            q.push(("page_size", PAGE_SIZE.into()));
            if let Some(t) = token {
                q.push(("page_token", t));
            }
            async move {
                let build = |c: &Client| c.raw(Method::GET, path).query(&q);
                let page: api::Paged<T> = client.call(self, path, &build).await?;
                let data = page.data;
                let items = data.items.unwrap_or_default();
                let next = match (data.has_more, data.page_token) {
                    (true, Some(t)) if !t.is_empty() => Some(Some(t)),
                    (true, _) => {
                        return Err(SourceError::Api {
                            vendor: self.config.vendor,
                            path: path.to_owned(),
                            message: "has_more without a page_token".into(),
                        });
                    }
                    (false, _) => None,
                };
                Ok(Page { items, next })
            }
        })
        .await
    }

    fn id_query(&self) -> Vec<(&'static str, String)> {
        vec![("department_id_type", self.config.department_id_type.clone()), ("user_id_type", self.config.user_id_type.clone())]
    }

    async fn fetch_all(&self) -> Result<Snapshot, SourceError> {
        let c = &self.config;
        let client = Client::new(c.vendor, &c.http)?;
        let dept_key = c.department_id_type.as_str();
        let mut departments = Vec::new();
        let mut unreadable_departments = Vec::new();
        // Included departments are real departments, not containers: read
        // their own records, and keep their direct members' membership.
        let narrowed = !self.include.is_empty() && c.roots.iter().all(|r| r == "0");
        let roots = if narrowed { &self.include } else { &c.roots };
        if narrowed {
            for id in roots {
                let path = format!("/open-apis/contact/v3/departments/{id}");
                let q = self.id_query();
                let build = |cl: &Client| cl.raw(Method::GET, &path).query(&q);
                let one: api::One = client.call(self, &path, &build).await?;
                match mapping::department(one.data.department, dept_key, "0", &self.mapping) {
                    Ok(d) => departments.push(d),
                    Err(u) => unreadable_departments.push(u),
                }
            }
        }
        for root in roots {
            let path = format!("/open-apis/contact/v3/departments/{root}/children");
            let mut q = self.id_query();
            q.push(("fetch_child", "true".into()));
            let items: Vec<Item<api::Department>> = self.pages(&client, &path, q).await?;
            let (ok, bad) =
                split(items.into_iter().map(|d| mapping::department(d, dept_key, if narrowed { "0" } else { root }, &self.mapping)));
            departments.extend(ok);
            unreadable_departments.extend(bad);
        }
        // Direct members of every department, and of each root itself.
        let mut listed: Vec<String> = roots.clone();
        listed.extend(departments.iter().map(|d| d.source_id.0.clone()));
        let mut seen = std::collections::HashSet::new();
        departments.retain(|d| seen.insert(d.source_id.clone()));
        let mut seen = std::collections::HashSet::new();
        listed.retain(|d| seen.insert(d.clone()));
        let client = &client;
        let lists: Vec<Vec<Item<api::User>>> = futures::stream::iter(listed)
            .map(|dept| async move {
                let mut q = self.id_query();
                q.push(("department_id", dept));
                self.pages(client, "/open-apis/contact/v3/users/find_by_department", q).await
            })
            .buffered(c.concurrency.max(1))
            .try_collect()
            .await?;
        tracing::debug!(requests = client.requests(), tokens = client.token_fetches(), "{} fetch done", c.vendor);
        let (mut users, mut unreadable) = merge_users(lists.into_iter().flatten(), &c.user_id_type, &self.mapping);
        if !narrowed {
            super::drop_root_memberships(&mut users, &c.roots);
        }
        unreadable.extend(unreadable_departments);
        Ok(Snapshot { departments, users, scoped: true, unreadable, ..Snapshot::default() })
    }
}

/// The HTTP callback of a `feishu` or `lark` source with `[source.events]`.
pub fn callback(source: &super::SourceConfig) -> Option<events::Callback> {
    match source {
        super::SourceConfig::Feishu(c) => {
            let e = c.events.as_ref()?;
            let token = e.verification_token.clone()?;
            Some(events::Callback::new(token, e.encrypt_key.clone(), &c.user_id_type, &c.department_id_type))
        }
        _ => None,
    }
}

impl FeishuSource {
    /// One record by id: `users/:id` or `departments/:id`, as sent and typed.
    async fn one<T: DeserializeOwned>(&self, client: &Client, path: &str, key: &str) -> Result<(serde_json::Value, Item<T>), SourceError> {
        let q = self.id_query();
        let build = |c: &Client| c.raw(Method::GET, path).query(&q);
        let answer: serde_json::Value = client.call(self, path, &build).await?;
        Ok(by_id::record(&answer, &format!("/data/{key}")))
    }

    /// The users named (`users/:id`), and the departments named and theirs
    /// with those above them up to a root (`departments/:id`).
    async fn fetch_by_id(&self, only: &Only) -> Result<Objects, SourceError> {
        let c = &self.config;
        let client = Client::new(c.vendor, &c.http)?;
        let mut raw = BTreeMap::new();
        let mut items = Vec::new();
        for id in &only.users {
            let (r, item) =
                self.one::<api::User>(&client, &format!("/open-apis/contact/v3/users/{}", by_id::segment(id.as_str())), "user").await?;
            raw.insert((Kind::User, id.clone()), r);
            items.push(item);
        }
        let (mut users, unreadable) = merge_users(items, &c.user_id_type, &self.mapping);
        let narrowed = !self.include.is_empty() && c.roots.iter().all(|r| r == "0");
        if !narrowed {
            super::drop_root_memberships(&mut users, &c.roots);
        }
        let start: Vec<SourceId> = only.departments.iter().chain(users.iter().flat_map(|u| &u.department_ids)).cloned().collect();
        let is_top = |d: &SourceId| d.as_str() == "0" || (!narrowed && c.roots.iter().any(|r| r == d.as_str()));
        let client = &client;
        let mut chain = by_id::chain(start, is_top, |id| async move {
            let (r, item) = self
                .one::<api::Department>(client, &format!("/open-apis/contact/v3/departments/{}", by_id::segment(id.as_str())), "department")
                .await?;
            let mut d = mapping::department(item, &c.department_id_type, "0", &self.mapping);
            let parent = d.as_ref().ok().and_then(|d| d.parent_id.clone());
            if let Ok(d) = &mut d
                && d.parent_id.as_ref().is_some_and(|p| !narrowed && c.roots.iter().any(|r| r == p.as_str()))
            {
                d.parent_id = None;
            }
            Ok((r, d, parent))
        })
        .await?;
        // Configured roots other than the whole tenant: only what is under them.
        let roots: Option<HashSet<SourceId>> =
            (!narrowed && c.roots.iter().any(|r| r != "0")).then(|| c.roots.iter().map(|r| SourceId::from(r.as_str())).collect());
        chain.confine(&mut users, roots.as_ref());
        Ok(chain.objects(only, users, unreadable, raw, client.requests()))
    }
}

impl IdentitySource for FeishuSource {
    fn kind(&self) -> &'static str {
        self.config.kind()
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
