//! Source `entra`: Microsoft Entra ID through Microsoft Graph v1.0
//! (docs/vendor-apis.md section 5), with delta runs.
//!
//! Token: the client-credentials grant at
//! `{authority_host}/{tenant}/oauth2/v2.0/token`, scope `{graph_host}/.default`.
//!
//! A **full fetch** reads every user (`/users`, `$select`, `$top=999`,
//! following `@odata.nextLink` verbatim) and the departments
//! (`departments.from`):
//! - `groups`: security groups (`/groups`, with `group_filter`) and each
//!   group's direct members (users and nested groups, told apart by
//!   `@odata.type`);
//! - `administrative_units`: the same for administrative units;
//! - `department_attribute`: the users' `department` values, no request.
//!
//! With `delta` on, a full fetch first asks for delta links that start
//! "now" (`/users/delta?$deltatoken=latest`, and `/groups/delta` for groups
//! without a filter), so nothing changed during the listing is missed. It
//! keeps what it read (in the mirror). A later run follows the delta links
//! and applies the changes to what it kept: new users in full, changed
//! users as partial records merged by id, `@removed` `changed`
//! (soft-deleted) -> inactive, `deleted` -> gone; group renames and
//! membership changes (`members@delta`). Administrative units and filtered
//! groups are read in full on every run. A full fetch happens again when
//! `full_every` has passed, the delta token expired (`syncStateNotFound`),
//! or nothing was kept. A delta round that fails part-way keeps nothing:
//! the old links stay.

mod api;
mod config;
mod mapping;

pub use config::*;

use super::saas::by_id;
use super::saas::pager::{Page, all_pages};
use super::saas::wire::{Item, Text};
use super::saas::{Client, Token, Vendor, Verdict, by_status, envelope, request_token};
use super::{Fetched, IdentitySource, Objects, SourceError};
use crate::model::{Kind, Snapshot, Unreadable};
use crate::reconcile::only::Only;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use mapping::State;
use reqwest::Method;
use reqwest::header::HeaderMap;
use std::sync::Mutex;

const VENDOR: &str = "Entra";
const USERS: &str = "/v1.0/users";
const USERS_DELTA: &str = "/v1.0/users/delta";
const GROUPS: &str = "/v1.0/groups";
const GROUPS_DELTA: &str = "/v1.0/groups/delta";
const UNITS: &str = "/v1.0/directory/administrativeUnits";
const TOP: &str = "999";
const MEMBER_OF: &str = "/v1.0/{kind}/{id}/memberOf";

pub struct EntraSource {
    config: EntraConfig,
    /// `[mapping]`: fields set by expressions over the records.
    mapping: crate::mapping::Mapping,
}

impl std::fmt::Debug for EntraSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntraSource").field("tenant", &self.config.tenant).field("client_id", &self.config.client_id).finish()
    }
}

