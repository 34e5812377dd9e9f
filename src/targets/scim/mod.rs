//! Target `scim`: a SCIM 2.0 service (RFC 7643/7644).
//!
//! Mapping (also in README):
//! - User <-> SCIM User: userName, displayName and name.formatted, nickName,
//!   emails (one, type work, primary), phoneNumbers (one, type mobile), title,
//!   active, externalId = source id, enterprise extension employeeNumber and
//!   department (the primary department's name).
//! - Department <-> SCIM Group: displayName, externalId = source id. The tree
//!   is carried as membership of the child group in its parent group; users
//!   are members of their departments' groups.
//!
//! Updates are PATCH operations naming only the changed attributes, so
//! attributes orgsync does not manage are left alone.

mod client;
mod config;
mod discovery;
mod mapping;
mod members;

use super::{Deferred, TResult, Target, TargetError};
use crate::model::{Kind, TargetId, TargetSnapshot};
use crate::reconcile::{Change, DepartmentShape, DeptSpec, Field, FieldSet, MatchKey, UserSpec};
use client::{Client, Created};
pub use config::{ScimAuth, ScimConfig, parse};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};

/// Fields an answer showed otherwise than sent, each with what it showed.
type Shown = Vec<(Field, Option<String>)>;

#[derive(Debug)]
pub struct ScimTarget {
    client: Client,
    /// `target.departments`.
    shape: DepartmentShape,
    /// Group memberships of this run, sent by `flush`.
    pending: members::Pending,
    /// What the server said it supports, read at each load.
    dialect: std::sync::RwLock<discovery::Dialect>,
    /// `target.page_size`.
    page_size: Option<usize>,
    /// Requests in flight at once (`target.concurrency`).
    concurrency: usize,
    /// One membership request per group at a time (removals of deleted users).
    group_locks: std::sync::Mutex<std::collections::HashMap<TargetId, std::sync::Arc<tokio::sync::Mutex<()>>>>,
    /// `policy.users.match_by`: how a 409 on create finds the existing user.
    match_by: Vec<MatchKey>,
    /// `[mapping.attributes]`: the extra attributes' names.
    attributes: Vec<String>,
    /// The server refused a group's attributes by PATCH and took them by
    /// PUT (django-scim2: 501 on `replace displayName`): PUT from then on.
    group_put: std::sync::atomic::AtomicBool,
    /// Each group's parent group as the load found it: a group is taken
    /// out of its parent's members before it is deleted (some servers keep
    /// a dead member reference otherwise).
    parents: std::sync::Mutex<std::collections::HashMap<TargetId, TargetId>>,
    /// Users and groups whose departures went in the membership batches
    /// flushed before the removals (`Target::leaving`), and the groups
    /// whose batch failed there: a delete leaves those itself.
    left: std::sync::Mutex<std::collections::HashSet<TargetId>>,
    /// Created users whose answer showed fields otherwise than sent.
    created_unkept: std::sync::Mutex<std::collections::HashMap<TargetId, Shown>>,
    /// Groups this run POSTed with the department's values (not found there).
    posted: std::sync::Mutex<std::collections::HashSet<TargetId>>,
    failed_groups: std::sync::Mutex<std::collections::HashSet<TargetId>>,
    /// Each group's displayName as the server holds it (`Team (Support)`
    /// where the server keeps names unique: `target.unique_name`), or as
    /// written this run.
    shown: crate::targets::unique::Shown,
    /// The server's ids are plain numbers (django-scim2: users and groups
    /// share one sequence of integers, and a group added as a member is
    /// taken for the user of that id). A group member is then ambiguous:
    /// nested groups are not written, memberships go flat (users only).
    numeric_ids: std::sync::atomic::AtomicBool,
}

/// An id a server may give a user and a group alike.
fn numeric(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())
}

/// Members per membership PATCH, unless the server says less.
const MEMBERS_PER_REQUEST: usize = 1000;

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn patch(ops: Vec<Value>) -> Value {
    json!({ "schemas": [PATCH_OP], "Operations": ops })
}

fn decode_error(path: &str, message: &str) -> TargetError {
    TargetError::Decode { method: "GET", path: path.to_owned(), message: message.to_owned() }
}

/// The attribute a match key is found by in a filter.
fn key_attribute(k: crate::reconcile::MatchKey) -> &'static str {
    use crate::reconcile::MatchKey;
    match k {
        MatchKey::Username => "userName",
        MatchKey::Email => "emails.value",
        MatchKey::Mobile => "phoneNumbers.value",
        MatchKey::EmployeeNo => mapping::EMPLOYEE_NUMBER,
    }
}

/// The fields written to an account a create found there already: every
/// mapped one (`Field::USER` has the manager and the extra attributes), the
/// manager only when there is one to set (an unknown one is left as it is).
fn adopted_fields(manager: bool) -> Vec<Field> {
    Field::USER.iter().copied().filter(|f| manager || *f != Field::Manager).collect()
}

