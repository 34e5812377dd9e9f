//! Users: matching (binding, externalId, the match keys in order, ambiguity
//! reported), creates and updates with exactly the changed fields, and the
//! target-only policy.

use super::departments::{DeptRes, DeptState};
use super::managers::{Account, Managers, Unaccounted, Want};
use super::matching::{BY_EXTERNAL_ID, by_binding, claim_unread, claim_unreadable, external_id_index, reverse};
use super::plan::{Change, Field, GRACE_OVER, Item, LEFT_SCOPE, LEFT_SOURCE, NOT_IN_SOURCE, Op, Outcome, UserSpec, Verb};
use super::policy::{MatchKey, Policy, SourceOnly, TargetOnly, UserField, UserPolicy};
use super::{DepartmentShape, normalize_mobile};
use crate::model::{Bindings, Kind, Snapshot, SourceId, TargetId, TargetSnapshot, TargetUser, User, non_empty};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::borrow::Cow;

pub(super) fn opt(v: &Option<String>) -> Option<String> {
    non_empty(v).map(str::to_owned)
}

/// A match key's value in comparable form: email and username
/// case-insensitive, mobile normalised, empty values absent.
pub fn normalized(key: MatchKey, raw: &Option<String>) -> Option<String> {
    let v = non_empty(raw)?;
    match key {
        MatchKey::Email | MatchKey::Username => Some(v.to_lowercase()),
        MatchKey::Mobile => Some(normalize_mobile(v)).filter(|m| !m.is_empty()),
        MatchKey::EmployeeNo => Some(v.to_owned()),
    }
}

/// A source user's value for a match key, as the source gave it.
pub fn user_key(u: &User, key: MatchKey) -> &Option<String> {
    match key {
        MatchKey::Email => &u.email,
        MatchKey::Username => &u.username,
        MatchKey::Mobile => &u.mobile,
        MatchKey::EmployeeNo => &u.employee_no,
    }
}

/// [`user_key`], to set.
pub fn user_key_mut(u: &mut User, key: MatchKey) -> &mut Option<String> {
    match key {
        MatchKey::Email => &mut u.email,
        MatchKey::Username => &mut u.username,
        MatchKey::Mobile => &mut u.mobile,
        MatchKey::EmployeeNo => &mut u.employee_no,
    }
}

/// A target account's value for a match key, as the target holds it.
pub fn target_user_key(u: &TargetUser, key: MatchKey) -> &Option<String> {
    match key {
        MatchKey::Email => &u.email,
        MatchKey::Username => &u.username,
        MatchKey::Mobile => &u.mobile,
        MatchKey::EmployeeNo => &u.employee_no,
    }
}

pub(super) fn key_value(u: &User, key: MatchKey) -> Option<String> {
    normalized(key, user_key(u, key))
}

pub(super) fn target_key_value(u: &TargetUser, key: MatchKey) -> Option<String> {
    normalized(key, target_user_key(u, key))
}

pub(super) fn is_protected_user(u: &TargetUser, protected: &[String]) -> bool {
    protected.iter().any(|p| {
        p == u.id.as_str()
            || non_empty(&u.username).is_some_and(|n| n.eq_ignore_ascii_case(p))
            || non_empty(&u.email).is_some_and(|e| e.eq_ignore_ascii_case(p))
    })
}

/// The users' part of a plan: creates and updates, removals (disables and
/// deletes), the bindings found or dropped, and what it reports instead.
pub(super) struct UserPlan {
    pub(super) ops: Vec<Op>,
    pub(super) removals: Vec<Op>,
    pub(super) binds: Vec<Op>,
    pub(super) items: Vec<Item>,
    /// Managers set after the creates (`Op::SetManager`).
    pub(super) managers: Vec<Op>,
    /// Managers without an account.
    pub(super) unresolved: Vec<super::managers::Unresolved>,
    /// Departments' leaders set after the creates and updates (`Op::SetLeaders`).
    pub(super) leaders: Vec<Op>,
}

