//! Target `rest`: any HTTP API, described in the config as requests with
//! templates (minijinja) and JSONPath extraction, or by a preset
//! (`keycloak`). It gets what the SCIM target gets: bindings, policies,
//! the guard, dry-run, retries and run records.
//!
//! Reading: `users.list` and `departments.list` page by page (page,
//! offset, cursor or link), objects nested in objects (`children`) read
//! too and deduplicated by id, each mapped through `fields`; membership
//! from a user's `departments` field or each department's `members`.
//! Writing: one request per operation; membership one request per user and
//! department (`add_member` / `remove_member`); a parent by `set_parent`.

mod client;
mod config;
mod mapping;
mod template;

pub use template::TemplateError;

pub use config::{Auth, IdFrom, Listing, Paging, Request, Resource, RestConfig, parse};

use super::{TResult, Target, TargetError};
use crate::http_client::method_name;
use crate::model::{TargetDepartment, TargetId, TargetSnapshot, TargetUser};
use crate::reconcile::{Change, DepartmentShape, DeptSpec, Field, FieldSet, UserSpec};
use crate::token::{Token, TokenCache};
use backon::Retryable;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::time::Duration;

pub struct RestTarget {
    c: RestConfig,
    http: reqwest::Client,
    limiter: DefaultDirectRateLimiter,
    token: TokenCache,
    log: super::RequestLog,
    /// Keycloak: whether the realm lets a username change
    /// (`editUsernameAllowed`, false in a default realm), read at the load;
    /// true when the service account may not read it (then a refusal is
    /// recognised by Keycloak's answer).
    username_editable: std::sync::atomic::AtomicBool,
    /// Keycloak: the user fields its realm drops (its user profile does not
    /// declare them, unmanaged attributes are off), read at the load; they
    /// are neither compared nor expected to be kept.
    dropped: std::sync::Mutex<FieldSet>,
    /// `[mapping.attributes]`: the extra attributes' names.
    extras: Vec<String>,
    /// Each department's name as the API shows it (read at the load, or
    /// as written this run): a 409 for a name another department shows is
    /// a taken name, and the department takes one of its own
    /// (`departments.unique_name`).
    shown: crate::targets::unique::Shown,
}

impl std::fmt::Debug for RestTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestTarget").field("base_url", &self.c.base_url.as_str()).finish()
    }
}

/// One answer: status, headers and the body as JSON (null when empty or not JSON).
struct Answer {
    headers: HeaderMap,
    body: Value,
}

/// A failed answer's body, cut short and without markup.
fn detail(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let v: Option<Value> = serde_json::from_str(text).ok();
    let msg = v
        .as_ref()
        .and_then(|v| {
            ["errorMessage", "error_description", "error", "message", "detail"].iter().find_map(|k| v[k].as_str().map(str::to_owned))
        })
        .unwrap_or_else(|| text.chars().take(200).collect());
    Some(crate::redact::redact(&msg).into_owned())
}

/// A request as rendered, ready to send.
struct Rendered {
    full: String,
    shown: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Option<Value>,
}

impl RestTarget {
    pub fn new(c: &RestConfig, users: &crate::reconcile::UserPolicy) -> Result<Self, TargetError> {
        let http = crate::http_client::builder(c.timeout).build().map_err(TargetError::Client)?;
        let rate = NonZeroU32::new(c.rate_limit.max(1)).unwrap_or(NonZeroU32::MIN);
        Ok(RestTarget {
            extras: users.attributes.clone(),
            c: c.clone(),
            http,
            limiter: RateLimiter::direct(Quota::per_second(rate)),
            token: TokenCache::new(Duration::from_secs(30)),
            log: super::RequestLog::default(),
            username_editable: true.into(),
            dropped: std::sync::Mutex::new(FieldSet::default()),
            shown: crate::targets::unique::Shown::new(c.departments.as_ref().map(|d| d.unique_name.clone()).unwrap_or_default()),
        })
    }