impl Vendor for EntraSource {
    fn name(&self) -> &'static str {
        VENDOR
    }

    fn fetch_token<'a>(&'a self, client: &'a Client) -> BoxFuture<'a, Result<Token, SourceError>> {
        Box::pin(async move {
            let c = &self.config;
            let url = format!("{}/{}/oauth2/v2.0/token", c.authority_host, c.tenant);
            let scope = format!("{}/.default", client.base());
            let form = [
                ("client_id", c.client_id.as_str()),
                ("client_secret", c.client_secret.expose()),
                ("scope", scope.as_str()),
                ("grant_type", "client_credentials"),
            ];
            let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
            let req =
                client.raw_url(Method::POST, &url).header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded").body(body);
            request_token(client, self, "/oauth2/v2.0/token", req, "access_token", "expires_in").await
        })
    }

    fn authorize(&self, req: reqwest::RequestBuilder, token: &str) -> reqwest::RequestBuilder {
        let mut v =
            reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).unwrap_or(reqwest::header::HeaderValue::from_static(""));
        v.set_sensitive(true);
        req.header(reqwest::header::AUTHORIZATION, v)
    }

    fn check(&self, status: u16, _headers: &HeaderMap, body: &[u8]) -> Verdict {
        if (200..300).contains(&status) {
            return match envelope::<api::Envelope>(status, body) {
                Ok((_, v)) => Verdict::Ok(v),
                Err(verdict) => verdict,
            };
        }
        let e = match envelope::<api::Envelope>(status, body) {
            Ok((e, _)) => e,
            Err(_) if status == 410 => return Verdict::Fatal { code: restart_code(status, String::new()), message: "Gone".into() },
            Err(verdict) => return verdict,
        };
        let (code, message) = match e.error {
            // OAuth (the token endpoint): the AADSTS code says what is wrong.
            Some(api::ErrorField::OAuth(kind)) => {
                let code = e.error_codes.first().map_or(kind, |c| format!("AADSTS{c}"));
                (code, e.error_description.unwrap_or_default().lines().next().unwrap_or_default().to_owned())
            }
            Some(api::ErrorField::Graph { code, message }) => {
                (code.unwrap_or_else(|| format!("HTTP {status}")), message.unwrap_or_default())
            }
            None => (format!("HTTP {status}"), String::new()),
        };
        match (status, code.as_str()) {
            (401, "InvalidAuthenticationToken") => Verdict::TokenInvalid { code, message },
            _ if starts_again(status, &code) => Verdict::Fatal { code: restart_code(status, code), message },
            (403, _) => Verdict::Fatal { code, message },
            _ => by_status(status, code, message),
        }
    }

    fn hint(&self, code: &str) -> Option<&'static str> {
        Some(match code {
            "AADSTS7000215" => "the client secret is wrong: check source.client_secret (the secret's Value, not its ID)",
            "AADSTS7000222" => "the client secret has expired: create a new one for the app and update source.client_secret",
            "AADSTS700016" => "no app with this client id in the tenant: check source.client_id and source.tenant",
            "AADSTS90002" | "AADSTS900023" => "no such tenant: check source.tenant (its GUID or <name>.onmicrosoft.com)",
            "Authorization_RequestDenied" => {
                "the app lacks a permission or its admin consent: grant the application permissions User.Read.All (and GroupMember.Read.All for groups, AdministrativeUnit.Read.All for administrative units), then grant admin consent"
            }
            _ => return None,
        })
    }
}

/// Graph's documented "start again" answers to a delta round: the token
/// expired (`syncStateNotFound`, after 7 days), is not valid any more
/// (`syncStateInvalid`), or the service asks for a full resync (410 Gone,
/// `resyncRequired`). Each means a full fetch, never deletions.
fn starts_again(status: u16, code: &str) -> bool {
    matches!((status, code), (400, "syncStateNotFound" | "syncStateInvalid") | (410, _))
}

/// The code a "start again" answer is reported with: a 410 without one of
/// its own is `resyncRequired`, so [`is_stale_delta`] knows it.
fn restart_code(status: u16, code: String) -> String {
    if status == 410 && !code.starts_with("resync") { "resyncRequired (HTTP 410)".to_owned() } else { code }
}

/// Whether an error is Graph saying to start the delta again.
fn is_stale_delta(e: &SourceError) -> bool {
    const CODES: [&str; 3] = ["code syncStateNotFound", "code syncStateInvalid", "code resync"];
    matches!(e, SourceError::Api { message, .. } if CODES.iter().any(|c| message.starts_with(c)))
}

impl EntraSource {
    pub fn new(config: EntraConfig) -> Self {
        Self { config, mapping: Default::default() }
    }

    /// Fields set by `[mapping]`'s expressions over each record.
    pub fn mapped(mut self, mapping: crate::mapping::Mapping) -> Self {
        self.mapping = mapping;
        self
    }

    /// The user properties every request selects, with `user_properties`.
    fn user_select(&self) -> String {
        std::iter::once(api::USER_SELECT).chain(self.config.user_properties.iter().map(String::as_str)).collect::<Vec<_>>().join(",")
    }

    fn url(&self, client: &Client, path: &str, query: &[(&str, &str)]) -> String {
        let q = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(query).finish();
        format!("{}{path}?{q}", client.base())
    }