/// Plan the users in stages: the source's distinct ids, matched and bound,
/// diffed field by field against the departments' plan, then the
/// target-only users.
pub(super) fn plan_users(
    source: &Snapshot,
    target: &TargetSnapshot,
    bindings: &Bindings,
    policy: &Policy,
    dept: &DeptState<'_>,
) -> UserPlan {
    // The target's accounts by id are indexed while the source's users are.
    let ((src, position, mut items), tindex) = super::both(
        source.users.len(),
        || distinct(source),
        || target.users.iter().enumerate().map(|(i, u)| (&u.id, i)).collect::<HashMap<&TargetId, usize>>(),
    );
    let m = match_users(source, &src, target, &tindex, bindings, &policy.users);
    items.extend(m.items.iter().cloned());
    let account = src
        .iter()
        .zip(&m.matched)
        .zip(&m.stop)
        .map(|((u, matched), &stop)| match matched {
            _ if !u.active => Account::Left,
            Some(t) => Account::Has(&target.users[*t].id),
            None if !stop && creates(u, &policy.users) => Account::Created,
            None => Account::Missing,
        })
        .collect();
    let managers = Managers::new(source, bindings, &position, account);
    let diffed = diff(&DiffInput { source, src: &src, m: &m, target, policy, dept, managers: &managers });
    items.extend(diffed.items);

    let mut binds = Vec::with_capacity(m.unbinds.len() + diffed.binds.len());
    binds.extend(m.unbinds.iter().cloned());
    binds.extend(diffed.binds.iter().filter_map(|&i| {
        Some(Op::Bind {
            kind: Kind::User,
            source_id: src[i].source_id.clone(),
            target_id: target.users[m.matched[i]?].id.clone(),
            reason: m.how[i].clone()?,
        })
    }));
    let (removals, waiting) = target_only(source, &m, target, bindings, &policy.users, dept.now);
    items.extend(waiting);
    let leaders = super::managers::leaders(dept, target, &managers, policy.users.clear_when_empty);
    UserPlan { ops: diffed.ops, removals, binds, items, managers: diffed.managers, unresolved: diffed.unaccounted.unresolved(), leaders }
}

/// The source's users by id (and each one's position among them): the
/// first with an id wins, the rest are `invalid` items.
fn distinct(source: &Snapshot) -> (Vec<&User>, HashMap<&SourceId, usize>, Vec<Item>) {
    let mut position: HashMap<&SourceId, usize> = HashMap::with_capacity_and_hasher(source.users.len(), Default::default());
    let mut src: Vec<&User> = Vec::with_capacity(source.users.len());
    let mut items = Vec::new();
    for u in &source.users {
        if let std::collections::hash_map::Entry::Vacant(e) = position.entry(&u.source_id) {
            e.insert(src.len());
            src.push(u);
        } else {
            items.push(Item {
                kind: Kind::User,
                op: Verb::Create,
                source_id: Some(u.source_id.clone()),
                target_id: None,
                outcome: Outcome::Invalid,
                message: format!("duplicate source id {}: only the first user with it is used", u.source_id),
            });
        }
    }
    (src, position, items)
}

/// How the source users matched: each one's target, how (for the bind's
/// reason), the ones in a conflict (neither bound nor created), the
/// targets taken and the targets in a conflict.
struct Matched {
    matched: Vec<Option<usize>>,
    /// Why each matched (its bind's reason), where not by its binding.
    how: Vec<Option<Cow<'static, str>>>,
    stop: Vec<bool>,
    claimed: Vec<bool>,
    conflicted: HashSet<usize>,
    unbinds: Vec<Op>,
    items: Vec<Item>,
}