    /// Whether `e` is a 409 for `name` being another department's (one
    /// other than `own` shows it): a taken name, never a binding.
    fn name_taken(&self, e: &TargetError, name: &str, own: Option<&TargetId>) -> bool {
        matches!(e, TargetError::Http { status: 409, .. }) && self.shown.taken(name, own)
    }

    /// Send `op` (a department's create or update) with the first free of
    /// the names department `spec` may take under `parent`; the answer and the name taken.
    async fn with_unique_name(
        &self,
        op: &Request,
        ctx: &mut Value,
        spec: &DeptSpec,
        own: Option<&TargetId>,
        parent: Option<&TargetId>,
    ) -> Result<(Answer, String), TargetError> {
        let mut last = None;
        for name in self.shown.names(&spec.name, parent) {
            ctx["department"]["name"] = json!(name);
            match self.send(op, ctx, None, &[]).await {
                Ok(a) => return Ok((a, name)),
                Err(e) if self.name_taken(&e, &name, own) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(self.no_free_name(spec, last))
    }

    /// Rename department `id` (`spec`) to the first free name under
    /// `parent` (after a move, or its parent's rename).
    async fn take_unique(&self, id: &TargetId, spec: &DeptSpec, parent: Option<&TargetId>) -> Result<(), TargetError> {
        let d = self.departments_resource()?;
        let op = d.update.as_ref().ok_or_else(|| TargetError::NotConfigured("departments.update"))?;
        let mut ctx = self.ctx(json!({
            "target_id": id, "department_id": id,
            "department": {"external_id": spec.external_id, "name": spec.name},
            "parent": parent.map(|p| json!({"id": p})), "parent_id": parent, "changed": [Field::Name],
        }));
        let (_, name) = self.with_unique_name(op, &mut ctx, spec, Some(id), parent).await?;
        self.shown.took(id, name, spec, parent);
        Ok(())
    }

    fn no_free_name(&self, spec: &DeptSpec, e: Option<TargetError>) -> TargetError {
        TargetError::Conflict(format!(
            "department {} ({:?}): its name and every name departments.unique_name gives are other departments'{}",
            spec.external_id,
            spec.name,
            e.map(|e| format!(" ({e})")).unwrap_or_default()
        ))
    }

    async fn membership(&self, user: &TargetId, groups: &[TargetId], add: bool) -> Result<(), TargetError> {
        let op = if add { &self.c.users.add_member } else { &self.c.users.remove_member };
        let Some(op) = op else { return Ok(()) };
        for g in groups {
            self.send(op, &self.ctx(json!({"user_id": user, "department_id": g, "target_id": user})), None, &[]).await?;
        }
        Ok(())
    }

    /// Keycloak 24+ drops user attributes its realm's user profile does not
    /// declare, answering 204 all the same: before writing, find which of
    /// the attributes the create body writes will be dropped (as fields).
    async fn keycloak_dropped(&self) -> Result<Vec<(Field, &'static str)>, TargetError> {
        let profile = self.keycloak_get("keycloak.profile", "/users/profile").await?;
        if matches!(profile["unmanagedAttributePolicy"].as_str(), Some("ENABLED" | "ADMIN_EDIT")) {
            return Ok(Vec::new());
        }
        let declared: HashSet<&str> = profile["attributes"].as_array().into_iter().flatten().filter_map(|a| a["name"].as_str()).collect();
        let body = self.c.templates.source(&format!("{}.body", self.c.users.create.name));
        Ok([
            (Field::ExternalId, "orgsync_id"),
            (Field::Mobile, "mobile"),
            (Field::EmployeeNo, "employee_no"),
            (Field::Title, "title"),
            (Field::Manager, "manager"),
        ]
        .into_iter()
        .filter(|(_, a)| body.contains(&format!("\"{a}\"")) && !declared.contains(a))
        .collect())
    }

    /// `[mapping.attributes]` names the realm's user profile would drop:
    /// each said (nothing is written while one is).
    async fn keycloak_undeclared_extras(&self) -> Result<Vec<String>, TargetError> {
        if self.extras.is_empty() {
            return Ok(Vec::new());
        }
        let profile = self.keycloak_get("keycloak.profile", "/users/profile").await?;
        if matches!(profile["unmanagedAttributePolicy"].as_str(), Some("ENABLED" | "ADMIN_EDIT")) {
            return Ok(Vec::new());
        }
        let declared: HashSet<&str> = profile["attributes"].as_array().into_iter().flatten().filter_map(|a| a["name"].as_str()).collect();
        Ok(self
            .extras
            .iter()
            .filter(|x| !declared.contains(x.as_str()))
            .map(|x| {
                format!(
                    "[mapping.attributes] {x}: the Keycloak realm's user profile does not declare it and unmanaged attributes \
                     are off, so Keycloak would drop it; declare it in the realm's user profile or enable unmanaged attributes"
                )
            })
            .collect())
    }

    /// What the realm drops, said (the run's warning and check-target).
    fn dropped_message(&self, dropped: &[(Field, &str)]) -> String {
        let realm = self.c.params.get("realm").and_then(Value::as_str).unwrap_or_default();
        let names: Vec<&str> = dropped.iter().map(|(_, a)| *a).collect();
        let mark = if dropped.iter().any(|(f, _)| *f == Field::ExternalId) {
            " users are bound by the match keys (policy.users.match_by) only;"
        } else {
            ""
        };
        format!(
            "Keycloak realm {realm} keeps only the user attributes its user profile declares: {} are not kept, so they are \
             not compared;{mark} to keep them, enable unmanaged attributes (Realm settings > General > Unmanaged \
             attributes: Enabled) or declare them in the realm's user profile",
            names.join(", ")
        )
    }

    /// Keycloak: read the realm's `editUsernameAllowed` (a default realm
    /// refuses username changes, and with them the whole update).
    async fn keycloak_username_editable(&self) -> Result<bool, TargetError> {
        let realm = self.keycloak_get("keycloak.realm", "").await?;
        // Without view-realm the answer is partial (no such key): unknown.
        Ok(realm["editUsernameAllowed"].as_bool().unwrap_or(true))
    }

    /// Keycloak: GET `/admin/realms/{realm}{path}`, as the request `name`.
    async fn keycloak_get(&self, name: &str, path: &str) -> Result<Value, TargetError> {
        let realm = self.c.params.get("realm").and_then(Value::as_str).unwrap_or_default();
        let req = Request {
            name: name.into(),
            method: reqwest::Method::GET,
            query: Vec::new(),
            headers: Vec::new(),
            body: false,
            id: None,
            ok_status: vec![200],
        };
        let url = format!("{}/admin/realms/{realm}{path}", self.c.base_url.as_str().trim_end_matches('/'));
        Ok(self.send(&req, &self.ctx(json!({})), Some(&url), &[]).await?.body)
    }

    /// The user update itself (not the memberships): `keep` names a
    /// username change left out (the target keeps its current username).
    async fn send_user_update(
        &self,
        id: &TargetId,
        spec: &UserSpec,
        changes: &[Change],
        departments: &[TargetId],
        manager: Option<&TargetId>,
        keep: Option<&Change>,
    ) -> Result<(), TargetError> {
        let u = &self.c.users;
        let mut user = Self::user_ctx(spec, manager);
        let mut changes: Vec<Change> = changes.to_vec();
        if let Some(r) = keep {
            user["username"] = json!(r.from);
            changes.retain(|c| c.field != Field::Username);
        }
        let ctx = self.ctx(json!({
            "target_id": id, "user_id": id, "user": user, "departments": departments,
            "changed": changes.iter().map(|c| c.field).collect::<Vec<_>>(),
        }));
        let memberships_apart = u.field("departments").is_none();
        let attrs = changes
            .iter()
            .any(|c| !matches!(c.field, Field::Departments | Field::Active) || (c.field == Field::Departments && !memberships_apart));
        let disabling = changes.iter().any(|c| c.field == Field::Active) && !spec.active;
        match (&u.update, &u.disable) {
            (_, Some(disable)) if disabling && !attrs => {
                self.send(disable, &ctx, None, &[]).await?;
            }
            (Some(update), _) if attrs || changes.iter().any(|c| c.field == Field::Active) => {
                self.send(update, &ctx, None, &[]).await?;
            }
            (None, _) if attrs => return Err(TargetError::NotConfigured("users.update")),
            _ => {}
        }
        Ok(())
    }

    fn departments_resource(&self) -> Result<&Resource, TargetError> {
        self.c.departments.as_ref().ok_or_else(|| TargetError::NotConfigured("[target.departments]"))
    }
}

/// `Link: <url>; rel="next"`.
fn next_link(h: &HeaderMap) -> Option<String> {
    let v = h.get(reqwest::header::LINK)?.to_str().ok()?;
    v.split(',').find(|p| p.contains("rel=\"next\"") || p.contains("rel=next")).and_then(|p| {
        let s = p.find('<')? + 1;
        let e = p.find('>')?;
        Some(p[s..e].to_owned())
    })
}

impl Target for RestTarget {
    fn requests(&self) -> Vec<super::RequestRecord> {
        self.log.take()
    }

    fn departments(&self) -> DepartmentShape {
        match &self.c.departments {
            None => DepartmentShape::None,
            Some(d) if d.set_parent.is_some() || d.field("parent").is_some() || d.list.children.is_some() => DepartmentShape::Tree,
            Some(_) => DepartmentShape::Flat,
        }
    }

    fn unheld(&self) -> FieldSet {
        let mut s = *self.dropped.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (f, name) in [
            (Field::ExternalId, "external_id"),
            (Field::Username, "username"),
            (Field::Name, "name"),
            (Field::Email, "email"),
            (Field::Mobile, "mobile"),
            (Field::EmployeeNo, "employee_no"),
            (Field::Nickname, "nickname"),
            (Field::Title, "title"),
            (Field::Department, "department"),
            (Field::Manager, "manager"),
            (Field::Attributes, "attributes"),
        ] {
            if self.c.users.field(name).is_none() {
                s = s.with(f);
            }
        }
        if self.c.departments.as_ref().and_then(|d| d.field("leaders")).is_none() {
            s = s.with(Field::Leaders);
        }
        s
    }

    fn check(&self) -> TResult<'_, Vec<(&'static str, String)>> {
        Box::pin(async move {
            let mut rows = vec![("base_url", self.c.base_url.to_string())];
            if let Some(p) = &self.c.preset {
                rows.push(("preset", p.clone()));
            }
            if let Auth::OAuth2 { .. } = &self.c.auth {
                self.token.get(self.fetch_token()).await?;
                rows.push(("auth", "OAuth2 client credentials: token issued".into()));
            }
            let users = self.list_pages(&self.c.users.list, &self.ctx(json!({})), 1).await?;
            rows.push(("users", format!("listed (first page: {} objects)", users.len())));
            if self.c.preset.as_deref() == Some("keycloak") {
                let dropped = self.keycloak_dropped().await?;
                if !dropped.is_empty() {
                    rows.push(("attributes", self.dropped_message(&dropped)));
                }
            }
            if let Some(d) = &self.c.departments {
                let departments = self.list_pages(&d.list, &self.ctx(json!({})), 1).await?;
                rows.push(("departments", format!("listed (first page: {} objects)", departments.len())));
            }
            Ok(rows)
        })
    }

    fn load(&self) -> TResult<'_, TargetSnapshot> {
        Box::pin(async move {
            if self.c.preset.as_deref() == Some("keycloak") {
                let dropped = self.keycloak_dropped().await?;
                if !dropped.is_empty() {
                    tracing::warn!("{}", self.dropped_message(&dropped));
                }
                *self.dropped.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                    dropped.iter().fold(FieldSet::default(), |s, (f, _)| s.with(*f));
                let undeclared = self.keycloak_undeclared_extras().await?;
                if !undeclared.is_empty() {
                    return Err(TargetError::Schema(undeclared));
                }
                let editable = self.keycloak_username_editable().await?;
                self.username_editable.store(editable, std::sync::atomic::Ordering::Relaxed);
            }
            let ctx = self.ctx(json!({}));
            let mut snap = TargetSnapshot::default();
            let mut member_of: HashMap<String, Vec<TargetId>> = HashMap::new();
            if let Some(d) = &self.c.departments {
                let id = d.field("id");
                let mut seen = HashSet::new();
                let mut parents: HashMap<String, Option<TargetId>> = HashMap::new();
                for item in self.list(&d.list, &ctx).await? {
                    let Some(tid) = id.and_then(|p| p.text(&item)) else { continue };
                    if !seen.insert(tid.clone()) {
                        continue;
                    }
                    let text = |n: &str| d.field(n).and_then(|p| p.text(&item));
                    parents.insert(tid.clone(), text("parent").map(TargetId));
                    snap.departments.push(TargetDepartment {
                        id: TargetId(tid),
                        external_id: text("external_id"),
                        name: text("name").unwrap_or_default(),
                        parent: None,
                        // Every value the `leaders` field selects: the leaders' user ids.
                        leaders: d.field("leaders").map(|p| {
                            p.all(&item)
                                .into_iter()
                                .flat_map(|v| match v {
                                    Value::Array(a) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
                                    Value::String(s) => vec![s.clone()],
                                    _ => Vec::new(),
                                })
                                .map(TargetId)
                                .collect()
                        }),
                    });
                }
                for dep in &mut snap.departments {
                    dep.parent = parents.get(dep.id.as_str()).cloned().flatten();
                }
                self.shown.load(&mut snap.departments);
                if let Some((members, member_id)) = &d.members {
                    // Each department's members, `concurrency` listings at once.
                    use futures::StreamExt;
                    let ids: Vec<TargetId> = snap.departments.iter().map(|d| d.id.clone()).collect();
                    let mut pending = Vec::with_capacity(ids.len());
                    for id in ids {
                        let ctx = self.ctx(json!({"department_id": id, "target_id": id}));
                        pending.push(Box::pin(async move { self.list(members, &ctx).await.map(|m| (id, m)) })
                            as futures::future::BoxFuture<'_, Result<(TargetId, Vec<Value>), TargetError>>);
                    }
                    let mut listings = futures::stream::iter(pending).buffer_unordered(self.c.concurrency.max(1));
                    while let Some(r) = listings.next().await {
                        let (dep, list) = r?;
                        for m in list {
                            if let Some(u) = member_id.text(&m) {
                                member_of.entry(u).or_default().push(dep.clone());
                            }
                        }
                    }
                }
            }
            let u = &self.c.users;
            let mut seen = HashSet::new();
            for item in self.list(&u.list, &ctx).await? {
                let text = |n: &str| u.field(n).and_then(|p| p.text(&item));
                let Some(id) = text("id") else { continue };
                if !seen.insert(id.clone()) {
                    continue;
                }
                let departments = match u.field("departments") {
                    Some(p) => p.all(&item).into_iter().filter_map(|v| v.as_str().map(|s| TargetId(s.to_owned()))).collect(),
                    None => member_of.remove(&id).unwrap_or_default(),
                };
                snap.users.push(TargetUser {
                    external_id: text("external_id"),
                    username: text("username"),
                    name: text("name"),
                    email: text("email"),
                    mobile: text("mobile"),
                    employee_no: text("employee_no"),
                    nickname: text("nickname"),
                    title: text("title"),
                    department: text("department"),
                    departments,
                    active: text("active").is_none_or(|a| !matches!(a.to_ascii_lowercase().as_str(), "false" | "0" | "no")),
                    manager: text("manager").map(TargetId),
                    attributes: self.extras_of(&item),
                    id: TargetId(id),
                });
            }
            tracing::debug!(users = snap.users.len(), departments = snap.departments.len(), "REST target read");
            Ok(snap)
        })
    }

    fn flush(&self) -> TResult<'_, Vec<super::Deferred>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn write<'a>(&'a self, w: super::Write<'a>) -> TResult<'a, Option<TargetId>> {
        super::dispatch(self, w)
    }
}