/// Quote a value for a SCIM filter (RFC 7644 3.4.2.2: a JSON string).
fn quoted(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

impl ScimTarget {
    pub fn new(c: &ScimConfig, users: &crate::reconcile::UserPolicy) -> Result<Self, TargetError> {
        let match_by = &users.match_by;
        Ok(Self {
            client: Client::new(c)?,
            shape: c.departments,
            pending: members::Pending::default(),
            dialect: std::sync::RwLock::default(),
            page_size: c.page_size,
            concurrency: c.concurrency.max(1),
            group_locks: std::sync::Mutex::default(),
            match_by: match_by.clone(),
            attributes: users.attributes.clone(),
            group_put: false.into(),
            parents: std::sync::Mutex::default(),
            shown: crate::targets::unique::Shown::new(c.unique_name.clone()),
            numeric_ids: false.into(),
            left: std::sync::Mutex::default(),
            created_unkept: std::sync::Mutex::default(),
            posted: std::sync::Mutex::default(),
            failed_groups: std::sync::Mutex::default(),
        })
    }

    /// After a 409 on create: the existing user that is ours (externalId =
    /// source id, left by a run that crashed before recording its binding) or
    /// that the match keys name. A userName taken by an unrelated account is
    /// not bound: that would take the account over.
    async fn find_existing_user(&self, spec: &UserSpec) -> Result<Option<TargetId>, TargetError> {
        if let Some(id) = self.find_one("/Users", "externalId", &spec.external_id).await? {
            return Ok(Some(id));
        }
        for key in &self.match_by {
            let attr = key_attribute(*key);
            let value = match key {
                MatchKey::Email => &spec.email,
                MatchKey::Username => &spec.username,
                MatchKey::Mobile => &spec.mobile,
                MatchKey::EmployeeNo => &spec.employee_no,
            };
            if let Some(v) = value
                && let Some(id) = self.find_one("/Users", attr, v).await?
            {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// POST a resource carrying `external_id`; a lost answer is found by
    /// externalId before any retry, so it is never created twice.
    /// POST a resource: its id, and the resource as the server answered it
    /// (none when the answer was lost and it was found by externalId).
    async fn create(&self, path: &str, body: &Value, external_id: &str) -> Result<(TargetId, Option<Value>), TargetError> {
        let exists = || async { Ok(self.find_one(path, "externalId", external_id).await?.map(|t| t.0)) };
        let (id, stored) = match self.client.create(path, body, exists).await? {
            Created::Posted(v) => (Self::id_of(&v, path)?, v),
            Created::Found(id) => {
                tracing::info!(path, external_id, id, "A create whose answer was lost had succeeded; bound to it");
                (TargetId(id), None)
            }
        };
        // The first object of an empty server tells how it makes ids.
        self.judge_ids(std::iter::once(id.as_str()));
        Ok((id, stored))
    }

    /// The fields a created user's answer shows otherwise than sent: the
    /// server rewrote or dropped them (django-scim2 derives the name from
    /// its parts). Judged only on an answer that is the resource (it has
    /// `userName`), never on one that is only an id.
    fn unkept_in(&self, spec: &UserSpec, stored: &Value) -> Vec<(Field, Option<String>)> {
        let Some(tu) = stored.get("userName").and_then(|_| mapping::user_from(stored, &self.extras())) else { return Vec::new() };
        let unheld = self.unheld();
        [
            (Field::Username, &spec.username, &tu.username),
            (Field::Name, &spec.name, &tu.name),
            (Field::Email, &spec.email, &tu.email),
            (Field::Mobile, &spec.mobile, &tu.mobile),
            (Field::EmployeeNo, &spec.employee_no, &tu.employee_no),
            (Field::Nickname, &spec.nickname, &tu.nickname),
            (Field::Title, &spec.title, &tu.title),
            (Field::Department, &spec.department, &tu.department),
        ]
        .into_iter()
        .filter(|(f, sent, kept)| sent.is_some() && sent != kept && !unheld.contains(*f))
        .map(|(f, _, kept)| (f, kept.clone()))
        .collect()
    }

    fn id_of(v: &Option<Value>, path: &str) -> Result<TargetId, TargetError> {
        v.as_ref().and_then(|v| v.get("id")).and_then(Value::as_str).map(|s| TargetId(s.to_owned())).ok_or_else(|| TargetError::Decode {
            method: "POST",
            path: path.to_owned(),
            message: "no id in the created resource".into(),
        })
    }

    /// The one resource whose `attr` is `value`: by filter, or by listing
    /// them all where the server has no filter (a rare path: lookups
    /// happen after a 409 or a lost answer).
    async fn find_one(&self, path: &str, attr: &str, value: &str) -> Result<Option<TargetId>, TargetError> {
        Ok(match self.find_all(path, attr, value).await?.as_slice() {
            [one] => one.get("id").and_then(Value::as_str).map(|s| TargetId(s.to_owned())),
            _ => None,
        })
    }

    /// Every resource whose `attr` is `value`, as the server gives it.
    async fn find_all(&self, path: &str, attr: &str, value: &str) -> Result<Vec<Value>, TargetError> {
        let filter = self.with_dialect(|d| d.filter).then(|| format!("{attr} eq {}", quoted(value)));
        let mut all = self.client.list(path, filter).await?;
        // Also after a filter: some servers match case-insensitively where SCIM says case matters.
        all.retain(|r| mapping::has_value(r, attr, value));
        Ok(all)
    }

    /// Whether a group create or rename was refused for its name: a 409, or
    /// a server error while a group shows that name (django-scim2-server's
    /// database keeps group names unique and it answers 500).
    /// A server error counts only when another department's group (one
    /// with an externalId, not `own`) shows the name: never for a group
    /// nobody marked, which a 409 alone may take over.
    async fn name_taken(&self, e: &TargetError, name: &str, own: Option<&TargetId>) -> Result<bool, TargetError> {
        match e.status() {
            Some(409) => Ok(true),
            Some(s) if s >= 500 => Ok(self.find_all("/Groups", "displayName", name).await?.iter().any(|g| {
                g.get("externalId").and_then(Value::as_str).is_some_and(|x| !x.is_empty())
                    && own.is_none_or(|o| g.get("id").and_then(Value::as_str) != Some(o.as_str()))
            })),
            _ => Ok(false),
        }
    }

    /// Where the extra attributes go (found by discovery).
    fn extras(&self) -> Vec<(String, String)> {
        self.with_dialect(|d| d.extras.clone())
    }

    /// Read what discovery found (no copy: `unheld` is asked for every user written).
    fn with_dialect<T>(&self, f: impl FnOnce(&discovery::Dialect) -> T) -> T {
        f(&self.dialect.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Read what the server supports. A document it does not serve (an
    /// HTTP error, not JSON) is noted and its defaults assumed; a server
    /// that cannot be reached fails.
    /// What the server supports, found now and kept for the run.
    async fn discovered(&self) -> Result<discovery::Dialect, TargetError> {
        let mut d = self.discover().await?;
        d.extras = d.place_extras(&self.attributes).map_err(TargetError::Schema)?;
        tracing::debug!(dialect = ?d, "What the target supports");
        *self.dialect.write().unwrap_or_else(std::sync::PoisonError::into_inner) = d.clone();
        Ok(d)
    }

    fn user(v: Value, extras: &[(String, String)]) -> Result<crate::model::TargetUser, TargetError> {
        mapping::user_from(&v, extras).ok_or_else(|| decode_error("/Users", "a User without an id"))
    }

    fn take_user(users: &mut Vec<crate::model::TargetUser>, v: Value, extras: &[(String, String)]) -> Result<(), TargetError> {
        users.push(Self::user(v, extras)?);
        Ok(())
    }

    /// The snapshot of these users and every group (none where the target
    /// holds no departments); what a run keeps of it is reset.
    async fn loaded(&self, users: Vec<crate::model::TargetUser>) -> Result<TargetSnapshot, TargetError> {
        let mut groups = Vec::new();
        // Without departments, the groups are not orgsync's business. Read
        // as the users are: each page converted while the next is read.
        if self.shape != DepartmentShape::None {
            groups = self
                .client
                .list_converted("/Groups", None, |v| {
                    mapping::group_from(&v).ok_or_else(|| decode_error("/Groups", "a Group without an id"))
                })
                .await?;
        }
        self.judge_ids(users.iter().map(|u| u.id.as_str()).chain(groups.iter().map(|g| g.id.as_str())));
        let mut snapshot = mapping::snapshot_from(users, groups);
        *self.parents.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            snapshot.departments.iter().filter_map(|d| Some((d.id.clone(), d.parent.clone()?))).collect();
        self.shown.load(&mut snapshot.departments);
        self.left.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
        self.created_unkept.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
        self.posted.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
        self.failed_groups.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
        Ok(snapshot)
    }

    async fn discover(&self) -> Result<discovery::Dialect, TargetError> {
        let mut docs = Vec::new();
        for path in ["/ServiceProviderConfig", "/ResourceTypes", "/Schemas"] {
            docs.push(match self.client.send(Method::GET, path, &[], None).await {
                Ok(Some(v)) => Ok(v),
                Ok(None) => Err(discovery::Unserved::Empty),
                Err(e @ (TargetError::Http { .. } | TargetError::Decode { .. })) => {
                    Err(e.status().map_or(discovery::Unserved::NotJson, discovery::Unserved::Http))
                }
                Err(e) => return Err(e),
            });
        }
        let [spc, rts, schemas] = [&docs[0], &docs[1], &docs[2]].map(|d| d.as_ref().map_err(|e| *e));
        let d = discovery::dialect(spc, rts, schemas);
        self.client.set_page_size(d.page_size(self.page_size));
        Ok(d)
    }

    /// Send one group's delta, chunk by chunk. A group deleted meanwhile
    /// has nothing left to change.
    async fn send_members(&self, group: &TargetId, delta: &members::Delta) -> Result<(), TargetError> {
        let lock = self.group_lock(group);
        let _one_at_a_time = lock.lock().await;
        let path = format!("/Groups/{group}");
        for chunk in members::chunks(delta, self.with_dialect(|d| d.members_per_request(MEMBERS_PER_REQUEST))) {
            let by_value = self.pending.by_value();
            let sent = self.client.send(Method::PATCH, &path, &[], Some(&patch(chunk.ops(by_value)))).await;
            match sent {
                Ok(_) => {}
                Err(e) if e.status() == Some(404) => return Ok(()),
                Err(e) if !by_value && !chunk.remove.is_empty() && matches!(e.status(), Some(400 | 501)) => {
                    // Perhaps only the value-list dialect of removal: try it once.
                    self.client.send(Method::PATCH, &path, &[], Some(&patch(chunk.ops(true)))).await.map_err(|_| e)?;
                    self.pending.remove_by_value.store(true, std::sync::atomic::Ordering::Relaxed);
                    tracing::info!(group = %group, "The target takes member removals only as a value list; using that from now on");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn group_lock(&self, group: &TargetId) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.group_locks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        locks.entry(group.clone()).or_default().clone()
    }

    /// PATCH a user. `active` goes first in a PATCH of its own: a leaver is
    /// deactivated even when the server refuses another attribute. When the
    /// rest is refused as a whole (400, 501), each attribute is sent alone:
    /// what the server takes is applied, what it refuses is named in the
    /// error.
    async fn patch_user(&self, id: &TargetId, ops: Vec<(Field, Value)>) -> Result<(), TargetError> {
        let path = format!("/Users/{id}");
        let (active, rest): (Vec<_>, Vec<_>) = ops.into_iter().partition(|(f, _)| *f == Field::Active);
        if !active.is_empty() {
            self.client.send(Method::PATCH, &path, &[], Some(&patch(active.into_iter().map(|(_, op)| op).collect()))).await?;
        }
        if rest.is_empty() {
            return Ok(());
        }
        let whole = patch(rest.iter().map(|(_, op)| op.clone()).collect());
        let whole = match self.client.send(Method::PATCH, &path, &[], Some(&whole)).await {
            Ok(_) => return Ok(()),
            Err(e) if matches!(e.status(), Some(400 | 501)) => e,
            Err(e) => return Err(e),
        };
        if let [(field, op)] = rest.as_slice() {
            // One attribute, refused.
            let detail = whole.to_string();
            return Err(TargetError::Refused { path, attributes: vec![mapping::attribute_of(op)], fields: vec![*field], detail });
        }
        tracing::debug!(%id, error = %whole, "A PATCH was refused as a whole; sending its attributes one by one");
        let mut refused: Vec<(Field, String)> = Vec::new();
        let mut detail = String::new();
        for (field, op) in rest {
            let attr = mapping::attribute_of(&op);
            match self.client.send(Method::PATCH, &path, &[], Some(&patch(vec![op]))).await {
                Ok(_) => {}
                Err(e) if matches!(e.status(), Some(400 | 501)) => {
                    if detail.is_empty() {
                        detail = e.to_string();
                    }
                    refused.push((field, attr));
                }
                Err(e) => return Err(e),
            }
        }
        if refused.is_empty() {
            return Ok(());
        }
        let mut fields: Vec<Field> = refused.iter().map(|(f, _)| *f).collect();
        fields.dedup();
        Err(TargetError::Refused { path, attributes: refused.into_iter().map(|(_, a)| a).collect(), fields, detail })
    }

    /// Note numeric ids (see `numeric_ids`), said once when first seen.
    fn judge_ids<'i>(&self, mut ids: impl Iterator<Item = &'i str>) {
        if self.shape == DepartmentShape::Tree && ids.any(numeric) && !self.numeric_ids.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(
                "The target's ids are plain numbers, which users and groups may share: group members are written flat (users only), \
                 no group in a group (set target.departments = \"groups\" to say so)"
            );
        }
    }

    /// A group's own changes (`ops`) and the run's member changes of that
    /// group in one PATCH, where the server takes PATCH for groups and the
    /// members fit one request. Whether that went through; if not, the
    /// member changes wait for the flush and the caller sends the rest as
    /// it would alone (a taken name, a refusal and PUT are handled there).
    async fn with_members(&self, id: &TargetId, ops: &[Value]) -> bool {
        let per_request = self.with_dialect(|d| d.members_per_request(MEMBERS_PER_REQUEST));
        if self.group_put.load(std::sync::atomic::Ordering::Relaxed) {
            return false;
        }
        let Some(mut delta) = self.pending.take_one(id) else { return false };
        // As at the flush: numeric ids, no group in a group.
        if self.numeric_ids.load(std::sync::atomic::Ordering::Relaxed) {
            delta.add.retain(|_, kind| *kind != mapping::Member::Group);
        }
        let mut chunks = members::chunks(&delta, per_request);
        if chunks.len() != 1 {
            self.pending.put_back(id, delta);
            return false;
        }
        let chunk = chunks.remove(0);
        let lock = self.group_lock(id);
        let _one_at_a_time = lock.lock().await;
        let mut all = ops.to_vec();
        all.extend(chunk.ops(self.pending.by_value()));
        match self.client.send(Method::PATCH, &format!("/Groups/{id}"), &[], Some(&patch(all))).await {
            Ok(_) => true,
            Err(e) => {
                tracing::debug!(group = %id, error = %e, "A group's changes with its members in one PATCH were refused; sent apart");
                self.pending.put_back(id, delta);
                false
            }
        }
    }

    /// A new group goes into its parent's members at the flush.
    fn pending_parent(&self, parent: Option<&TargetId>, id: &TargetId) {
        if let Some(p) = parent {
            self.pending.add(p, id, mapping::Member::Group);
        }
    }

    /// Of `groups`, those `id` is still in: all of them, unless it left
    /// them in the batches flushed before the removals, where only those
    /// whose batch failed remain.
    fn still_in<'g>(&self, id: &TargetId, groups: impl IntoIterator<Item = &'g TargetId>) -> Vec<TargetId> {
        let left = self.left.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(id);
        let failed = self.failed_groups.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        groups.into_iter().filter(|g| !left || failed.contains(*g)).cloned().collect()
    }

    /// Rename group `id` (department `base` under `parent`) to the first
    /// free of the names it may take where the server keeps group names unique.
    async fn take_unique(&self, id: &TargetId, spec: &DeptSpec, parent: Option<&TargetId>) -> Result<(), TargetError> {
        let mut last = None;
        for name in self.shown.names(&spec.name, parent) {
            let ops = vec![json!({"op": "replace", "path": "displayName", "value": name})];
            match self.client.send(Method::PATCH, &format!("/Groups/{id}"), &[], Some(&patch(ops))).await {
                Ok(_) => {
                    self.shown.took(id, name, spec, parent);
                    return Ok(());
                }
                Err(e) if self.name_taken(&e, &name, Some(id)).await? => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| TargetError::Conflict(format!("no free name for group {id}"))))
    }

    /// After group `id`'s rename: the groups named after its old name take
    /// its new one, so the next load reads them back unchanged.
    async fn follow(&self, id: &TargetId) {
        for (child, spec) in self.shown.after(id) {
            if let Err(e) = self.take_unique(&child, &spec, Some(id)).await {
                tracing::warn!(group = %child, error = %e, "A group named after its parent group could not follow the parent's new name; the next run renames it");
            }
        }
    }

    /// Create a department's group under the first free unique name (the
    /// department's own name is another's group): a 409 on one tries the
    /// next; ours found by externalId is bound.
    async fn create_unique(&self, spec: &DeptSpec, parent: Option<&TargetId>) -> Result<TargetId, TargetError> {
        let mut last = None;
        for name in self.shown.names(&spec.name, parent) {
            let mut body = mapping::group_body(spec);
            body["displayName"] = json!(name);
            match self.create("/Groups", &body, &spec.external_id).await.map(|(id, _)| id) {
                Ok(id) => {
                    tracing::info!(group = %id, name, department = spec.external_id, "The server keeps group names unique: this department's group takes a name of its own");
                    self.shown.took(&id, name, spec, parent);
                    self.posted.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id.clone());
                    return Ok(id);
                }
                Err(e) if self.name_taken(&e, &name, None).await? => {
                    if let Some(id) = self.find_one("/Groups", "externalId", &spec.external_id).await? {
                        return Ok(id);
                    }
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(TargetError::Conflict(format!(
            "the server keeps group names unique and no free name was found for {} ({})",
            spec.name,
            last.map(|e| e.to_string()).unwrap_or_default()
        )))
    }

    /// A group's name or externalId: by PATCH; where the server refuses that
    /// (400, 501), once by PUT of the group as it is now with the new values
    /// (its members kept), and by PUT from then on when that works. What
    /// neither takes is `refused`, remembered and not sent again until the
    /// source changes it.
    async fn update_group(&self, id: &TargetId, spec: &DeptSpec, changes: &[Change], ops: Vec<Value>) -> Result<(), TargetError> {
        use std::sync::atomic::Ordering::Relaxed;
        let path = format!("/Groups/{id}");
        let refused = if self.group_put.load(Relaxed) {
            None
        } else {
            match self.client.send(Method::PATCH, &path, &[], Some(&patch(ops.clone()))).await {
                Ok(_) => return Ok(()),
                Err(e) if matches!(e.status(), Some(400 | 501)) => Some(e),
                Err(e) => return Err(e),
            }
        };
        let put = async {
            let mut group = self.client.send(Method::GET, &path, &[], None).await?.unwrap_or_default();
            if let Some(g) = group.as_object_mut() {
                g.remove("meta");
                for c in changes {
                    match c.field {
                        Field::Name => g.insert("displayName".into(), json!(spec.name)),
                        Field::ExternalId => g.insert("externalId".into(), json!(spec.external_id)),
                        _ => None,
                    };
                }
            }
            self.client.send(Method::PUT, &path, &[], Some(&group)).await
        };
        match put.await {
            Ok(_) => {
                if refused.is_some() && !self.group_put.swap(true, Relaxed) {
                    tracing::info!(group = %id, "The target refuses group changes by PATCH and takes them by PUT; using PUT from now on");
                }
                Ok(())
            }
            Err(e) if matches!(e.status(), Some(400 | 405 | 501)) => {
                let fields: Vec<Field> = changes.iter().map(|c| c.field).filter(|f| matches!(f, Field::Name | Field::ExternalId)).collect();
                let attributes = ops.iter().map(mapping::attribute_of).collect();
                let detail = refused.map_or_else(|| e.to_string(), |r| format!("{r}; by PUT: {e}"));
                Err(TargetError::Refused { path, attributes, fields, detail })
            }
            Err(e) => Err(e),
        }
    }

    async fn delete(&self, path: String) -> Result<(), TargetError> {
        match self.client.send(Method::DELETE, &path, &[], None).await {
            Ok(_) => Ok(()),
            // Already gone: the delete is done.
            Err(e) if e.status() == Some(404) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A user's memberships, from `old` to `new`: batched, sent by `flush`.
    fn set_user_departments(&self, id: &TargetId, old: &[TargetId], new: &[TargetId]) {
        for g in old.iter().filter(|g| !new.contains(g)) {
            self.pending.remove(g, id);
        }
        for g in new.iter().filter(|g| !old.contains(g)) {
            self.pending.add(g, id, mapping::Member::User);
        }
    }
}

impl Target for ScimTarget {
    fn requests(&self) -> Vec<crate::targets::RequestRecord> {
        self.client.log.take()
    }

    fn departments(&self) -> DepartmentShape {
        if self.shape == DepartmentShape::Tree && self.numeric_ids.load(std::sync::atomic::Ordering::Relaxed) {
            return DepartmentShape::Flat;
        }
        self.shape
    }

    fn unheld(&self) -> FieldSet {
        self.with_dialect(discovery::Dialect::unheld)
    }

    fn check(&self) -> TResult<'_, Vec<(&'static str, String)>> {
        Box::pin(async move {
            let d = self.discover().await?;
            let mut rows = vec![("departments", format!("{:?}", self.shape))];
            // One resource of each kind tells how the server makes ids.
            let mut ids = Vec::new();
            for path in ["/Users", "/Groups"] {
                let page = self.client.send(Method::GET, path, &[("count", "1".to_owned())], None).await?.unwrap_or_default();
                ids.extend(page["Resources"].as_array().into_iter().flatten().filter_map(|r| r["id"].as_str().map(str::to_owned)));
            }
            if self.shape == DepartmentShape::Tree && ids.iter().any(|i| numeric(i)) {
                rows.push((
                    "nesting",
                    "ids are plain numbers, which users and groups may share: a group written as a member could be taken for \
                     the user of that id, so memberships are written flat (users only), no group in a group"
                        .into(),
                ));
            }
            rows.extend(d.rows(self.page_size, d.members_per_request(MEMBERS_PER_REQUEST)));
            Ok(rows)
        })
    }

    fn load(&self) -> TResult<'_, TargetSnapshot> {
        Box::pin(async move {
            let extras = self.discovered().await?.extras;
            // Each resource is read into what the snapshot needs as its page
            // arrives (100,000 users are never held as JSON at once), while
            // the next page is read.
            let users = self.client.list_converted("/Users", None, move |v| Self::user(v, &extras)).await?;
            self.loaded(users).await
        })
    }

    fn reads_in_part(&self) -> bool {
        true
    }

    /// The users bound to the objects named (`GET /Users/{id}`) and those
    /// their match keys and external ids find (`filter`), and every group;
    /// where the server has no filter, every user.
    fn load_for<'a>(&'a self, wanted: &'a super::Wanted) -> TResult<'a, TargetSnapshot> {
        Box::pin(async move {
            let d = self.discovered().await?;
            let extras = d.extras;
            if !d.filter {
                let users = self.client.list_converted("/Users", None, move |v| Self::user(v, &extras)).await?;
                return self.loaded(users).await;
            }
            let mut users = Vec::new();
            for id in &wanted.users {
                match self.client.send(Method::GET, &format!("/Users/{id}"), &[], None).await {
                    Ok(Some(v)) => Self::take_user(&mut users, v, &extras)?,
                    // Gone from the target: the plan says what follows.
                    Ok(None) => {}
                    Err(e) if e.status() == Some(404) => {}
                    Err(e) => return Err(e),
                }
            }
            let filters = wanted
                .external_ids
                .iter()
                .map(|x| format!("externalId eq {}", quoted(x)))
                .chain(wanted.keys.iter().map(|(k, v)| format!("{} eq {}", key_attribute(*k), quoted(v))));
            for filter in filters {
                self.client.list_each("/Users", Some(filter), |v| Self::take_user(&mut users, v, &extras)).await?;
            }
            let mut seen = std::collections::HashSet::new();
            users.retain(|u| seen.insert(u.id.clone()));
            self.loaded(users).await
        })
    }

    fn created_as_sent(&self, id: &TargetId) -> bool {
        self.posted.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(id)
    }

    fn not_kept_at_create(&self, id: &TargetId) -> Vec<(Field, Option<String>)> {
        self.created_unkept.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(id).unwrap_or_default()
    }

    fn leaving(&self, users: &[(&TargetId, &[TargetId])], departments: &[&TargetId]) -> bool {
        let going: std::collections::HashSet<&TargetId> = departments.iter().copied().collect();
        let parents = self.parents.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut left = self.left.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for d in departments {
            // Nothing more is sent to a group that goes.
            self.pending.forget(d);
            if let Some(p) = parents.get(*d).filter(|p| !going.contains(p)) {
                self.pending.remove(p, d);
            }
            left.insert((*d).clone());
        }
        for (u, groups) in users {
            for g in groups.iter().filter(|g| !going.contains(g)) {
                self.pending.remove(g, u);
            }
            left.insert((*u).clone());
        }
        !left.is_empty()
    }

    fn flush(&self) -> TResult<'_, Vec<Deferred>> {
        Box::pin(async move {
            let mut groups = self.pending.take();
            // Ids found numeric during this run: no group goes in a group.
            if self.numeric_ids.load(std::sync::atomic::Ordering::Relaxed) {
                for (_, delta) in &mut groups {
                    delta.add.retain(|_, kind| *kind != mapping::Member::Group);
                }
                groups.retain(|(_, d)| !d.add.is_empty() || !d.remove.is_empty());
            }
            let done = futures::stream::iter(groups)
                .map(|(group, delta)| async move {
                    let result = self
                        .send_members(&group, &delta)
                        .await
                        .map(|()| format!("members: {} added, {} removed", delta.add.len(), delta.remove.len()));
                    Deferred { kind: Kind::Department, op: crate::reconcile::Verb::Members, target_id: group, result }
                })
                .buffer_unordered(self.concurrency)
                .collect::<Vec<_>>()
                .await;
            let mut failed = self.failed_groups.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            failed.extend(done.iter().filter(|d| d.result.is_err()).map(|d| d.target_id.clone()));
            Ok(done)
        })
    }

    fn write<'a>(&'a self, w: super::Write<'a>) -> TResult<'a, Option<TargetId>> {
        super::dispatch(self, w)
    }
}

impl super::Operations for ScimTarget {
    fn create_department<'a>(&'a self, op: super::DepartmentCreate<'a>) -> TResult<'a, TargetId> {
        let super::DepartmentCreate { spec, parent } = op;
        Box::pin(async move {
            let body = mapping::group_body(spec);
            let id = match self.create("/Groups", &body, &spec.external_id).await.map(|(id, _)| id) {
                Ok(id) => {
                    self.shown.set(&id, spec.name.clone());
                    self.posted.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id.clone());
                    id
                }
                Err(e) if self.name_taken(&e, &spec.name, None).await? => {
                    // Already there: ours (an earlier run created it and its
                    // answer or binding was lost) is bound; a group of that
                    // name that carries no mark is taken over; another
                    // department's group (names repeat: Sales/Team and
                    // Support/Team on a server that keeps names unique) is a
                    // conflict, and nothing is written to it.
                    match self.find_one("/Groups", "externalId", &spec.external_id).await? {
                        Some(id) => id,
                        None => {
                            let named = self.find_all("/Groups", "displayName", &spec.name).await?;
                            // Taken, yet no group shows exactly this name: the
                            // server compares names its own way (ignoring case).
                            if named.is_empty() {
                                return self.create_unique(spec, parent).await.inspect(|id| self.pending_parent(parent, id));
                            }
                            let [g] = named.as_slice() else { return Err(e) };
                            let id = g.get("id").and_then(Value::as_str).map(|s| TargetId(s.to_owned())).ok_or(e)?;
                            if g.get("externalId").and_then(Value::as_str).is_some_and(|x| !x.is_empty()) {
                                // Another department's: this one takes a name of its own.
                                self.create_unique(spec, parent).await?
                            } else {
                                let ops = vec![json!({"op": "replace", "path": "externalId", "value": spec.external_id})];
                                self.client.send(Method::PATCH, &format!("/Groups/{id}"), &[], Some(&patch(ops))).await?;
                                id
                            }
                        }
                    }
                }
                Err(e) => return Err(e),
            };
            self.pending_parent(parent, &id);
            Ok(id)
        })
    }

    fn update_department<'a>(&'a self, op: super::DepartmentUpdate<'a>) -> TResult<'a, ()> {
        let super::DepartmentUpdate { id, spec, changes, old_parent, parent, .. } = op;
        Box::pin(async move {
            let renamed = changes.iter().any(|c| c.field == Field::Name);
            let mut ops = mapping::group_patch(spec, changes);
            // Already shown under that name (a name read back): nothing to send.
            if self.shown.name(id).as_deref() == Some(spec.name.as_str()) {
                ops.retain(|op| op.get("path").and_then(Value::as_str) != Some("displayName"));
            }
            if !ops.is_empty() && self.with_members(id, &ops).await {
                if renamed {
                    self.shown.set(id, spec.name.clone());
                }
            } else if !ops.is_empty() {
                match self.update_group(id, spec, changes, ops).await {
                    // The new name is another department's group: a name of its own.
                    Err(e) if renamed && self.name_taken(&e, &spec.name, Some(id)).await? => {
                        self.take_unique(id, spec, parent.or(old_parent)).await?;
                    }
                    Ok(()) if renamed => self.shown.set(id, spec.name.clone()),
                    r => r?,
                }
            }
            if changes.iter().any(|c| c.field == Field::Parent) {
                // A move: leave the old parent group, join the new one.
                if let Some(old) = old_parent {
                    self.pending.remove(old, id);
                }
                if let Some(new) = parent {
                    self.pending.add(new, id, mapping::Member::Group);
                }
                self.shown.moved(id, parent);
                // A name made after the old parent is made after the new one.
                if !renamed && self.shown.after_parent(id).is_some() {
                    self.take_unique(id, spec, parent).await?;
                }
            }
            if renamed {
                self.follow(id).await;
            }
            Ok(())
        })
    }

    fn delete_department<'a>(&'a self, id: &'a TargetId) -> TResult<'a, ()> {
        self.pending.forget(id);
        let parent = self.parents.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(id);
        // Already out of its parent, in the parent's batch.
        let parent = self.still_in(id, parent.as_ref()).pop();
        Box::pin(async move {
            // Out of its parent's members first: a server that keeps a dead
            // member reference (scim2-server) would list it for good.
            if let Some(p) = parent {
                let delta = members::Delta { remove: [id.clone()].into(), ..members::Delta::default() };
                match self.send_members(&p, &delta).await {
                    Ok(()) => {}
                    // The parent is gone too (deleted first, or by someone else).
                    Err(e) if e.status() == Some(404) => {}
                    Err(e) => return Err(e),
                }
            }
            self.delete(format!("/Groups/{id}")).await
        })
    }

    fn create_user<'a>(&'a self, op: super::UserCreate<'a>) -> TResult<'a, TargetId> {
        let super::UserCreate { spec, departments, manager } = op;
        Box::pin(async move {
            let body = mapping::user_body(spec, self.unheld(), &self.extras(), manager);
            let id = match self.create("/Users", &body, &spec.external_id).await {
                Ok((id, stored)) => {
                    let unkept = stored.map(|v| self.unkept_in(spec, &v)).unwrap_or_default();
                    if !unkept.is_empty() {
                        self.created_unkept.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id.clone(), unkept);
                    }
                    id
                }
                Err(e) if e.status() == Some(409) => {
                    // Already there: find it by our external id or the match keys and
                    // bind it, bringing every mapped attribute in line.
                    let Some(id) = self.find_existing_user(spec).await? else {
                        return Err(TargetError::Conflict(format!(
                            "{e}: userName {:?} is taken by a target account that none of the match keys ({}) identify as this user; not bound",
                            spec.username.as_deref().unwrap_or_default(),
                            self.match_by.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
                        )));
                    };
                    self.patch_user(
                        &id,
                        mapping::user_patch(spec, &adopted_fields(manager.is_some()), self.unheld(), &self.extras(), manager),
                    )
                    .await?;
                    id
                }
                Err(e) => return Err(e),
            };
            self.set_user_departments(&id, &[], departments);
            Ok(id)
        })
    }

    fn update_user<'a>(&'a self, op: super::UserUpdate<'a>) -> TResult<'a, ()> {
        let super::UserUpdate { id, spec, changes, old_departments, departments, manager } = op;
        Box::pin(async move {
            let fields: Vec<Field> = changes.iter().map(|c| c.field).collect();
            // Memberships first: they go whatever the target makes of the attributes.
            if fields.contains(&Field::Departments) {
                self.set_user_departments(id, old_departments, departments);
            }
            self.patch_user(id, mapping::user_patch(spec, &fields, self.unheld(), &self.extras(), manager)).await?;
            Ok(())
        })
    }

    fn disable_user<'a>(&'a self, id: &'a TargetId) -> TResult<'a, ()> {
        Box::pin(async move {
            let ops = vec![json!({"op": "replace", "path": "active", "value": false})];
            self.client.send(Method::PATCH, &format!("/Users/{id}"), &[], Some(&patch(ops))).await.map(|_| ())
        })
    }

    fn delete_user<'a>(&'a self, op: super::UserDelete<'a>) -> TResult<'a, ()> {
        let super::UserDelete { id, departments } = op;
        Box::pin(async move {
            // Servers without referential integrity would keep the member:
            // leave each group now, before the user is gone (unless that
            // went in the groups' batches already).
            for g in self.still_in(id, departments) {
                let delta = members::Delta { remove: [id.clone()].into(), ..Default::default() };
                self.send_members(&g, &delta).await?;
            }
            self.delete(format!("/Users/{id}")).await
        })
    }
}

#[cfg(test)]
mod tests;