/// Match and bind: the binding, then the externalId (our own mark: it
/// recovers a create whose binding was lost), then the match keys in order.
fn match_users(
    source: &Snapshot,
    src: &[&User],
    target: &TargetSnapshot,
    tindex: &HashMap<&TargetId, usize>,
    bindings: &Bindings,
    up: &UserPolicy,
) -> Matched {
    let n = src.len();
    let mut claimed = vec![false; target.users.len()];
    let ids: Vec<&SourceId> = src.iter().map(|u| &u.source_id).collect();
    let (matched, unbinds) = by_binding(Kind::User, &ids, &bindings.users, tindex, &mut claimed);
    // Of the targets the bindings left free: every use below skips a
    // claimed target, and a claimed one is never freed (an idle run's
    // index is empty).
    let by_ext = external_id_index(target.users.iter().map(|u| &u.external_id).enumerate().filter(|&(t, _)| !claimed[t]));
    claim_unreadable(source, Kind::User, &bindings.users, tindex, &by_ext, &mut claimed);
    claim_unread(source, Kind::User, &bindings.users, tindex, &mut claimed);
    let mut m =
        Matched { matched, how: vec![None; n], stop: vec![false; n], claimed, conflicted: HashSet::default(), unbinds, items: Vec::new() };
    for (i, u) in src.iter().enumerate() {
        if m.matched[i].is_some() {
            continue;
        }
        if let Some(c) = by_ext.get(u.source_id.as_str())
            && let Some(t) = c.iter().copied().find(|&t| !m.claimed[t])
        {
            m.claimed[t] = true;
            m.matched[i] = Some(t);
            m.how[i] = Some(Cow::Borrowed(BY_EXTERNAL_ID));
        }
    }
    // Another target user carrying the externalId of a matched source user:
    // a duplicate (servers that enforce unique userNames make it rare). A
    // user account is never deleted on a guess: it is for an admin to judge.
    for (i, u) in src.iter().enumerate() {
        let Some(keep) = m.matched[i] else { continue };
        for &t in by_ext.get(u.source_id.as_str()).into_iter().flatten() {
            if t != keep && !m.claimed[t] && m.conflicted.insert(t) {
                m.items.push(Item {
                    kind: Kind::User,
                    op: Verb::Delete,
                    source_id: Some(u.source_id.clone()),
                    target_id: Some(target.users[t].id.clone()),
                    outcome: Outcome::Conflict,
                    message: format!("a duplicate of {} (the same externalId): not touched; merge or remove it", target.users[keep].id),
                });
            }
        }
    }
    for &key in &up.match_by {
        by_key(&mut m, key, src, target);
    }
    m
}

/// Match by one key: a value two source users share is a conflict for
/// both; one free target user with the value is bound; several are a
/// conflict.
fn by_key(m: &mut Matched, key: MatchKey, src: &[&User], target: &TargetSnapshot) {
    let n = src.len();
    let mut tidx: HashMap<String, Vec<usize>> = HashMap::default();
    for (t, u) in target.users.iter().enumerate() {
        if !m.claimed[t]
            && let Some(v) = target_key_value(u, key)
        {
            tidx.entry(v).or_default().push(t);
        }
    }
    // Each unmatched user's value, made once (normalizing allocates).
    let values: Vec<Option<String>> =
        (0..n).map(|i| if m.matched[i].is_none() && !m.stop[i] { key_value(src[i], key) } else { None }).collect();
    let mut sidx: HashMap<&str, Vec<usize>> = HashMap::with_capacity_and_hasher(n - m.matched.iter().flatten().count(), Default::default());
    for (i, v) in values.iter().enumerate() {
        if let Some(v) = v {
            sidx.entry(v.as_str()).or_default().push(i);
        }
    }
    for i in 0..n {
        if m.matched[i].is_some() || m.stop[i] {
            continue;
        }
        let Some(v) = &values[i] else { continue };
        let others = &sidx[v.as_str()];
        if others.len() > 1 {
            m.stop[i] = true;
            let names: Vec<String> = others.iter().map(|&o| src[o].source_id.to_string()).collect();
            m.items.push(Item {
                kind: Kind::User,
                op: Verb::Bind,
                source_id: Some(src[i].source_id.clone()),
                target_id: None,
                outcome: Outcome::Conflict,
                message: format!("{key} {v:?} is shared by source users {}", names.join(", ")),
            });
            if let Some(c) = tidx.get(v.as_str()) {
                m.conflicted.extend(c.iter().copied());
            }
            continue;
        }
        let free: Vec<usize> = tidx.get(v.as_str()).map(|c| c.iter().copied().filter(|&t| !m.claimed[t]).collect()).unwrap_or_default();
        match free.len() {
            0 => {}
            1 => {
                m.claimed[free[0]] = true;
                m.matched[i] = Some(free[0]);
                m.how[i] = Some(Cow::Owned(format!("matched by {key} {v:?}")));
            }
            _ => {
                m.stop[i] = true;
                m.conflicted.extend(free.iter().copied());
                m.items.push(Item {
                    kind: Kind::User,
                    op: Verb::Bind,
                    source_id: Some(src[i].source_id.clone()),
                    target_id: None,
                    outcome: Outcome::Conflict,
                    message: format!(
                        "{key} {v:?} matches several target users: {}",
                        free.iter().map(|&t| target.users[t].id.to_string()).collect::<Vec<_>>().join(", ")
                    ),
                });
            }
        }
    }
}

