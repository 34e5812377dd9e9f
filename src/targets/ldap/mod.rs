//! Target `ldap`: keep an OpenLDAP or 389 Directory Server tree in step.
//!
//! Objects are known by their `entryUUID` (389-DS without the entryUUID
//! plugin: `nsUniqueId`), read back after each add, never by DN: a rename
//! or a move is a `modrdn` that keeps the binding. The DN of every entry
//! is kept in memory from the load and followed through each rename.
//!
//! Departments are OUs nested like the tree (`ou_tree`, a user's entry
//! under its primary department's OU) or `groupOfNames` entries, a child
//! group a member of its parent's (`groups`, users flat). A group keeps an
//! empty `member` value (the empty DN) because `groupOfNames` must have a
//! member; it is never read as one.
//!
//! Result codes: 68 (entryAlreadyExists) on an add binds the entry when it
//! appeared after the load (or carries this object's mark), else is a
//! conflict; 32 (noSuchObject) on a delete is done; 66 (notAllowedOnNonLeaf)
//! moves the users left in an OU out and tries again; 51/52 and timeouts are
//! retried with backoff; everything else fails the item naming the DN.

mod client;
mod config;
mod describe;
mod entries;
mod mapping;
mod schema;

pub use config::{Attributes, Disable, Layout, LdapTargetConfig, is_under, normalize, parse};

use super::{TResult, Target, TargetError};
use crate::ldap::LdapError;
use crate::model::{TargetId, TargetSnapshot};
use crate::reconcile::{DeptSpec, Field, FieldSet, UserSpec};
use backon::Retryable;
use entries::{Index, dn_parent, first_rdn, rdn};
use ldap3::{Ldap, Mod, Scope};
use std::collections::HashSet;
use std::sync::Mutex;

/// The attributes that name an entry for good, in order of preference.
const ID_ATTRIBUTES: [&str; 2] = ["entryUUID", "nsUniqueId"];

#[derive(Debug)]
pub struct LdapTarget {
    c: LdapTargetConfig,
    conn: tokio::sync::Mutex<Option<Ldap>>,
    index: Mutex<Index>,
    /// Department operations one at a time: a rename moves the DNs of
    /// everything under it.
    tree: tokio::sync::Mutex<()>,
    /// `entryUUID` or `nsUniqueId`, found at the load.
    id_attr: Mutex<&'static str>,
    /// `[mapping.attributes]`: extra attributes, by their LDAP names.
    extras: Vec<String>,
    /// The schema does not allow the manager attribute on users (found at the load).
    no_manager: std::sync::atomic::AtomicBool,
    /// The schema does not allow the leader attribute on departments.
    no_leader: std::sync::atomic::AtomicBool,
}

type Attrs = Vec<(String, HashSet<String>)>;

fn one(v: &str) -> HashSet<String> {
    HashSet::from([v.to_owned()])
}

impl LdapTarget {
    pub fn new(c: &LdapTargetConfig, users: &crate::reconcile::UserPolicy) -> Self {
        LdapTarget {
            extras: users.attributes.clone(),
            no_manager: false.into(),
            no_leader: false.into(),
            c: c.clone(),
            conn: tokio::sync::Mutex::new(None),
            index: Mutex::new(Index::default()),
            tree: tokio::sync::Mutex::new(()),
            id_attr: Mutex::new(ID_ATTRIBUTES[0]),
        }
    }