impl super::Operations for RestTarget {
    fn create_department<'a>(&'a self, op: super::DepartmentCreate<'a>) -> TResult<'a, TargetId> {
        let super::DepartmentCreate { spec, parent } = op;
        Box::pin(async move {
            let d = self.departments_resource()?;
            let mut ctx = self.ctx(
                json!({"department": {"external_id": spec.external_id, "name": spec.name}, "parent": parent.map(|p| json!({"id": p})), "parent_id": parent}),
            );
            let id = match self.send(&d.create, &ctx, None, &[]).await {
                Ok(a) => self.id_of(&d.create, &a).inspect(|id| self.shown.set(id, spec.name.clone()))?,
                Err(e) if self.name_taken(&e, &spec.name, None) => {
                    let (a, name) = self.with_unique_name(&d.create, &mut ctx, spec, None, parent).await?;
                    let id = self.id_of(&d.create, &a)?;
                    self.shown.took(&id, name, spec, parent);
                    id
                }
                Err(e) => return Err(e),
            };
            Ok(id)
        })
    }

    fn update_department<'a>(&'a self, op: super::DepartmentUpdate<'a>) -> TResult<'a, ()> {
        let super::DepartmentUpdate { id, spec, changes, old_parent: _old_parent, parent, leaders } = op;
        Box::pin(async move {
            let d = self.departments_resource()?;
            let ctx = self.ctx(json!({
                "target_id": id, "department_id": id,
                "department": {"external_id": spec.external_id, "name": spec.name, "leader_ids": leaders},
                "parent": parent.map(|p| json!({"id": p})),
                "parent_id": parent,
                "changed": changes.iter().map(|c| c.field).collect::<Vec<_>>(),
            }));
            let renamed = changes.iter().any(|c| c.field == Field::Name);
            if changes.iter().any(|c| matches!(c.field, Field::Name | Field::ExternalId | Field::Leaders)) {
                let op = d.update.as_ref().ok_or_else(|| TargetError::NotConfigured("departments.update"))?;
                let mut ctx = ctx.clone();
                // A name made by `unique_name` stays while only the mark changes.
                let name = match renamed {
                    true => spec.name.clone(),
                    false => self.shown.name(id).unwrap_or_else(|| spec.name.clone()),
                };
                ctx["department"]["name"] = json!(name);
                match self.send(op, &ctx, None, &[]).await {
                    Err(e) if renamed && self.name_taken(&e, &name, Some(id)) => {
                        let (_, name) = self.with_unique_name(op, &mut ctx, spec, Some(id), parent).await?;
                        self.shown.took(id, name, spec, parent);
                    }
                    Ok(_) if renamed => self.shown.set(id, name),
                    r => drop(r?),
                }
            }
            if changes.iter().any(|c| c.field == Field::Parent) {
                let op = d.set_parent.as_ref().ok_or_else(|| TargetError::NotConfigured("departments.set_parent"))?;
                self.send(op, &ctx, None, &[]).await?;
                self.shown.moved(id, parent);
                // A name made after the old parent is made after the new one.
                if !renamed && self.shown.after_parent(id).is_some() {
                    self.take_unique(id, spec, parent).await?;
                }
            }
            if renamed {
                // The departments named after this one's old name follow its new one.
                for (child, child_spec) in self.shown.after(id) {
                    if let Err(e) = self.take_unique(&child, &child_spec, Some(id)).await {
                        tracing::warn!(department = %child, error = %e, "A department named after its parent could not follow the parent's new name; the next run renames it");
                    }
                }
            }
            Ok(())
        })
    }