/// The creates and updates, the binds of what matched by more than a
/// binding, and the items: departments not in the source, users not created.
#[derive(Default)]
struct Diffed {
    ops: Vec<Op>,
    managers: Vec<Op>,
    /// The users bound (their positions): a re-bind's 100,000 operations
    /// are made once, at their count, after the parts are joined.
    binds: Vec<usize>,
    items: Vec<Item>,
    /// Managers without an account, and their reports.
    unaccounted: Unaccounted,
}

/// Everything [`diff`] reads, shared by its parts.
struct DiffInput<'a, 'b> {
    source: &'a Snapshot,
    src: &'a [&'a User],
    m: &'a Matched,
    target: &'a TargetSnapshot,
    policy: &'a Policy,
    dept: &'a DeptState<'b>,
    managers: &'a Managers<'a>,
}

/// The users diffed in parts, each on a thread of its own, joined in the
/// users' order: the same plan as one pass (an idle run compares every
/// field of every user, the plan's largest cost).
fn diff(input: &DiffInput<'_, '_>) -> Diffed {
    let up = &input.policy.users;
    // An extra attribute no user of the read has: withheld (a typo, a field
    // the source does not send), never cleared.
    let withheld: HashSet<&str> =
        up.attributes.iter().map(String::as_str).filter(|a| input.src.iter().all(|u| !u.attributes.contains_key(*a))).collect();
    let mut parts = super::in_parts(input.src.len(), |users| diff_part(input, users, &withheld)).into_iter();
    let mut out = parts.next().unwrap_or_default();
    for mut p in parts {
        out.ops.append(&mut p.ops);
        out.managers.append(&mut p.managers);
        out.binds.append(&mut p.binds);
        out.items.append(&mut p.items);
        out.unaccounted.join(p.unaccounted);
    }
    out
}