    fn index<T>(&self, f: impl FnOnce(&mut Index) -> T) -> T {
        let mut i = self.index.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut i)
    }

    fn id_attr(&self) -> &'static str {
        *self.id_attr.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What the directory's schema does not allow of this config: each a
    /// key and why. Nothing when the schema cannot be read (an ACL): the
    /// adds then say it themselves.
    async fn schema_problems(&self) -> Result<Vec<String>, TargetError> {
        // Until the schema says otherwise: no leaders on OUs (the standard
        // organizationalUnit has no `owner`), managers where configured.
        let a = &self.c.attributes;
        self.no_leader.store(a.leader.is_empty() || self.c.layout == Layout::OuTree, std::sync::atomic::Ordering::Relaxed);
        self.no_manager.store(a.manager.is_empty(), std::sync::atomic::Ordering::Relaxed);
        let root = self.search("", Scope::Base, "(objectClass=*)", &["subschemaSubentry"]).await?;
        let at = root.first().and_then(|e| entries::first(&e.attrs, "subschemaSubentry")).unwrap_or("cn=Subschema").to_owned();
        let sub = match self.search(&at, Scope::Base, "(objectClass=subschema)", &["objectClasses", "attributeTypes"]).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "The directory's schema cannot be read; attributes are not checked against it");
                return Ok(Vec::new());
            }
        };
        let Some(sub) = sub.first() else { return Ok(Vec::new()) };
        let values = |a: &str| entries::all(&sub.attrs, a).to_vec();
        let schema = schema::Schema::parse(&values("objectClasses"), &values("attributeTypes"));
        let users: Vec<&str> = self.c.user_object_classes.iter().map(String::as_str).collect();
        let departments: &[&str] = match self.c.layout {
            Layout::OuTree => &["organizationalUnit"],
            Layout::Groups => &["groupOfNames"],
        };
        let mut checks: Vec<(&str, &str, &[&str])> = vec![("target.attributes.external_id", &a.external_id, departments)];
        for (key, attr) in [
            ("target.attributes.external_id", &a.external_id),
            ("target.attributes.username", &a.username),
            ("target.attributes.name", &a.name),
            ("target.attributes.surname", &a.surname),
            ("target.attributes.nickname", &a.nickname),
            ("target.attributes.email", &a.email),
            ("target.attributes.mobile", &a.mobile),
            ("target.attributes.employee_no", &a.employee_no),
            ("target.attributes.title", &a.title),
            ("target.attributes.department", &a.department),
        ] {
            checks.push((key, attr, &users));
        }
        if let Disable::Attribute { name, .. } = &self.c.disable {
            checks.push(("target.disable_attribute", name, &users));
        }
        let extra_keys: Vec<String> = self.extras.iter().map(|x| format!("mapping.attributes.{x}")).collect();
        for (key, name) in extra_keys.iter().zip(&self.extras) {
            checks.push((key, name, &users));
        }
        // A directory whose user classes cannot hold a manager: not written (no error).
        let no_manager = a.manager.is_empty() || schema.allows(&users, &a.manager) == Some(false);
        self.no_manager.store(no_manager, std::sync::atomic::Ordering::Relaxed);
        let no_leader = a.leader.is_empty() || schema.allows(departments, &a.leader) == Some(false);
        self.no_leader.store(no_leader, std::sync::atomic::Ordering::Relaxed);
        Ok(checks
            .into_iter()
            .filter(|(_, attr, _)| !attr.is_empty())
            .filter(|(_, attr, classes)| schema.allows(classes, attr) == Some(false))
            .map(|(key, attr, classes)| {
                format!(
                    "{key}: {attr} is not allowed on {} entries by the directory's schema; pick an attribute they allow",
                    classes.join(" + ")
                )
            })
            .collect())
    }

    /// Users whose manager's DN changed in this run (a rename, a move, its
    /// OU's): the manager attribute written anew, each an item.
    async fn managers_follow(&self) -> Vec<super::Deferred> {
        let attr = &self.c.attributes.manager;
        let stale: Vec<(TargetId, String, String)> = self.index(|i| {
            i.managers
                .iter()
                .filter_map(|(user, (m, written))| {
                    let now = i.dn.get(m)?;
                    (normalize(now) != normalize(written)).then(|| (user.clone(), i.dn.get(user).cloned().unwrap_or_default(), now.clone()))
                })
                .collect()
        });
        let mut out = Vec::new();
        for (user, dn, now) in stale {
            let result = self.modify(&dn, vec![Mod::Replace(attr.clone(), one(&now))], &[]).await;
            if result.is_ok() {
                self.index(|i| {
                    i.managers.entry(user.clone()).and_modify(|(_, w)| *w = now.clone());
                });
            }
            out.push(super::Deferred {
                kind: crate::model::Kind::User,
                op: crate::reconcile::Verb::Update,
                target_id: user,
                result: result.map(|()| format!("{attr}: the manager's new DN {now}")).map_err(TargetError::from),
            });
        }
        out
    }

    /// Remember the manager DN written for `user` (none: no manager).
    fn wrote_manager(&self, user: &TargetId, manager: Option<&TargetId>, dn: Option<&str>) {
        self.index(|i| match (manager, dn) {
            (Some(m), Some(dn)) => {
                i.managers.insert(user.clone(), (m.clone(), dn.to_owned()));
            }
            _ => {
                i.managers.remove(user);
            }
        });
    }

    /// The DN of a user's manager, written to the manager attribute (none when the schema refuses it).
    fn manager_dn(&self, manager: Option<&TargetId>) -> Result<Option<String>, TargetError> {
        match manager {
            Some(m) if !self.no_manager.load(std::sync::atomic::Ordering::Relaxed) => self.dn_of(m).map(Some),
            _ => Ok(None),
        }
    }

    fn dn_of(&self, id: &TargetId) -> Result<String, TargetError> {
        self.index(|i| i.dn.get(id).cloned()).ok_or_else(|| TargetError::Missing(format!("no entry known by {} {id}", self.id_attr())))
    }

    /// After an add answered 68: the entry is this object's when it carries
    /// this object's mark, or carries no other mark and is no object this
    /// run knows (not there at the load, not added or bound for another
    /// object since: a create whose answer was lost). Anything else (two
    /// departments named alike, another object's entry) is a conflict
    /// naming both: identity never rests on a name that can repeat.
    async fn existing(&self, dn: &str, external_id: &str) -> Result<TargetId, TargetError> {
        let (attr, ext) = (self.id_attr(), self.c.attributes.external_id.as_str());
        let attrs: Vec<&str> = [attr, ext].into_iter().filter(|a| !a.is_empty()).collect();
        let e = self.search(dn, Scope::Base, "(objectClass=*)", &attrs).await?;
        let e = e.first().ok_or_else(|| TargetError::Unexpected(format!("{dn} exists but cannot be read")))?;
        let id = entries::first(&e.attrs, attr)
            .map(|v| TargetId(v.to_owned()))
            .ok_or_else(|| TargetError::Unexpected(format!("{dn} has no {attr}")))?;
        // `first` finds nothing for an unset (empty) attribute name.
        let mark = entries::first(&e.attrs, ext);
        let known = self.index(|i| i.loaded.contains(&id) || i.dn.contains_key(&id));
        if mark == Some(external_id) || (mark.is_none() && !known) {
            self.index(|i| i.dn.insert(id.clone(), dn.to_owned()));
            return Ok(id);
        }
        let whose = match mark {
            Some(other) => format!("source {other}'s entry"),
            None => "another object".to_owned(),
        };
        Err(TargetError::Conflict(format!(
            "{dn} already exists and is {whose}, not source {external_id}'s; nothing was written to it (match it by \
             policy.users.match_by, or set target.attributes.external_id so orgsync can recognise its own entries)"
        )))
    }

    /// Add the entry at `dn`; an "already exists" is judged by [`Self::existing`].
    async fn added(&self, dn: &str, attrs: Attrs, external_id: &str) -> Result<TargetId, TargetError> {
        match self.add(dn, attrs).await? {
            68 => self.existing(dn, external_id).await,
            _ => self.read_id(dn).await,
        }
    }

    /// `groups`: the `cn`s a department's group may take, in order: its
    /// name; then, when that is another department's, `unique_name` with
    /// its parent group's name (`Team (Sales)`); then that with a number.
    /// The department's own name is kept in `ou`, so the planner compares
    /// names, never the disambiguated `cn`: a group keeps its `cn` for good.
    fn group_names(&self, name: &str, parent: Option<&TargetId>) -> Vec<String> {
        let parent = parent.and_then(|p| self.dn_of(p).ok()).map(|dn| entries::rdn_value(&dn));
        let unique = match &parent {
            Some(p) => self.c.unique_name.fill(name, p),
            None => name.to_owned(),
        };
        let mut names = vec![name.to_owned()];
        if unique != name {
            names.push(unique.clone());
        }
        names.extend((2..=9).map(|n| format!("{unique} {n}")));
        names
    }

    /// `groups`: add a department's group under the first free name of
    /// [`Self::group_names`] (a name another department's group has is a
    /// conflict, never a binding).
    async fn add_group(&self, spec: &DeptSpec, parent: Option<&TargetId>) -> Result<(TargetId, String), TargetError> {
        let ext = &self.c.attributes.external_id;
        let mut conflict = None;
        for cn in self.group_names(&spec.name, parent) {
            let dn = format!("{},{}", rdn("cn", &cn), self.c.departments_dn);
            let mut attrs: Attrs = vec![
                ("objectClass".into(), one("groupOfNames")),
                ("cn".into(), one(&cn)),
                // The department's name, whatever its cn had to be.
                ("ou".into(), one(&spec.name)),
                // groupOfNames must have a member: the empty DN, never read as one.
                ("member".into(), one("")),
            ];
            if !ext.is_empty() {
                attrs.push((ext.clone(), one(&spec.external_id)));
            }
            match self.added(&dn, attrs, &spec.external_id).await {
                Ok(id) => return Ok((id, dn)),
                Err(e @ TargetError::Conflict(_)) => conflict = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(conflict.unwrap_or_else(|| TargetError::Conflict(format!("no free group name for {}", spec.name))))
    }

    /// `groups`: rename a department's group to the first free name of
    /// [`Self::group_names`]; its `ou` follows. Returns the new DN.
    async fn rename_group(&self, id: &TargetId, dn: &str, name: &str, parent: Option<&TargetId>) -> Result<String, TargetError> {
        for cn in self.group_names(name, parent) {
            match self.modrdn(id, dn, &rdn("cn", &cn), None, false).await {
                Ok(now) => {
                    self.modify(&now, vec![Mod::Replace("ou".into(), one(name))], &[]).await?;
                    return Ok(now);
                }
                Err(LdapError::Result { rc: 68, .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(TargetError::Conflict(format!("no free group name for {name}: {dn} keeps its name")))
    }

    // --- departments -------------------------------------------------------

    /// `ou_tree`: a department's OU under its parent's (groups are named by [`Self::group_names`]).
    fn ou_dn(&self, name: &str, parent: Option<&TargetId>) -> Result<String, TargetError> {
        let base = match parent {
            Some(p) => self.dn_of(p)?,
            None => self.c.departments_dn.clone(),
        };
        Ok(format!("{},{base}", rdn("ou", name)))
    }

    /// The home of a user entry: its primary department's OU (`ou_tree`),
    /// `disabled_dn` when disabled by moving, else `users_dn`.
    fn home(&self, departments: &[TargetId], active: bool) -> Result<String, TargetError> {
        if let (Disable::Move { disabled_dn }, false) = (&self.c.disable, active) {
            return Ok(disabled_dn.clone());
        }
        match (self.c.layout, departments.first()) {
            (Layout::OuTree, Some(d)) => self.dn_of(d),
            _ => Ok(self.c.users_dn.clone()),
        }
    }

    /// Add or remove `member` values of groups.
    async fn membership(&self, member: &str, groups: &[TargetId], add: bool) -> Result<(), TargetError> {
        for g in groups {
            let gdn = self.dn_of(g)?;
            let m = if add { Mod::Add("member".to_owned(), one(member)) } else { Mod::Delete("member".to_owned(), one(member)) };
            // 20: already a member; 16: not one (any more).
            self.modify(&gdn, vec![m], &[16, 20]).await?;
        }
        Ok(())
    }

    /// In `groups`, `member` values naming `old` name `new` instead.
    async fn member_renamed(&self, id: &TargetId, old: &str, new: &str) -> Result<(), TargetError> {
        if self.c.layout != Layout::Groups {
            return Ok(());
        }
        let groups: Vec<TargetId> = self.index(|i| i.groups_of.get(id).map(|g| g.iter().cloned().collect()).unwrap_or_default());
        for g in groups {
            let gdn = self.dn_of(&g)?;
            self.modify(&gdn, vec![Mod::Delete("member".into(), one(old)), Mod::Add("member".into(), one(new))], &[16, 20]).await?;
        }
        Ok(())
    }

    // --- users -------------------------------------------------------------

    /// Delete a user entry and its `member` values.
    async fn remove_user(&self, id: &TargetId) -> Result<(), TargetError> {
        let dn = self.dn_of(id)?;
        if self.c.layout == Layout::Groups {
            let groups: Vec<TargetId> = self.index(|i| i.groups_of.get(id).map(|g| g.iter().cloned().collect()).unwrap_or_default());
            self.membership(&dn, &groups, false).await?;
        }
        self.delete(&dn).await?;
        self.index(|i| i.forget(id));
        Ok(())
    }

    /// Set the disabled state per `disable`.
    async fn set_active(&self, id: &TargetId, active: bool, departments: &[TargetId]) -> Result<(), TargetError> {
        match &self.c.disable {
            Disable::Delete if !active => self.remove_user(id).await,
            Disable::Delete => Ok(()),
            Disable::Attribute { name, value } => {
                let dn = self.dn_of(id)?;
                let values = if active { HashSet::new() } else { one(value) };
                self.modify(&dn, vec![Mod::Replace(name.clone(), values)], &[]).await.map_err(Into::into)
            }
            Disable::Move { .. } => {
                let dn = self.dn_of(id)?;
                let home = self.home(departments, active)?;
                if normalize(dn_parent(&dn)) != normalize(&home) {
                    let new = self.modrdn(id, &dn, first_rdn(&dn), Some(&home), false).await?;
                    self.member_renamed(id, &dn, &new).await?;
                }
                Ok(())
            }
        }
    }

    fn protected(&self, dn: &str, uid: Option<&str>) -> bool {
        normalize(dn) == normalize(&self.c.bind_dn)
            || self.c.protected.iter().any(|p| normalize(p) == normalize(dn) || uid.is_some_and(|u| u.eq_ignore_ascii_case(p)))
    }
}

impl From<LdapError> for TargetError {
    fn from(e: LdapError) -> Self {
        TargetError::Ldap(e)
    }
}

impl Target for LdapTarget {
    fn departments(&self) -> crate::reconcile::DepartmentShape {
        crate::reconcile::DepartmentShape::Tree
    }

    fn describe(&self, ops: &[crate::reconcile::Op], resolve: &dyn Fn(&crate::model::SourceId) -> Option<TargetId>) -> Vec<String> {
        self.operations(ops, resolve)
    }

    fn primary_only(&self) -> bool {
        self.c.layout == Layout::OuTree
    }

    fn unheld(&self) -> FieldSet {
        let mut s = FieldSet::default();
        for &f in Field::USER {
            if !matches!(f, Field::Departments | Field::Active | Field::Attributes) && self.attribute(f).is_empty() {
                s = s.with(f);
            }
        }
        if self.no_manager.load(std::sync::atomic::Ordering::Relaxed) {
            s = s.with(Field::Manager);
        }
        if self.no_leader.load(std::sync::atomic::Ordering::Relaxed) {
            s = s.with(Field::Leaders);
        }
        s
    }

    fn check(&self) -> TResult<'_, Vec<(&'static str, String)>> {
        Box::pin(async move {
            let root = self.search("", Scope::Base, "(objectClass=*)", &["vendorName", "vendorVersion", "supportedControl"]).await?;
            let vendor = root
                .first()
                .and_then(|e| {
                    entries::first(&e.attrs, "vendorName")
                        .map(|v| format!("{v} {}", entries::first(&e.attrs, "vendorVersion").unwrap_or("")))
                })
                .unwrap_or_else(|| "(the root DSE names no vendor)".into());
            let mut rows = vec![
                ("url", self.c.connection.url.to_string()),
                ("bound as", self.c.bind_dn.clone()),
                ("server", vendor.trim().to_owned()),
            ];
            for (key, dn) in [("users_dn", &self.c.users_dn), ("departments_dn", &self.c.departments_dn)] {
                let found = self.search(dn, Scope::Base, "(objectClass=*)", &ID_ATTRIBUTES).await;
                rows.push((
                    key,
                    match found {
                        Ok(e) if !e.is_empty() => format!("{dn} (exists)"),
                        Ok(_) | Err(LdapError::Result { rc: 32, .. }) => format!("{dn} (missing: create it before the first run)"),
                        Err(e) => return Err(e.into()),
                    },
                ));
            }
            let problems = self.schema_problems().await?;
            rows.push(("schema", if problems.is_empty() { "every attribute written is allowed".into() } else { problems.join("; ") }));
            Ok(rows)
        })
    }

    fn load(&self) -> TResult<'_, TargetSnapshot> {
        Box::pin(async move {
            // Which attribute names entries for good.
            let probe = self.search(&self.c.users_dn, Scope::Base, "(objectClass=*)", &ID_ATTRIBUTES).await.map_err(|e| match e {
                LdapError::Result { rc: 32, .. } => {
                    TargetError::Missing(format!("target.users_dn {} does not exist: create it before the first run", self.c.users_dn))
                }
                e => e.into(),
            })?;
            let attr = ID_ATTRIBUTES
                .into_iter()
                .find(|a| probe.first().is_some_and(|e| entries::first(&e.attrs, a).is_some()))
                .ok_or_else(|| TargetError::Unexpected("the directory gives entries neither entryUUID nor nsUniqueId".into()))?;
            *self.id_attr.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = attr;
            // An attribute the schema refuses would fail every add: not one is tried.
            let problems = self.schema_problems().await?;
            if !problems.is_empty() {
                return Err(TargetError::Schema(problems));
            }
            let loaded = entries::load(self, attr).await?;
            let snapshot = self.index(|i| {
                *i = loaded.index;
                loaded.snapshot
            });
            Ok(snapshot)
        })
    }

    fn flush(&self) -> TResult<'_, Vec<super::Deferred>> {
        Box::pin(async move {
            let done = self.managers_follow().await;
            if let Some(mut l) = self.conn.lock().await.take() {
                let _ = l.unbind().await;
            }
            Ok(done)
        })
    }

    fn write<'a>(&'a self, w: super::Write<'a>) -> TResult<'a, Option<TargetId>> {
        super::dispatch(self, w)
    }
}

impl super::Operations for LdapTarget {
    fn create_department<'a>(&'a self, op: super::DepartmentCreate<'a>) -> TResult<'a, TargetId> {
        let super::DepartmentCreate { spec, parent } = op;
        Box::pin(async move {
            let _tree = self.tree.lock().await;
            let (id, dn) = match self.c.layout {
                Layout::OuTree => {
                    let dn = self.ou_dn(&spec.name, parent)?;
                    let ext = &self.c.attributes.external_id;
                    let mut attrs: Attrs = vec![("objectClass".into(), one("organizationalUnit")), ("ou".into(), one(&spec.name))];
                    if !ext.is_empty() {
                        attrs.push((ext.clone(), one(&spec.external_id)));
                    }
                    (self.added(&dn, attrs, &spec.external_id).await?, dn)
                }
                Layout::Groups => self.add_group(spec, parent).await?,
            };
            self.index(|i| i.dn.insert(id.clone(), dn.clone()));
            if let (Layout::Groups, Some(p)) = (self.c.layout, parent) {
                self.membership(&dn, std::slice::from_ref(p), true).await?;
                self.index(|i| i.groups_of.entry(id.clone()).or_default().insert(p.clone()));
            }
            Ok(id)
        })
    }

    fn update_department<'a>(&'a self, op: super::DepartmentUpdate<'a>) -> TResult<'a, ()> {
        let super::DepartmentUpdate { id, spec, changes, old_parent, parent, leaders } = op;
        Box::pin(async move {
            let _tree = self.tree.lock().await;
            let dn = self.dn_of(id)?;
            let renamed = changes.iter().any(|c| c.field == Field::Name);
            let moved = changes.iter().any(|c| c.field == Field::Parent);
            let naming = if self.c.layout == Layout::OuTree { "ou" } else { "cn" };
            let new_rdn = rdn(naming, &spec.name);
            match self.c.layout {
                Layout::OuTree if renamed || moved => {
                    let superior = match parent {
                        Some(p) => self.dn_of(p)?,
                        None => self.c.departments_dn.clone(),
                    };
                    self.modrdn(id, &dn, &new_rdn, moved.then_some(superior.as_str()), true).await?;
                }
                Layout::Groups => {
                    let mut now = dn.clone();
                    if renamed {
                        now = self.rename_group(id, &dn, &spec.name, parent.or(old_parent)).await?;
                        self.member_renamed(id, &dn, &now).await?;
                    }
                    if moved {
                        if let Some(old) = old_parent {
                            self.membership(&now, std::slice::from_ref(old), false).await?;
                        }
                        if let Some(p) = parent {
                            self.membership(&now, std::slice::from_ref(p), true).await?;
                        }
                        self.index(|i| {
                            let g = i.groups_of.entry(id.clone()).or_default();
                            g.clear();
                            g.extend(parent.cloned());
                        });
                    }
                }
                Layout::OuTree => {}
            }
            let ext = &self.c.attributes.external_id;
            if !ext.is_empty() && changes.iter().any(|c| c.field == Field::ExternalId) {
                let dn = self.dn_of(id)?;
                self.modify(&dn, vec![Mod::Replace(ext.clone(), one(&spec.external_id))], &[]).await?;
            }
            if changes.iter().any(|c| c.field == Field::Leaders) && !self.no_leader.load(std::sync::atomic::Ordering::Relaxed) {
                let dn = self.dn_of(id)?;
                let dns: HashSet<String> = leaders.iter().map(|l| self.dn_of(l)).collect::<Result<_, _>>()?;
                self.modify(&dn, vec![Mod::Replace(self.c.attributes.leader.clone(), dns)], &[]).await?;
            }
            Ok(())
        })
    }

    fn delete_department<'a>(&'a self, id: &'a TargetId) -> TResult<'a, ()> {
        Box::pin(async move {
            let _tree = self.tree.lock().await;
            let dn = self.dn_of(id)?;
            if self.c.layout == Layout::Groups {
                let parents: Vec<TargetId> = self.index(|i| i.groups_of.get(id).map(|g| g.iter().cloned().collect()).unwrap_or_default());
                self.membership(&dn, &parents, false).await?;
                self.delete(&dn).await?;
                self.index(|i| i.forget(id));
                return Ok(());
            }
            match self.delete(&dn).await {
                Err(LdapError::Result { rc: 66, .. }) => {
                    // Users orgsync keeps (disabled, or not managed) are left
                    // in the OU: they move to users_dn, then the OU goes.
                    let children = self.search(&dn, Scope::OneLevel, "(objectClass=*)", &[self.id_attr()]).await?;
                    let mut stuck = Vec::new();
                    for e in &children {
                        let child = entries::first(&e.attrs, self.id_attr()).map(|v| TargetId(v.to_owned()));
                        let is_user = child.as_ref().is_some_and(|c| self.index(|i| i.users.contains(c)));
                        match child.filter(|_| is_user) {
                            Some(child) => {
                                let new = self.modrdn(&child, &e.dn, first_rdn(&e.dn), Some(&self.c.users_dn), false).await?;
                                self.member_renamed(&child, &e.dn, &new).await?;
                            }
                            None => stuck.push(e.dn.clone()),
                        }
                    }
                    if !stuck.is_empty() {
                        return Err(TargetError::Blocked(format!(
                            "{dn} still holds entries orgsync does not manage ({}): move or delete them, then the next run deletes it",
                            stuck.join("; ")
                        )));
                    }
                    self.delete(&dn).await?;
                }
                r => r?,
            }
            self.index(|i| i.forget(id));
            Ok(())
        })
    }

    fn create_user<'a>(&'a self, op: super::UserCreate<'a>) -> TResult<'a, TargetId> {
        let super::UserCreate { spec, departments, manager } = op;
        Box::pin(async move {
            let dn = format!("{},{}", self.user_rdn(spec)?, self.home(departments, spec.active)?);
            let manager_dn = self.manager_dn(manager)?;
            let id = match self.add(&dn, self.user_attrs(spec, manager_dn.as_deref())).await? {
                68 => self.existing(&dn, &spec.external_id).await?,
                _ => self.read_id(&dn).await?,
            };
            self.wrote_manager(&id, manager, manager_dn.as_deref());
            self.index(|i| {
                i.dn.insert(id.clone(), dn.clone());
                i.users.insert(id.clone());
            });
            if self.c.layout == Layout::Groups {
                self.membership(&dn, departments, true).await?;
                self.index(|i| i.groups_of.entry(id.clone()).or_default().extend(departments.iter().cloned()));
            }
            Ok(id)
        })
    }

    fn update_user<'a>(&'a self, op: super::UserUpdate<'a>) -> TResult<'a, ()> {
        let super::UserUpdate { id, spec, changes, old_departments, departments, manager } = op;
        Box::pin(async move {
            let has = |f: Field| changes.iter().any(|c| c.field == f);
            if has(Field::Active) && !spec.active && self.c.disable == Disable::Delete {
                return self.remove_user(id).await;
            }
            let mut dn = self.dn_of(id)?;
            // The naming attribute changes by modrdn, not by modify.
            let rename = changes.iter().any(|c| self.rdn_field(c.field));
            let home_moves = self.c.layout == Layout::OuTree && has(Field::Departments);
            let new_rdn = if rename { self.user_rdn(spec)? } else { first_rdn(&dn).to_owned() };
            let superior = if home_moves { Some(self.home(departments, spec.active)?) } else { None };
            let stays = superior.as_ref().is_none_or(|s| normalize(s) == normalize(dn_parent(&dn)));
            if rename || !stays {
                let new = self.modrdn(id, &dn, &new_rdn, superior.as_deref().filter(|_| !stays), false).await?;
                self.member_renamed(id, &dn, &new).await?;
                dn = new;
            }
            let mut mods: Vec<Mod<String>> = Vec::new();
            for c in changes {
                let attr = self.attribute(c.field);
                // The manager goes as a DN (`reference_mods`).
                if attr.is_empty() || self.rdn_field(c.field) || c.field == Field::Manager {
                    continue;
                }
                let v = Self::value(spec, c.field);
                // cn is required: it falls back to the username rather than go.
                let v = if c.field == Field::Name { Self::display(spec) } else { v };
                mods.push(Mod::Replace(attr.to_owned(), v.map(one).unwrap_or_default()));
                if c.field == Field::Name {
                    let sn = &self.c.attributes.surname;
                    if !sn.is_empty() && !sn.eq_ignore_ascii_case(attr) {
                        mods.push(Mod::Replace(sn.clone(), v.map(one).unwrap_or_default()));
                    }
                }
            }
            let manager_dn = if has(Field::Manager) { self.manager_dn(manager)? } else { None };
            mods.extend(self.reference_mods(spec, changes, manager_dn.as_deref()));
            self.modify(&dn, mods, &[]).await?;
            if has(Field::Manager) {
                self.wrote_manager(id, manager, manager_dn.as_deref());
            }
            if self.c.layout == Layout::Groups && has(Field::Departments) {
                let (old, new): (HashSet<&TargetId>, HashSet<&TargetId>) = (old_departments.iter().collect(), departments.iter().collect());
                let leave: Vec<TargetId> = old.difference(&new).map(|t| (*t).clone()).collect();
                let join: Vec<TargetId> = new.difference(&old).map(|t| (*t).clone()).collect();
                self.membership(&dn, &leave, false).await?;
                self.membership(&dn, &join, true).await?;
                self.index(|i| {
                    let g = i.groups_of.entry(id.clone()).or_default();
                    g.clear();
                    g.extend(departments.iter().cloned());
                });
            }
            if has(Field::Active) {
                self.set_active(id, spec.active, departments).await?;
            }
            Ok(())
        })
    }

    fn disable_user<'a>(&'a self, id: &'a TargetId) -> TResult<'a, ()> {
        Box::pin(async move { self.set_active(id, false, &[]).await })
    }

    fn delete_user<'a>(&'a self, op: super::UserDelete<'a>) -> TResult<'a, ()> {
        let super::UserDelete { id, departments: _departments } = op;
        Box::pin(async move { self.remove_user(id).await })
    }
}

#[cfg(test)]
mod tests;