    fn delete_department<'a>(&'a self, id: &'a TargetId) -> TResult<'a, ()> {
        Box::pin(async move {
            let d = self.departments_resource()?;
            let op = d.delete.as_ref().ok_or_else(|| TargetError::NotConfigured("departments.delete"))?;
            self.send(op, &self.ctx(json!({"target_id": id, "department_id": id})), None, &[]).await.map(drop)
        })
    }

    fn create_user<'a>(&'a self, op: super::UserCreate<'a>) -> TResult<'a, TargetId> {
        let super::UserCreate { spec, departments, manager } = op;
        Box::pin(async move {
            let u = &self.c.users;
            let ctx = self.ctx(json!({"user": Self::user_ctx(spec, manager), "departments": departments}));
            let a = self.send(&u.create, &ctx, None, &[]).await?;
            let id = self.id_of(&u.create, &a)?;
            if u.field("departments").is_none() {
                self.membership(&id, departments, true).await?;
            }
            Ok(id)
        })
    }

    fn update_user<'a>(&'a self, op: super::UserUpdate<'a>) -> TResult<'a, ()> {
        let super::UserUpdate { id, spec, changes, old_departments, departments, manager } = op;
        Box::pin(async move {
            // A username change the realm refuses (known from the realm, or
            // from Keycloak's answer) is left out of the update, the rest
            // still goes through, and the rename is said as refused.
            let rename = changes.iter().find(|c| c.field == Field::Username);
            let mut refused = rename.filter(|_| !self.username_editable.load(std::sync::atomic::Ordering::Relaxed));
            let result = match self.send_user_update(id, spec, changes, departments, manager, refused).await {
                Err(e) if rename.is_some() && refused.is_none() && e.status() == Some(400) && e.to_string().contains("read-only") => {
                    refused = rename;
                    self.send_user_update(id, spec, changes, departments, manager, refused).await
                }
                other => other,
            };
            result?;
            let memberships_apart = self.c.users.field("departments").is_none();
            if memberships_apart && changes.iter().any(|c| c.field == Field::Departments) {
                let old: HashSet<&TargetId> = old_departments.iter().collect();
                let new: HashSet<&TargetId> = departments.iter().collect();
                let leave: Vec<TargetId> = old.difference(&new).map(|t| (*t).clone()).collect();
                let join: Vec<TargetId> = new.difference(&old).map(|t| (*t).clone()).collect();
                self.membership(id, &leave, false).await?;
                self.membership(id, &join, true).await?;
            }
            if refused.is_some() {
                return Err(TargetError::Refused {
                    path: format!("users/{id}"),
                    attributes: vec!["username".into()],
                    fields: vec![Field::Username],
                    detail: "the Keycloak realm does not allow username changes (Realm settings > Login > Edit username); \
                             the rest of the update was applied"
                        .into(),
                });
            }
            Ok(())
        })
    }

    fn disable_user<'a>(&'a self, id: &'a TargetId) -> TResult<'a, ()> {
        Box::pin(async move {
            let u = &self.c.users;
            let ctx = self.ctx(json!({"target_id": id, "user_id": id, "user": {"active": false}, "changed": ["active"]}));
            let op = u.disable.as_ref().or(u.update.as_ref()).ok_or_else(|| TargetError::NotConfigured("users.disable or users.update"))?;
            self.send(op, &ctx, None, &[]).await.map(drop)
        })
    }

    fn delete_user<'a>(&'a self, op: super::UserDelete<'a>) -> TResult<'a, ()> {
        let super::UserDelete { id, departments: _departments } = op;
        Box::pin(async move {
            let u = &self.c.users;
            let op = u.delete.as_ref().ok_or_else(|| TargetError::NotConfigured("users.delete"))?;
            self.send(op, &self.ctx(json!({"target_id": id, "user_id": id})), None, &[]).await.map(drop)
        })
    }
}

#[cfg(test)]
mod tests;