    /// Every page from `first`, following `@odata.nextLink` verbatim;
    /// the final `@odata.deltaLink` when there is one. `path` names the
    /// endpoint in errors.
    async fn pages<T: serde::de::DeserializeOwned>(
        &self,
        client: &Client,
        path: &'static str,
        first: String,
    ) -> Result<(Vec<Item<T>>, Option<String>), SourceError> {
        let delta = Mutex::new(None);
        let delta_ref = &delta;
        let items = all_pages(VENDOR, path, first, |url: String| async move {
            let build = |c: &Client| c.raw_url(Method::GET, &url);
            let page: api::Page<T> = client.call(self, path, &build).await?;
            if page.delta_link.is_some() {
                *delta_ref.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = page.delta_link;
            }
            Ok(Page { items: page.value, next: page.next_link })
        })
        .await?;
        Ok((items, delta.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner)))
    }

    /// A delta link that starts now (`$deltatoken=latest`).
    async fn latest(&self, client: &Client, path: &'static str, select: &str) -> Result<String, SourceError> {
        let first = self.url(client, path, &[("$select", select), ("$deltatoken", "latest")]);
        let (_, link): (Vec<Item<api::User>>, _) = self.pages(client, path, first).await?;
        link.ok_or_else(|| SourceError::Api { vendor: VENDOR, path: path.to_owned(), message: "no @odata.deltaLink in the answer".into() })
    }

    /// Groups delta applies when departments are unfiltered groups.
    fn groups_by_delta(&self) -> bool {
        self.config.delta && self.config.departments_from == DepartmentsFrom::Groups && self.config.group_filter.is_none()
    }

    /// Groups (or administrative units) and their direct members, in full.
    async fn read_groups(&self, client: &Client, state: &mut State, unreadable: &mut Vec<Unreadable>) -> Result<(), SourceError> {
        let (path, mut query) = match self.config.departments_from {
            DepartmentsFrom::DepartmentAttribute => return Ok(()),
            DepartmentsFrom::Groups => (GROUPS, vec![("$select", "id,displayName,securityEnabled"), ("$top", TOP)]),
            DepartmentsFrom::AdministrativeUnits => (UNITS, vec![("$select", "id,displayName"), ("$top", TOP)]),
        };
        let filter = match &self.config.group_filter {
            Some(f) => format!("securityEnabled eq true and ({f})"),
            None => "securityEnabled eq true".to_owned(),
        };
        if path == GROUPS {
            query.push(("$filter", filter.as_str()));
        }
        let (groups, _) = self.pages::<api::Group>(client, path, self.url(client, path, &query)).await?;
        state.groups.clear();
        let mut ids = Vec::new();
        for g in groups {
            if let Item::Ok(g, ..) = &g
                && let Some(id) = g.id.as_ref().and_then(Text::get)
            {
                ids.push(id);
            }
            unreadable.extend(mapping::apply_group(state, g));
        }
        let members_path: &'static str =
            if path == GROUPS { "/v1.0/groups/{id}/members" } else { "/v1.0/directory/administrativeUnits/{id}/members" };
        let members: Vec<(String, Vec<Item<api::Member>>)> = futures::stream::iter(ids)
            .map(|id| async move {
                let first = self.url(client, &format!("{path}/{id}/members"), &[("$select", "id"), ("$top", TOP)]);
                let (m, _) = self.pages::<api::Member>(client, members_path, first).await?;
                Ok::<_, SourceError>((id, m))
            })
            .buffered(self.config.concurrency.max(1))
            .try_collect()
            .await?;
        for (id, list) in members {
            let g = state.groups.entry(id).or_default();
            for m in list.into_iter().filter_map(|m| if let Item::Ok(m, ..) = m { Some(m) } else { None }) {
                let Some(mid) = m.id.as_ref().and_then(Text::get) else { continue };
                if m.is_user() {
                    g.users.insert(mid);
                } else if m.is_group() {
                    g.groups.insert(mid);
                }
            }
        }
        Ok(())
    }

    /// Everything, from the start.
    async fn full(&self, client: &Client) -> Result<(State, Vec<Unreadable>), SourceError> {
        let mut state =
            State { version: mapping::VERSION, full_at: chrono::Utc::now().timestamp(), select: self.user_select(), ..State::default() };
        let mut unreadable = Vec::new();
        if self.config.delta {
            // Links that start now, before the listing: what changes while it runs comes again.
            state.users_delta = Some(self.latest(client, USERS_DELTA, &self.user_select()).await?);
            if self.groups_by_delta() {
                state.groups_delta = Some(self.latest(client, GROUPS_DELTA, "displayName,securityEnabled,members").await?);
            }
        }
        // With `$expand` Graph pages at most 100 users, whatever `$top` says:
        // the links are followed all the same.
        let select = self.user_select();
        let first = self.url(client, USERS, &[("$select", &select), ("$expand", api::MANAGER_EXPAND), ("$top", TOP)]);
        let (users, _) = self.pages::<api::User>(client, USERS, first).await?;
        for mut u in users {
            // Expanded: a user it lists no manager for has none.
            if let crate::sources::saas::wire::Item::Ok(u, _) = &mut u {
                u.manager.get_or_insert(None);
            }
            unreadable.extend(mapping::apply_user(&mut state, u));
        }
        self.read_groups(client, &mut state, &mut unreadable).await?;
        Ok((state, unreadable))
    }

    /// The changes since `state`'s links, applied to it.
    async fn delta(&self, client: &Client, mut state: State) -> Result<(State, Vec<Unreadable>), SourceError> {
        let mut unreadable = Vec::new();
        let link = state.users_delta.clone().unwrap_or_default();
        let (users, next) = self.pages::<api::User>(client, USERS_DELTA, link).await?;
        let changed = users.len();
        for u in users {
            unreadable.extend(mapping::apply_user(&mut state, u));
        }
        state.users_delta = next.or(state.users_delta);
        if let Some(link) = state.groups_delta.clone() {
            let (groups, next) = self.pages::<api::Group>(client, GROUPS_DELTA, link).await?;
            for g in groups {
                unreadable.extend(mapping::apply_group(&mut state, g));
            }
            state.groups_delta = next.or(state.groups_delta);
        } else {
            self.read_groups(client, &mut state, &mut unreadable).await?;
        }
        tracing::info!(users_changed = changed, "Entra: a delta round");
        Ok((state, unreadable))
    }

    /// The state kept last time, if a delta round may start from it.
    fn usable(&self, kept: Option<Vec<u8>>) -> Option<State> {
        if !self.config.delta {
            return None;
        }
        let state: State = serde_json::from_slice(&kept?).ok()?;
        let age = chrono::Utc::now().timestamp() - state.full_at;
        let fresh = age >= 0 && (age as u64) < self.config.full_every.as_secs();
        let links = state.users_delta.is_some() && (state.groups_delta.is_some() == self.groups_by_delta());
        if state.version != mapping::VERSION || !links {
            return None;
        }
        // Properties added to (or taken from) `user_properties`: the kept
        // users and links lack them.
        if state.select != self.user_select() && !(state.select.is_empty() && self.config.user_properties.is_empty()) {
            tracing::info!("Entra: source.user_properties changed since the last full fetch: a full fetch");
            return None;
        }
        if !fresh {
            tracing::info!(age_seconds = age, "Entra: full_every has passed since the last full fetch: a full fetch");
            return None;
        }
        Some(state)
    }

    async fn fetch_kept(&self, kept: Option<Vec<u8>>) -> Result<Fetched, SourceError> {
        let client = Client::new(VENDOR, &self.config.http)?;
        let (state, unreadable) = match self.usable(kept) {
            Some(state) => match self.delta(&client, state).await {
                Ok(r) => r,
                Err(e) if is_stale_delta(&e) => {
                    tracing::warn!(error = %e, "Entra: Graph asks to start the delta again; a full fetch instead");
                    self.full(&client).await?
                }
                Err(e) => return Err(e),
            },
            None => self.full(&client).await?,
        };
        tracing::debug!(requests = client.requests(), tokens = client.token_fetches(), "Entra fetch done");
        let snapshot: Snapshot = mapping::snapshot(&state, self.config.departments_from, unreadable, &self.mapping);
        let kept = if self.config.delta { serde_json::to_vec(&state).ok() } else { None };
        Ok(Fetched { snapshot, state: kept })
    }
}