/// [`diff`] of the users in `users` (positions in `input.src`).
fn diff_part(input: &DiffInput<'_, '_>, users: std::ops::Range<usize>, withheld: &HashSet<&str>) -> Diffed {
    let DiffInput { source, src, m, target, policy, dept, managers } = *input;
    let up = &policy.users;
    let mut out = Diffed::default();
    let manages = up.fields.contains(&UserField::Manager) && !dept.unheld.contains(Field::Manager);
    for i in users {
        let u = src[i];
        let mut wanted = wanted(u, policy, dept);
        wanted.attributes.retain(|k, _| !withheld.contains(k));
        let manager = if manages && !u.is_absent(UserField::Manager) { managers.want(u, &mut out.unaccounted) } else { Want::Unknown };
        // The operation's own copy, made only for an operation: an idle run compares borrowed.
        let spec = |wanted: &Wanted<'_>| {
            let mut spec = wanted.to_spec();
            if let Want::Set(t) = manager {
                spec.manager = u.manager_id.clone();
                spec.manager_account = Some(t.clone());
            }
            spec
        };
        // Set once the manager's account exists (created in this run).
        let later = |target_id: Option<TargetId>, spec: &UserSpec, from: Option<TargetId>| Op::SetManager {
            source_id: u.source_id.clone(),
            target_id,
            spec: Box::new(UserSpec { manager: u.manager_id.clone(), ..spec.clone() }),
            from,
        };
        if wanted.departments.is_some() {
            out.items.extend(unknown_departments(source, u, m.matched[i].map(|t| &target.users[t]), dept));
        }
        match m.matched[i] {
            Some(t) => {
                let tu = &target.users[t];
                if is_protected_user(tu, &up.protected) {
                    continue;
                }
                if m.how[i].is_some() {
                    out.binds.push(i);
                }
                let changes = user_changes(u, tu, &wanted, up, dept, target, &manager);
                if changes.is_empty() && manager != Want::Later {
                    continue;
                }
                let mut spec = spec(&wanted);
                spec.holds_manager = tu.manager.clone();
                spec.holds_attributes = tu.attributes.clone();
                // An update writes the attributes that differ (the rest the target has).
                spec.attributes.retain(|k, want| tu.attributes.get(k).map(|v| v.trim()).filter(|v| !v.is_empty()) != want.as_deref());
                if manager == Want::Later {
                    out.managers.push(later(Some(tu.id.clone()), &spec, tu.manager.clone()));
                }
                if !changes.is_empty() {
                    out.ops.push(Op::UpdateUser {
                        source_id: u.source_id.clone(),
                        target_id: tu.id.clone(),
                        spec: Box::new(spec),
                        old_departments: tu.departments.clone(),
                        changes,
                    });
                }
            }
            None if m.stop[i] => {}
            None => match source_only(u, spec(&wanted), up) {
                Ok(Some(Op::CreateUser { spec, source_id, note })) if manager == Want::Later => {
                    out.managers.push(later(None, &spec, None));
                    out.ops.push(Op::CreateUser { source_id, spec, note });
                }
                Ok(create) => out.ops.extend(create),
                Err(item) => out.items.push(item),
            },
        }
    }
    out
}

/// A user's departments that are not in the source: out of the sync scope
/// (normal, said) or a data error. The user is kept in the ones that exist.
fn unknown_departments(source: &Snapshot, u: &User, matched: Option<&TargetUser>, dept: &DeptState<'_>) -> Option<Item> {
    if u.is_absent(UserField::DepartmentIds) {
        return None;
    }
    let unknown: Vec<&str> = u.department_ids.iter().filter(|d| !dept.index.contains_key(d)).map(SourceId::as_str).collect();
    if unknown.is_empty() {
        return None;
    }
    let (outcome, why) = if source.scoped {
        (Outcome::OutOfScope, "outside the sync scope; the user is kept in the departments within it")
    } else {
        (Outcome::Invalid, "not in the source: a data error; the user is kept in the departments that exist")
    };
    Some(Item {
        kind: Kind::User,
        op: if matched.is_some() { Verb::Update } else { Verb::Create },
        source_id: Some(u.source_id.clone()),
        target_id: matched.map(|t| t.id.clone()),
        outcome,
        message: format!("department {} {why}", unknown.join(", ")),
    })
}

/// A source user no target user matched: created (and bound by its
/// externalId) under `create_and_bind` when active; not when every match
/// key is empty and the policy says so (an `unmatchable` item).
fn source_only(u: &User, spec: UserSpec, up: &UserPolicy) -> Result<Option<Op>, Item> {
    // A user none of whose match keys has a value cannot match an existing
    // account: it is source-only. Created, its externalId keeps every later
    // run from creating it again.
    let keyless = is_keyless(u, up);
    let keys = || up.match_by.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ");
    if keyless && !up.create_without_match_keys {
        return Err(Item {
            kind: Kind::User,
            op: Verb::Create,
            source_id: Some(u.source_id.clone()),
            target_id: None,
            outcome: Outcome::Unmatchable,
            message: format!("every match key ({}) is empty: not created (policy.users.create_without_match_keys = false)", keys()),
        });
    }
    // A user who already left is not provisioned.
    if up.source_only == SourceOnly::CreateAndBind && u.active {
        let note = keyless.then(|| format!("created without a match key: {} is empty", keys()));
        return Ok(Some(Op::CreateUser { source_id: u.source_id.clone(), spec: Box::new(spec), note }));
    }
    Ok(None)
}