impl EntraSource {
    /// One record by `url` (`path` names it in errors), as sent and typed.
    async fn one<T: serde::de::DeserializeOwned>(
        &self,
        client: &Client,
        path: &str,
        url: &str,
    ) -> Result<(serde_json::Value, Item<T>), SourceError> {
        let build = |c: &Client| c.raw_url(Method::GET, url);
        let answer: serde_json::Value = client.call(self, path, &build).await?;
        Ok(by_id::record(&answer, ""))
    }

    /// The groups (or administrative units) `what` (`users` or `groups`)
    /// `id` is a direct member of, as the full fetch would list them
    /// (groups: security groups only).
    async fn member_of(&self, client: &Client, what: &str, id: &str, state: &mut State) -> Result<Vec<String>, SourceError> {
        let (kind, select) = match self.config.departments_from {
            DepartmentsFrom::AdministrativeUnits => ("administrativeUnit", "id,displayName"),
            _ => ("group", "id,displayName,securityEnabled"),
        };
        let path = format!("/v1.0/{what}/{}/memberOf/microsoft.graph.{kind}", by_id::segment(id));
        let first = self.url(client, &path, &[("$select", select), ("$top", TOP)]);
        let (groups, _) = self.pages::<api::Group>(client, MEMBER_OF, first).await?;
        let mut ids = Vec::new();
        for g in groups {
            if let Item::Ok(g, ..) = &g {
                let security = g.security_enabled.flatten().unwrap_or(false);
                if kind == "group" && !security {
                    continue;
                }
                ids.extend(g.id.as_ref().and_then(Text::get));
            }
            // Only a group's name and flags: its members are this walk's.
            if let Some(u) = mapping::apply_group(state, g) {
                tracing::debug!(problem = %u.message, "Entra: a group of memberOf that does not map");
            }
        }
        Ok(ids)
    }

    /// The users named (`/users/{id}`), the departments named
    /// (`/groups/{id}`, `/directory/administrativeUnits/{id}`), and the
    /// groups each is a direct member of, walked up by `memberOf` (units
    /// are flat): the state a full fetch holds for them, mapped alike.
    async fn fetch_by_id(&self, only: &Only) -> Result<Objects, SourceError> {
        let from = self.config.departments_from;
        let client = Client::new(VENDOR, &self.config.http)?;
        let client = &client;
        let mut state = State { version: mapping::VERSION, ..State::default() };
        let mut unreadable = Vec::new();
        let mut raw = std::collections::BTreeMap::new();
        // (group, a member of it: id and whether a group)
        let mut wanted: Vec<(String, Option<(String, bool)>)> = Vec::new();
        for id in &only.users {
            let url = self.url(client, &format!("{USERS}/{}", by_id::segment(id.as_str())), &[("$select", &self.user_select())]);
            let (r, item) = self.one::<api::User>(client, USERS, &url).await?;
            raw.insert((Kind::User, id.clone()), r);
            unreadable.extend(mapping::apply_user(&mut state, item));
            if from != DepartmentsFrom::DepartmentAttribute {
                let groups = self.member_of(client, "users", id.as_str(), &mut state).await?;
                wanted.extend(groups.into_iter().map(|g| (g, Some((id.to_string(), false)))));
            }
        }
        let (path, select) = match from {
            DepartmentsFrom::AdministrativeUnits => (UNITS, "id,displayName"),
            _ => (GROUPS, "id,displayName,securityEnabled"),
        };
        for id in only.departments.iter().filter(|_| from != DepartmentsFrom::DepartmentAttribute) {
            let url = self.url(client, &format!("{path}/{}", by_id::segment(id.as_str())), &[("$select", select)]);
            let (r, item) = self.one::<api::Group>(client, path, &url).await?;
            raw.insert((Kind::Department, id.clone()), r);
            unreadable.extend(mapping::apply_group(&mut state, item));
            wanted.push((id.to_string(), None));
        }
        let mut seen = std::collections::HashSet::new();
        while let Some((group, member)) = wanted.pop() {
            let g = state.groups.entry(group.clone()).or_default();
            match member {
                Some((m, true)) => g.groups.insert(m),
                Some((m, false)) => g.users.insert(m),
                None => false,
            };
            if seen.insert(group.clone()) && from == DepartmentsFrom::Groups {
                let parents = self.member_of(client, "groups", &group, &mut state).await?;
                wanted.extend(parents.into_iter().map(|p| (p, Some((group.clone(), true)))));
            }
        }
        let snapshot = mapping::snapshot(&state, from, unreadable, &self.mapping);
        Ok(Objects { snapshot, raw, requests: Some(client.requests()), by_id: true })
    }
}

impl IdentitySource for EntraSource {
    fn kind(&self) -> &'static str {
        "entra"
    }

    /// By id, unless `group_filter` narrows the groups (an OData filter:
    /// what it keeps is the whole listing's): then the whole source.
    fn fetch_objects<'a>(&'a self, only: &'a Only) -> BoxFuture<'a, Result<Objects, SourceError>> {
        if self.config.group_filter.is_some() && self.config.departments_from == DepartmentsFrom::Groups {
            Box::pin(super::narrowed(self.fetch(), only))
        } else {
            Box::pin(self.fetch_by_id(only))
        }
    }

    fn fetch(&self) -> BoxFuture<'_, Result<Snapshot, SourceError>> {
        Box::pin(async move { Ok(self.fetch_kept(None).await?.snapshot) })
    }

    fn fetch_since(&self, state: Option<Vec<u8>>) -> BoxFuture<'_, Result<Fetched, SourceError>> {
        Box::pin(self.fetch_kept(state))
    }
}

#[cfg(test)]
mod tests;