fn is_keyless(u: &User, up: &UserPolicy) -> bool {
    up.match_by.iter().all(|&k| key_value(u, k).is_none())
}

/// Whether [`source_only`] creates this unmatched user.
fn creates(u: &User, up: &UserPolicy) -> bool {
    up.source_only == SourceOnly::CreateAndBind && u.active && (up.create_without_match_keys || !is_keyless(u, up))
}

/// Target-only users under the policy: disabled, deleted, or disabled and
/// deleted after `delete_after` (the wait said in a `scheduled` item).
fn target_only(
    source: &Snapshot,
    m: &Matched,
    target: &TargetSnapshot,
    bindings: &Bindings,
    up: &UserPolicy,
    now: Option<chrono::DateTime<chrono::Utc>>,
) -> (Vec<Op>, Vec<Item>) {
    let (mut removals, mut items) = (Vec::new(), Vec::new());
    if up.target_only == TargetOnly::Ignore {
        return (removals, items);
    }
    let rev = reverse(&bindings.users);
    let left_scope: HashSet<&SourceId> = source.out_of_scope.iter().collect();
    for (t, tu) in target.users.iter().enumerate() {
        if m.claimed[t] || m.conflicted.contains(&t) || is_protected_user(tu, &up.protected) {
            continue;
        }
        // Deleted already, and still listed inactive: the target soft-deletes.
        if !tu.active && bindings.tombstones.contains(&tu.id) {
            continue;
        }
        let source_id = rev.get(&tu.id).map(|s| (*s).clone());
        // Why it goes: its bound source user left the scope or the source, or it never had one.
        let why = |policy: &str| match &source_id {
            Some(s) if left_scope.contains(s) => format!("{LEFT_SCOPE} ([scope]; policy.users.target_only = {policy})"),
            Some(_) => format!("{LEFT_SOURCE} (policy.users.target_only = {policy})"),
            None => format!("{NOT_IN_SOURCE} (policy.users.target_only = {policy})"),
        };
        let delete = |reason: String| Op::DeleteUser {
            target_id: tu.id.clone(),
            username: tu.username.clone(),
            source_id: source_id.clone(),
            departments: tu.departments.clone(),
            reason,
        };
        let disable = |reason: String, grace: bool| Op::DisableUser {
            target_id: tu.id.clone(),
            username: tu.username.clone(),
            source_id: source_id.clone(),
            reason,
            grace,
        };
        match up.target_only {
            TargetOnly::Disable if tu.active => removals.push(disable(why("disable"), false)),
            TargetOnly::Delete => removals.push(delete(why("delete"))),
            TargetOnly::DisableThenDelete => {
                let grace = chrono::Duration::from_std(up.delete_after).unwrap_or(chrono::Duration::MAX);
                match (bindings.disabled.get(&tu.id), now) {
                    (Some(at), Some(now)) if now - *at >= grace => removals.push(delete(format!(
                        "{GRACE_OVER}: disabled {}, still gone after {} (policy.users.target_only = disable_then_delete)",
                        at.format("%Y-%m-%d %H:%M UTC"),
                        humantime::format_duration(up.delete_after)
                    ))),
                    (Some(at), _) => items.push(Item {
                        kind: Kind::User,
                        op: Verb::Delete,
                        source_id: source_id.clone(),
                        target_id: Some(tu.id.clone()),
                        outcome: Outcome::Scheduled,
                        message: format!(
                            "disabled {}; deleted from {} if still gone",
                            at.format("%Y-%m-%d %H:%M UTC"),
                            (*at + grace).format("%Y-%m-%d %H:%M UTC")
                        ),
                    }),
                    // Disabled now (even when already inactive): the grace period starts.
                    (None, _) => removals.push(disable(
                        format!(
                            "{}; deleted after {} if still gone",
                            why("disable_then_delete"),
                            humantime::format_duration(up.delete_after)
                        ),
                        true,
                    )),
                }
            }
            _ => {}
        }
    }
    (removals, items)
}

/// What a source user's account should hold, borrowed from the user, the
/// policy and the departments: compared as it is, made the operation's
/// owned [`UserSpec`] (without the manager) only for an operation.
pub(super) struct Wanted<'a> {
    external_id: &'a str,
    username: Option<&'a str>,
    name: Option<&'a str>,
    email: Option<&'a str>,
    mobile: Option<&'a str>,
    employee_no: Option<&'a str>,
    nickname: Option<&'a str>,
    title: Option<&'a str>,
    department: Option<&'a str>,
    departments: Option<smallvec::SmallVec<[&'a SourceId; 4]>>,
    active: bool,
    attributes: std::collections::BTreeMap<&'a str, Option<&'a str>>,
}

impl Wanted<'_> {
    pub(super) fn to_spec(&self) -> UserSpec {
        let own = |v: Option<&str>| v.map(str::to_owned);
        UserSpec {
            external_id: self.external_id.to_owned(),
            username: own(self.username),
            name: own(self.name),
            email: own(self.email),
            mobile: own(self.mobile),
            employee_no: own(self.employee_no),
            nickname: own(self.nickname),
            title: own(self.title),
            department: own(self.department),
            departments: self.departments.as_ref().map(|d| d.iter().map(|&s| s.clone()).collect()),
            active: self.active,
            manager: None,
            attributes: self.attributes.iter().map(|(k, v)| ((*k).to_owned(), own(*v))).collect(),
            holds_manager: None,
            manager_account: None,
            holds_attributes: Default::default(),
        }
    }
}

pub(super) fn wanted<'a>(u: &'a User, policy: &'a Policy, dept: &'a DeptState<'_>) -> Wanted<'a> {
    let fields = &policy.users.fields;
    let m = |f: UserField, v: &'a Option<String>| if fields.contains(&f) { non_empty(v) } else { None };
    let departments = fields.contains(&UserField::DepartmentIds).then(|| {
        let mut ds = smallvec::SmallVec::<[&SourceId; 4]>::new();
        let take = if dept.primary_only { 1 } else { usize::MAX };
        for d in u.department_ids.iter().filter(|d| dept.index.get(d).is_some_and(|&i| dept.res[i] != DeptRes::Absent)) {
            // A few per user: a scan is cheaper than a set.
            if ds.len() < take && !ds.contains(&d) {
                ds.push(d);
            }
        }
        ds
    });
    let department = departments.as_ref().and_then(|d| d.first()).and_then(|d| dept.index.get(d)).map(|&i| dept.src[i].name.as_str());
    let clear = policy.users.clear_when_empty;
    let attributes = policy
        .users
        .attributes
        .iter()
        .filter_map(|a| {
            let v = u.attributes.get(a).map(|v| v.trim()).filter(|v| !v.is_empty());
            (v.is_some() || clear).then_some((a.as_str(), v))
        })
        .collect();
    Wanted {
        external_id: u.source_id.as_str(),
        username: non_empty(&u.username).or_else(|| non_empty(&u.email)),
        name: m(UserField::Name, &u.name),
        email: m(UserField::Email, &u.email),
        mobile: m(UserField::Mobile, &u.mobile),
        employee_no: m(UserField::EmployeeNo, &u.employee_no),
        nickname: m(UserField::Nickname, &u.nickname),
        title: m(UserField::Title, &u.title),
        department,
        // A target without departments holds no memberships.
        departments: departments.filter(|_| dept.shape != DepartmentShape::None),
        active: u.active,
        attributes,
    }
}

pub(super) fn user_changes(
    u: &User,
    tu: &TargetUser,
    spec: &Wanted<'_>,
    policy: &UserPolicy,
    dept: &DeptState<'_>,
    target: &TargetSnapshot,
    manager: &Want<'_>,
) -> Vec<Change> {
    let unheld = dept.unheld;
    let mut changes = Vec::new();
    // A field the target cannot hold is never a change.
    // Compared borrowed: an idle run compares every field of every user.
    let mut cmp = |field: Field, have: &Option<String>, want: Option<&str>| {
        if non_empty(have) != want && !unheld.contains(field) {
            changes.push(Change { field, from: opt(have), to: want.map(str::to_owned) });
        }
    };
    cmp(Field::ExternalId, &tu.external_id, Some(spec.external_id));
    if spec.username.is_some() {
        cmp(Field::Username, &tu.username, spec.username);
    }
    let pairs: [(UserField, Field, &Option<String>, Option<&str>); 6] = [
        (UserField::Name, Field::Name, &tu.name, spec.name),
        (UserField::Email, Field::Email, &tu.email, spec.email),
        (UserField::Mobile, Field::Mobile, &tu.mobile, spec.mobile),
        (UserField::EmployeeNo, Field::EmployeeNo, &tu.employee_no, spec.employee_no),
        (UserField::Nickname, Field::Nickname, &tu.nickname, spec.nickname),
        (UserField::Title, Field::Title, &tu.title, spec.title),
    ];
    for (f, name, have, want) in pairs {
        // Absent (withheld by the source) never changes the target; empty
        // clears it only when the policy allows.
        let keep = u.is_absent(f) || (want.is_none() && !policy.clear_when_empty);
        if policy.fields.contains(&f) && !keep {
            cmp(name, have, want);
        }
    }
    // Where a user's entry lives under its department, a disabled user's
    // place is the disabled area: its department is not compared.
    let parked = dept.primary_only && !tu.active && !spec.active;
    // An emptied department list clears memberships only when the policy
    // lets an empty field clear the target's value.
    let emptied = spec.departments.as_ref().is_some_and(|d| d.is_empty()) && !policy.clear_when_empty;
    let departments_known =
        policy.fields.contains(&UserField::DepartmentIds) && !u.is_absent(UserField::DepartmentIds) && !parked && !emptied;
    if departments_known {
        cmp(Field::Department, &tu.department, spec.department);
    }
    if let Some(want) = spec.departments.as_ref().filter(|_| departments_known) {
        let mut want_t: Vec<Option<&TargetId>> = want
            .iter()
            .map(|s| match dept.index.get(s).map(|&i| &dept.res[i]) {
                Some(DeptRes::Matched(t)) => Some(&target.departments[*t].id),
                _ => None,
            })
            .collect();
        let pending = want_t.iter().any(Option::is_none);
        want_t.sort();
        let mut have: Vec<&TargetId> = tu.departments.iter().collect();
        have.sort();
        have.dedup();
        let same = !pending && want_t.iter().flatten().copied().eq(have.iter().copied());
        if !same {
            changes.push(Change {
                field: Field::Departments,
                from: Some(have.iter().map(|t| dept.named(t, target)).collect::<Vec<_>>().join(",")),
                to: Some(want.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")),
            });
        }
    }
    if tu.active != spec.active {
        changes.push(Change { field: Field::Active, from: Some(tu.active.to_string()), to: Some(spec.active.to_string()) });
    }
    let want = match manager {
        Want::Set(t) => Some(Some(*t)),
        Want::Empty if policy.clear_when_empty => Some(None),
        _ => None,
    };
    if let Some(want) = want
        && tu.manager.as_ref() != want
    {
        changes.push(Change { field: Field::Manager, from: tu.manager.as_ref().map(|t| t.to_string()), to: want.map(|t| t.to_string()) });
    }
    if !unheld.contains(Field::Attributes) {
        let differ: std::collections::BTreeMap<String, Option<String>> = spec
            .attributes
            .iter()
            .filter(|(k, want)| tu.attributes.get(**k).map(|v| v.trim()).filter(|v| !v.is_empty()) != **want)
            .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
            .collect();
        if !differ.is_empty() {
            let have = differ.keys().map(|k| (k.clone(), tu.attributes.get(k).cloned())).collect();
            changes.push(Change {
                field: Field::Attributes,
                from: super::plan::attributes_text(&have),
                to: super::plan::attributes_text(&differ),
            });
        }
    }
    changes
}
