//! Matching, diffing and ordering.
//!
//! Order of operations in a plan (apply runs them phase by phase):
//! 1. unbind stale bindings, bind matched pairs (mirror only);
//! 2. create departments, shallowest first (parents before children);
//! 3. update departments (renames, moves: a parent change is an update);
//! 4. create and update users (their departments exist by now);
//! 5. disable / delete users;
//! 6. delete departments, deepest first (children before parents).

use super::guard;
use super::policy::{MatchKey, Policy, SourceOnly, TargetOnly, UserField, UserPolicy};
use super::{RunOptions, normalize_mobile};
use crate::model::{
    Bindings, Department, Kind, Snapshot, SourceId, TargetDepartment, TargetId, TargetSnapshot, TargetUser, User, non_empty,
};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// The desired target-side form of a department. `parent` is a source id,
/// resolved through the bindings when the operation is applied (the parent
/// may be created earlier in the same run).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeptSpec {
    pub external_id: String,
    pub name: String,
    pub parent: Option<SourceId>,
}

/// The desired target-side form of a user; unmapped fields are `None` and
/// never sent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UserSpec {
    pub external_id: String,
    pub username: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub mobile: Option<String>,
    pub employee_no: Option<String>,
    pub nickname: Option<String>,
    pub title: Option<String>,
    /// Primary department's name (SCIM enterprise `department`).
    pub department: Option<String>,
    /// Departments by source id, primary first; `None` when departments are not mapped.
    pub departments: Option<Vec<SourceId>>,
    pub active: bool,
}

/// A field of a target object that an update can change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    ExternalId,
    Username,
    Name,
    Email,
    Mobile,
    EmployeeNo,
    Nickname,
    Title,
    /// A user's primary department's name (SCIM enterprise `department`).
    Department,
    /// A user's department memberships.
    Departments,
    Active,
    /// A department's parent (a move).
    Parent,
}

impl Field {
    /// Every field a user create sets.
    pub const USER: &'static [Field] = &[
        Field::ExternalId,
        Field::Username,
        Field::Name,
        Field::Email,
        Field::Mobile,
        Field::EmployeeNo,
        Field::Nickname,
        Field::Title,
        Field::Department,
        Field::Departments,
        Field::Active,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Field::ExternalId => "external_id",
            Field::Username => "username",
            Field::Name => "name",
            Field::Email => "email",
            Field::Mobile => "mobile",
            Field::EmployeeNo => "employee_no",
            Field::Nickname => "nickname",
            Field::Title => "title",
            Field::Department => "department",
            Field::Departments => "departments",
            Field::Active => "active",
            Field::Parent => "parent",
        }
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One field that differs, for humans (dry-run) and for apply (which fields to send).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    pub field: Field,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// One operation of a plan, carrying why it exists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    Bind {
        kind: Kind,
        source_id: SourceId,
        target_id: TargetId,
        reason: String,
    },
    Unbind {
        kind: Kind,
        source_id: SourceId,
        target_id: TargetId,
        reason: String,
    },
    CreateDepartment {
        source_id: SourceId,
        spec: DeptSpec,
        depth: usize,
    },
    UpdateDepartment {
        source_id: SourceId,
        target_id: TargetId,
        spec: DeptSpec,
        old_parent: Option<TargetId>,
        changes: Vec<Change>,
    },
    CreateUser {
        source_id: SourceId,
        spec: UserSpec,
        /// Said in the run item, e.g. that the user was created without a match key.
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    UpdateUser {
        source_id: SourceId,
        target_id: TargetId,
        spec: UserSpec,
        old_departments: Vec<TargetId>,
        changes: Vec<Change>,
    },
    DisableUser {
        target_id: TargetId,
        username: Option<String>,
        source_id: Option<SourceId>,
        reason: String,
    },
    DeleteUser {
        target_id: TargetId,
        username: Option<String>,
        source_id: Option<SourceId>,
        /// The departments it is a member of: left first, so a target
        /// without referential integrity keeps no dangling members.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        departments: Vec<TargetId>,
        reason: String,
    },
    DeleteDepartment {
        target_id: TargetId,
        name: String,
        source_id: Option<SourceId>,
        depth: usize,
        /// An empty duplicate (our externalId) of this bound department: its
        /// delete loses nothing, so the deletion guard does not count it.
        #[serde(skip_serializing_if = "Option::is_none")]
        duplicate_of: Option<TargetId>,
        reason: String,
    },
}

impl Op {
    pub fn kind(&self) -> Kind {
        match self {
            Op::Bind { kind, .. } | Op::Unbind { kind, .. } => *kind,
            Op::CreateDepartment { .. } | Op::UpdateDepartment { .. } | Op::DeleteDepartment { .. } => Kind::Department,
            _ => Kind::User,
        }
    }

    /// The short verb used in run items, counts and metrics.
    pub fn verb(&self) -> &'static str {
        match self {
            Op::Bind { .. } => "bind",
            Op::Unbind { .. } => "unbind",
            Op::CreateDepartment { .. } | Op::CreateUser { .. } => "create",
            Op::UpdateDepartment { .. } | Op::UpdateUser { .. } => "update",
            Op::DisableUser { .. } => "disable",
            Op::DeleteUser { .. } | Op::DeleteDepartment { .. } => "delete",
        }
    }

    pub fn source_id(&self) -> Option<&SourceId> {
        match self {
            Op::Bind { source_id, .. }
            | Op::Unbind { source_id, .. }
            | Op::CreateDepartment { source_id, .. }
            | Op::UpdateDepartment { source_id, .. }
            | Op::CreateUser { source_id, .. }
            | Op::UpdateUser { source_id, .. } => Some(source_id),
            Op::DisableUser { source_id, .. } | Op::DeleteUser { source_id, .. } | Op::DeleteDepartment { source_id, .. } => {
                source_id.as_ref()
            }
        }
    }

    pub fn target_id(&self) -> Option<&TargetId> {
        match self {
            Op::CreateDepartment { .. } | Op::CreateUser { .. } => None,
            Op::Bind { target_id, .. }
            | Op::Unbind { target_id, .. }
            | Op::UpdateDepartment { target_id, .. }
            | Op::UpdateUser { target_id, .. }
            | Op::DisableUser { target_id, .. }
            | Op::DeleteUser { target_id, .. }
            | Op::DeleteDepartment { target_id, .. } => Some(target_id),
        }
    }

    /// What the op's run item says besides its outcome.
    pub fn note(&self) -> Option<&str> {
        match self {
            Op::CreateUser { note, .. } => note.as_deref(),
            _ => None,
        }
    }

    /// Deletes and disables: what the deletion guard counts.
    pub fn is_destructive(&self) -> bool {
        matches!(self, Op::DisableUser { .. } | Op::DeleteUser { .. } | Op::DeleteDepartment { duplicate_of: None, .. })
    }

    /// Apply runs ops phase by phase; ops of one phase may run concurrently.
    /// Department creates and deletes carry their depth so that each tree
    /// level is its own phase.
    pub fn phase(&self) -> (u8, usize) {
        match self {
            Op::Unbind { .. } | Op::Bind { .. } => (0, 0),
            Op::CreateDepartment { depth, .. } => (1, *depth),
            Op::UpdateDepartment { .. } => (2, 0),
            Op::CreateUser { .. } | Op::UpdateUser { .. } => (3, 0),
            Op::DisableUser { .. } | Op::DeleteUser { .. } => (4, 0),
            Op::DeleteDepartment { depth, .. } => (5, usize::MAX - *depth),
        }
    }

    /// A one-line description of what the op does, for tables and logs.
    pub fn detail(&self) -> String {
        fn changes_text(changes: &[Change]) -> String {
            changes
                .iter()
                .map(|c| format!("{}: {} -> {}", c.field, c.from.as_deref().unwrap_or("∅"), c.to.as_deref().unwrap_or("∅")))
                .collect::<Vec<_>>()
                .join("; ")
        }
        match self {
            Op::Bind { reason, .. }
            | Op::Unbind { reason, .. }
            | Op::DisableUser { reason, .. }
            | Op::DeleteUser { reason, .. }
            | Op::DeleteDepartment { reason, .. } => reason.clone(),
            Op::CreateDepartment { spec, .. } => format!("name: {}", spec.name),
            Op::CreateUser { spec, note, .. } => format!(
                "username: {}{}{}",
                spec.username.as_deref().unwrap_or("∅"),
                if spec.active { "" } else { " (inactive)" },
                note.as_deref().map(|n| format!(" ({n})")).unwrap_or_default()
            ),
            Op::UpdateDepartment { changes, .. } | Op::UpdateUser { changes, .. } => changes_text(changes),
        }
    }
}

/// Why an item of the plan is not an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemOutcome {
    /// A deletion or disable the guard held back.
    HeldBack,
    /// A match key value with two candidates: nothing was bound.
    Conflict,
    /// A source user whose match keys are all empty, not created because
    /// `policy.users.create_without_match_keys = false` (the admin's choice:
    /// it does not make the run partial).
    Unmatchable,
    /// Bad source data (cycle, missing parent, duplicate id): skipped.
    Invalid,
    /// A user's department outside a scoped fetch: normal, said, not done.
    OutOfScope,
}

impl ItemOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemOutcome::HeldBack => "held_back",
            ItemOutcome::Conflict => "conflict",
            ItemOutcome::Unmatchable => "unmatchable",
            ItemOutcome::Invalid => "invalid",
            ItemOutcome::OutOfScope => "out_of_scope",
        }
    }
}

/// Something the plan reports instead of doing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Item {
    pub kind: Kind,
    /// The verb that would have been done (`delete`, `create`, `bind`, ...).
    pub op: &'static str,
    pub source_id: Option<SourceId>,
    pub target_id: Option<TargetId>,
    pub outcome: ItemOutcome,
    pub message: String,
}

/// The ordered operations of one run plus what was held back or skipped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub ops: Vec<Op>,
    pub items: Vec<Item>,
    /// Set when the deletion guard held something back: why.
    pub guard: Option<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.items.is_empty()
    }

    /// Ops that change the target (everything but bind/unbind).
    pub fn writes(&self) -> usize {
        self.ops.iter().filter(|o| !matches!(o, Op::Bind { .. } | Op::Unbind { .. })).count()
    }
}

fn opt(v: &Option<String>) -> Option<String> {
    non_empty(v).map(str::to_owned)
}

/// A match key's value in comparable form: email and username
/// case-insensitive, mobile normalised, empty values absent.
fn normalized(key: MatchKey, raw: &Option<String>) -> Option<String> {
    let v = non_empty(raw)?;
    match key {
        MatchKey::Email | MatchKey::Username => Some(v.to_lowercase()),
        MatchKey::Mobile => Some(normalize_mobile(v)).filter(|m| !m.is_empty()),
        MatchKey::EmployeeNo => Some(v.to_owned()),
    }
}

fn key_value(u: &User, key: MatchKey) -> Option<String> {
    normalized(
        key,
        match key {
            MatchKey::Email => &u.email,
            MatchKey::Username => &u.username,
            MatchKey::Mobile => &u.mobile,
            MatchKey::EmployeeNo => &u.employee_no,
        },
    )
}

fn target_key_value(u: &TargetUser, key: MatchKey) -> Option<String> {
    normalized(
        key,
        match key {
            MatchKey::Email => &u.email,
            MatchKey::Username => &u.username,
            MatchKey::Mobile => &u.mobile,
            MatchKey::EmployeeNo => &u.employee_no,
        },
    )
}

/// Where a source department's target counterpart is (or will be).
#[derive(Clone, Debug, PartialEq, Eq)]
enum DeptRes {
    /// Matched to this target department.
    Matched(usize),
    /// Will be created in this run.
    Created,
    /// Will not exist in the target (ignored, invalid, unmatched).
    Absent,
}

struct DeptState<'a> {
    src: Vec<&'a Department>,
    index: HashMap<&'a SourceId, usize>,
    /// Depth in the source tree, None when invalid (cycle/missing parent).
    depth: Vec<Option<usize>>,
    res: Vec<DeptRes>,
}

impl DeptState<'_> {
    /// The desired target parent of source department `i`:
    /// Some(Some(id)) / Some(None) when known now, None when it depends on a create.
    fn desired_parent(&self, i: usize, target: &TargetSnapshot) -> ParentRes {
        let Some(pid) = &self.src[i].parent_id else { return ParentRes::Known(None) };
        match self.index.get(pid).map(|&p| &self.res[p]) {
            Some(DeptRes::Matched(t)) => ParentRes::Known(Some(target.departments[*t].id.clone())),
            Some(DeptRes::Created) => ParentRes::Pending,
            _ => ParentRes::Unavailable,
        }
    }
}

enum ParentRes {
    Known(Option<TargetId>),
    Pending,
    Unavailable,
}

/// Build the plan. Pure: the same inputs always give the same plan.
pub fn plan(source: &Snapshot, target: &TargetSnapshot, bindings: &Bindings, policy: &Policy, options: RunOptions) -> Plan {
    let mut p = Plan::default();
    let mut binds = Vec::new();
    let (dept, (mut dept_creates, mut dept_updates, mut dept_deletes)) =
        plan_departments(source, target, bindings, policy, &mut p, &mut binds);
    let (mut user_ops, mut user_removals) = plan_users(source, target, bindings, policy, &dept, &mut p, &mut binds);

    unreadable(source, &mut p, &mut user_removals);

    p.ops.append(&mut binds);
    dept_creates.sort_by_key(|o| o.phase());
    p.ops.append(&mut dept_creates);
    p.ops.append(&mut dept_updates);
    p.ops.append(&mut user_ops);
    p.ops.append(&mut user_removals);
    dept_deletes.sort_by_key(|o| o.phase());
    p.ops.append(&mut dept_deletes);
    guard::apply(&mut p, source, target, policy.guard, options);
    p
}

type DeptOps = (Vec<Op>, Vec<Op>, Vec<Op>);

/// The target objects of unreadable records that have an id are left as
/// they are: claimed, so neither matched to another source object nor
/// taken for target-only.
fn claim_unreadable(
    source: &Snapshot,
    kind: Kind,
    bound: &HashMap<SourceId, TargetId>,
    tindex: &HashMap<&TargetId, usize>,
    by_ext: &HashMap<&str, Vec<usize>>,
    claimed: &mut [bool],
) {
    for id in source.unreadable.iter().filter(|r| r.kind == kind).filter_map(|r| r.source_id.as_ref()) {
        let via_binding = bound.get(id).and_then(|t| tindex.get(t)).copied();
        for t in via_binding.into_iter().chain(by_ext.get(id.as_str()).into_iter().flatten().copied()) {
            claimed[t] = true;
        }
    }
}

/// Records the source could not read are `invalid` items. When a user record
/// could not even be identified, nobody can say which account it was: no
/// user is disabled or deleted this run.
fn unreadable(source: &Snapshot, p: &mut Plan, user_removals: &mut Vec<Op>) {
    for r in &source.unreadable {
        p.items.push(Item {
            kind: r.kind,
            op: "read",
            source_id: r.source_id.clone(),
            target_id: None,
            outcome: ItemOutcome::Invalid,
            message: r.message.clone(),
        });
    }
    let anonymous = source.unreadable.iter().filter(|r| r.kind == Kind::User && r.source_id.is_none()).count();
    if anonymous > 0 {
        for op in user_removals.drain(..) {
            p.items.push(Item {
                kind: op.kind(),
                op: op.verb(),
                source_id: op.source_id().cloned(),
                target_id: op.target_id().cloned(),
                outcome: ItemOutcome::HeldBack,
                message: format!(
                    "held back: {anonymous} user record(s) from the source had no id, so no account can be judged gone this run: {}",
                    op.detail()
                ),
            });
        }
    }
}

fn is_protected_dept(d: &TargetDepartment, protected: &[String]) -> bool {
    protected.iter().any(|p| p == d.id.as_str() || p == &d.name || d.external_id.as_deref() == Some(p.as_str()))
}

fn plan_departments<'a>(
    source: &'a Snapshot,
    target: &TargetSnapshot,
    bindings: &Bindings,
    policy: &Policy,
    p: &mut Plan,
    binds: &mut Vec<Op>,
) -> (DeptState<'a>, DeptOps) {
    // Deduplicate source ids: the first wins, the rest are item errors.
    let mut index: HashMap<&'a SourceId, usize> = HashMap::new();
    let mut src: Vec<&'a Department> = Vec::new();
    for d in &source.departments {
        if index.contains_key(&d.source_id) {
            p.items.push(Item {
                kind: Kind::Department,
                op: "create",
                source_id: Some(d.source_id.clone()),
                target_id: None,
                outcome: ItemOutcome::Invalid,
                message: format!("duplicate source id {}: only the first department with it is used", d.source_id),
            });
            continue;
        }
        index.insert(&d.source_id, src.len());
        src.push(d);
    }
    let n = src.len();

    // Depths; cycles and missing parents make a department (and its subtree) invalid.
    let mut depth: Vec<Option<usize>> = vec![None; n];
    let mut done = vec![false; n];
    for start in 0..n {
        if done[start] {
            continue;
        }
        let mut chain: Vec<usize> = Vec::new();
        let mut on_chain = HashSet::new();
        let mut cur = start;
        // Walk up until a resolved node, a root, a missing parent or a cycle.
        let base: Result<usize, String> = loop {
            if done[cur] {
                break depth[cur].map(|d| d + 1).ok_or_else(|| format!("ancestor {} is invalid", src[cur].source_id));
            }
            if !on_chain.insert(cur) {
                let pos = chain.iter().position(|&c| c == cur).unwrap_or(0);
                let cycle: Vec<String> = chain[pos..].iter().map(|&c| src[c].source_id.to_string()).collect();
                // Members of the cycle get the cycle message; their descendants below.
                for &c in &chain[pos..] {
                    done[c] = true;
                    depth[c] = None;
                    p.items.push(invalid_dept(
                        src[c],
                        format!(
                            "department is part of a parent cycle: {} -> {}",
                            cycle.join(" -> "),
                            cycle.first().map(String::as_str).unwrap_or("")
                        ),
                    ));
                }
                chain.truncate(pos);
                break Err(format!("ancestor {} is in a parent cycle", src[cur].source_id));
            }
            chain.push(cur);
            match &src[cur].parent_id {
                None => break Ok(0),
                Some(pid) => match index.get(pid) {
                    Some(&pi) => cur = pi,
                    None => {
                        let msg = format!("parent department {pid} is not in the source");
                        chain.pop();
                        done[cur] = true;
                        depth[cur] = None;
                        p.items.push(invalid_dept(src[cur], msg));
                        break Err(format!("ancestor {} has a missing parent", src[cur].source_id));
                    }
                },
            }
        };
        // Resolve the chain top-down.
        match base {
            Ok(mut d) => {
                for &c in chain.iter().rev() {
                    if done[c] {
                        continue;
                    }
                    done[c] = true;
                    depth[c] = Some(d);
                    d += 1;
                }
            }
            Err(msg) => {
                for &c in chain.iter().rev() {
                    if !done[c] {
                        done[c] = true;
                        p.items.push(invalid_dept(src[c], msg.clone()));
                    }
                }
            }
        }
    }

    // Matching: binding, external id, then same name under the same matched parent.
    let tindex: HashMap<&TargetId, usize> = target.departments.iter().enumerate().map(|(i, d)| (&d.id, i)).collect();
    let mut claimed = vec![false; target.departments.len()];
    let mut res = vec![DeptRes::Absent; n];
    let mut matched_how: Vec<Option<&'static str>> = vec![None; n];
    for i in 0..n {
        if let Some(tid) = bindings.departments.get(&src[i].source_id) {
            match tindex.get(tid) {
                Some(&t) if !claimed[t] => {
                    claimed[t] = true;
                    res[i] = DeptRes::Matched(t);
                }
                Some(_) => {}
                None => binds.push(Op::Unbind {
                    kind: Kind::Department,
                    source_id: src[i].source_id.clone(),
                    target_id: tid.clone(),
                    reason: "bound target department no longer exists".into(),
                }),
            }
        }
    }
    let mut by_ext: HashMap<&str, Vec<usize>> = HashMap::new();
    for (t, d) in target.departments.iter().enumerate() {
        if let Some(e) = non_empty(&d.external_id) {
            by_ext.entry(e).or_default().push(t);
        }
    }
    claim_unreadable(source, Kind::Department, &bindings.departments, &tindex, &by_ext, &mut claimed);
    // How much each target department holds: member users and child departments.
    let mut dept_use = vec![0usize; target.departments.len()];
    for u in &target.users {
        for d in &u.departments {
            if let Some(&t) = tindex.get(d) {
                dept_use[t] += 1;
            }
        }
    }
    for d in &target.departments {
        if let Some(&t) = d.parent.as_ref().and_then(|p| tindex.get(p)) {
            dept_use[t] += 1;
        }
    }
    for i in 0..n {
        if res[i] != DeptRes::Absent {
            continue;
        }
        if let Some(c) = by_ext.get(src[i].source_id.as_str()) {
            // Several carry it (a lost create answer, a crash): bind the one
            // in use; the others are duplicates, handled below.
            let pick = c.iter().copied().filter(|&t| !claimed[t]).max_by_key(|&t| (dept_use[t], std::cmp::Reverse(t)));
            if let Some(t) = pick {
                claimed[t] = true;
                res[i] = DeptRes::Matched(t);
                matched_how[i] = Some("external id equals the source id");
            }
        }
    }
    // Name under parent, parents first.
    let mut order: Vec<usize> = (0..n).filter(|&i| depth[i].is_some()).collect();
    order.sort_by_key(|&i| (depth[i], i));
    let mut conflicted_targets: HashSet<usize> = HashSet::new();
    {
        let mut by_name: HashMap<(Option<&TargetId>, &str), Vec<usize>> = HashMap::new();
        for (t, d) in target.departments.iter().enumerate() {
            if !claimed[t] {
                by_name.entry((d.parent.as_ref(), d.name.as_str())).or_default().push(t);
            }
        }
        for &i in &order {
            if res[i] != DeptRes::Absent {
                continue;
            }
            let parent_tid = match &src[i].parent_id {
                None => None,
                Some(pid) => match index.get(pid).map(|&pi| &res[pi]) {
                    Some(DeptRes::Matched(t)) => Some(&target.departments[*t].id),
                    _ => continue,
                },
            };
            let Some(c) = by_name.get(&(parent_tid, src[i].name.as_str())) else { continue };
            let free: Vec<usize> = c.iter().copied().filter(|&t| !claimed[t]).collect();
            match free.len() {
                0 => {}
                1 => {
                    claimed[free[0]] = true;
                    res[i] = DeptRes::Matched(free[0]);
                    matched_how[i] = Some("same name under the same parent");
                }
                _ => {
                    conflicted_targets.extend(free.iter().copied());
                    p.items.push(Item {
                        kind: Kind::Department,
                        op: "bind",
                        source_id: Some(src[i].source_id.clone()),
                        target_id: None,
                        outcome: ItemOutcome::Conflict,
                        message: format!(
                            "name {:?} matches several target departments: {}",
                            src[i].name,
                            free.iter().map(|&t| target.departments[t].id.to_string()).collect::<Vec<_>>().join(", ")
                        ),
                    });
                    res[i] = DeptRes::Absent;
                    matched_how[i] = Some("conflict");
                }
            }
        }
    }
    // Unmatched valid departments: create or ignore.
    for &i in &order {
        if res[i] == DeptRes::Absent && matched_how[i].is_none() && policy.departments.source_only == SourceOnly::CreateAndBind {
            // A child can only be created when its parent exists or is created.
            let parent_ok = match &src[i].parent_id {
                None => true,
                Some(pid) => index.get(pid).is_some_and(|&pi| res[pi] != DeptRes::Absent),
            };
            if parent_ok {
                res[i] = DeptRes::Created;
            }
        }
    }

    let state = DeptState { src, index, depth, res };
    let mut creates = Vec::new();
    let mut updates = Vec::new();
    for &i in &order {
        let d = state.src[i];
        let spec = || DeptSpec { external_id: d.source_id.to_string(), name: d.name.clone(), parent: d.parent_id.clone() };
        match state.res[i] {
            DeptRes::Created => {
                creates.push(Op::CreateDepartment { source_id: d.source_id.clone(), spec: spec(), depth: state.depth[i].unwrap_or(0) })
            }
            DeptRes::Matched(t) => {
                let td = &target.departments[t];
                if is_protected_dept(td, &policy.departments.protected) {
                    continue;
                }
                if let Some(how) = matched_how[i] {
                    binds.push(Op::Bind {
                        kind: Kind::Department,
                        source_id: d.source_id.clone(),
                        target_id: td.id.clone(),
                        reason: format!("matched by {how}"),
                    });
                }
                let mut changes = Vec::new();
                if td.name != d.name {
                    changes.push(Change { field: Field::Name, from: Some(td.name.clone()), to: Some(d.name.clone()) });
                }
                if non_empty(&td.external_id) != Some(d.source_id.as_str()) {
                    changes.push(Change { field: Field::ExternalId, from: td.external_id.clone(), to: Some(d.source_id.to_string()) });
                }
                let parent_change = match state.desired_parent(i, target) {
                    ParentRes::Known(want) => want != td.parent,
                    ParentRes::Pending => true,
                    ParentRes::Unavailable => false,
                };
                // An unavailable parent (it will not exist in the target) keeps the
                // target's parent: apply only moves when `parent` is a change.
                if parent_change {
                    changes.push(Change {
                        field: Field::Parent,
                        from: td.parent.as_ref().map(|t| t.to_string()),
                        to: d.parent_id.as_ref().map(|s| s.to_string()),
                    });
                }
                if !changes.is_empty() {
                    updates.push(Op::UpdateDepartment {
                        source_id: d.source_id.clone(),
                        target_id: td.id.clone(),
                        spec: spec(),
                        old_parent: td.parent.clone(),
                        changes,
                    });
                }
            }
            DeptRes::Absent => {}
        }
    }
    // Invalid departments still claim their bound / external-id targets (done above),
    // so they never turn into target-only deletions.

    // Duplicates: more target departments carry the externalId (our mark)
    // of a source department than the one it is matched to. Left by a
    // create whose answer was lost, or by a crash between a create and its
    // record. An empty one is deleted; one in use is for an admin to judge.
    let mut deletes = Vec::new();
    for &i in &order {
        let DeptRes::Matched(keep) = state.res[i] else { continue };
        for &t in by_ext.get(state.src[i].source_id.as_str()).into_iter().flatten() {
            if t == keep
                || claimed[t]
                || conflicted_targets.contains(&t)
                || is_protected_dept(&target.departments[t], &policy.departments.protected)
            {
                continue;
            }
            let td = &target.departments[t];
            if dept_use[t] == 0 {
                claimed[t] = true;
                deletes.push(Op::DeleteDepartment {
                    target_id: td.id.clone(),
                    name: td.name.clone(),
                    source_id: None,
                    depth: 0,
                    duplicate_of: Some(target.departments[keep].id.clone()),
                    reason: format!(
                        "an empty duplicate of {} (the same externalId {}, ours)",
                        target.departments[keep].id, state.src[i].source_id
                    ),
                });
            } else {
                conflicted_targets.insert(t);
                p.items.push(Item {
                    kind: Kind::Department,
                    op: "delete",
                    source_id: Some(state.src[i].source_id.clone()),
                    target_id: Some(td.id.clone()),
                    outcome: ItemOutcome::Conflict,
                    message: format!(
                        "a duplicate of {} (the same externalId) that holds members or departments: not deleted; merge or remove it",
                        target.departments[keep].id
                    ),
                });
            }
        }
    }

    // Target-only departments.
    if policy.departments.target_only == TargetOnly::Delete {
        let tdepth = target_depths(target);
        let rev = reverse(&bindings.departments);
        for (t, td) in target.departments.iter().enumerate() {
            if claimed[t] || conflicted_targets.contains(&t) || is_protected_dept(td, &policy.departments.protected) {
                continue;
            }
            deletes.push(Op::DeleteDepartment {
                target_id: td.id.clone(),
                name: td.name.clone(),
                source_id: rev.get(&td.id).map(|s| (*s).clone()),
                depth: tdepth[t],
                duplicate_of: None,
                reason: "no in-scope source department; policy.departments.target_only = delete".into(),
            });
        }
    }
    (state, (creates, updates, deletes))
}

fn invalid_dept(d: &Department, message: String) -> Item {
    Item {
        kind: Kind::Department,
        op: "create",
        source_id: Some(d.source_id.clone()),
        target_id: None,
        outcome: ItemOutcome::Invalid,
        message,
    }
}

fn reverse(map: &HashMap<SourceId, TargetId>) -> HashMap<&TargetId, &SourceId> {
    map.iter().map(|(s, t)| (t, s)).collect()
}

/// Depth of each target department in the target's own tree (cycles cut).
fn target_depths(target: &TargetSnapshot) -> Vec<usize> {
    let idx: HashMap<&TargetId, usize> = target.departments.iter().enumerate().map(|(i, d)| (&d.id, i)).collect();
    target
        .departments
        .iter()
        .map(|d| {
            let mut depth = 0;
            let mut cur = d.parent.as_ref();
            while let Some(p) = cur.and_then(|p| idx.get(p)) {
                depth += 1;
                if depth > target.departments.len() {
                    break;
                }
                cur = target.departments[*p].parent.as_ref();
            }
            depth
        })
        .collect()
}

fn is_protected_user(u: &TargetUser, protected: &[String]) -> bool {
    protected.iter().any(|p| {
        p == u.id.as_str()
            || non_empty(&u.username).is_some_and(|n| n.eq_ignore_ascii_case(p))
            || non_empty(&u.email).is_some_and(|e| e.eq_ignore_ascii_case(p))
    })
}

fn plan_users(
    source: &Snapshot,
    target: &TargetSnapshot,
    bindings: &Bindings,
    policy: &Policy,
    dept: &DeptState<'_>,
    p: &mut Plan,
    binds: &mut Vec<Op>,
) -> (Vec<Op>, Vec<Op>) {
    let up = &policy.users;
    let mut seen: HashSet<&SourceId> = HashSet::new();
    let mut src: Vec<&User> = Vec::new();
    for u in &source.users {
        if !seen.insert(&u.source_id) {
            p.items.push(Item {
                kind: Kind::User,
                op: "create",
                source_id: Some(u.source_id.clone()),
                target_id: None,
                outcome: ItemOutcome::Invalid,
                message: format!("duplicate source id {}: only the first user with it is used", u.source_id),
            });
            continue;
        }
        src.push(u);
    }
    let n = src.len();
    let tindex: HashMap<&TargetId, usize> = target.users.iter().enumerate().map(|(i, u)| (&u.id, i)).collect();
    let mut claimed = vec![false; target.users.len()];
    let mut matched: Vec<Option<usize>> = vec![None; n];
    let mut how: Vec<Option<String>> = vec![None; n];
    let mut stop: Vec<bool> = vec![false; n]; // conflict: neither bind nor create

    for i in 0..n {
        if let Some(tid) = bindings.users.get(&src[i].source_id) {
            match tindex.get(tid) {
                Some(&t) if !claimed[t] => {
                    claimed[t] = true;
                    matched[i] = Some(t);
                }
                Some(_) => {}
                None => binds.push(Op::Unbind {
                    kind: Kind::User,
                    source_id: src[i].source_id.clone(),
                    target_id: tid.clone(),
                    reason: "bound target user no longer exists".into(),
                }),
            }
        }
    }
    // Our own mark: external id = source id (recovers a create whose binding was lost).
    let mut by_ext: HashMap<&str, Vec<usize>> = HashMap::new();
    for (t, u) in target.users.iter().enumerate() {
        if let Some(e) = non_empty(&u.external_id) {
            by_ext.entry(e).or_default().push(t);
        }
    }
    claim_unreadable(source, Kind::User, &bindings.users, &tindex, &by_ext, &mut claimed);
    for i in 0..n {
        if matched[i].is_some() {
            continue;
        }
        if let Some(c) = by_ext.get(src[i].source_id.as_str())
            && let Some(t) = c.iter().copied().find(|&t| !claimed[t])
        {
            claimed[t] = true;
            matched[i] = Some(t);
            how[i] = Some("external id equals the source id".into());
        }
    }
    // Another target user carrying the externalId of a matched source user:
    // a duplicate (servers that enforce unique userNames make it rare). A
    // user account is never deleted on a guess: it is for an admin to judge.
    let mut conflicted_targets: HashSet<usize> = HashSet::new();
    for i in 0..n {
        let Some(keep) = matched[i] else { continue };
        for &t in by_ext.get(src[i].source_id.as_str()).into_iter().flatten() {
            if t != keep && !claimed[t] && conflicted_targets.insert(t) {
                p.items.push(Item {
                    kind: Kind::User,
                    op: "delete",
                    source_id: Some(src[i].source_id.clone()),
                    target_id: Some(target.users[t].id.clone()),
                    outcome: ItemOutcome::Conflict,
                    message: format!("a duplicate of {} (the same externalId): not touched; merge or remove it", target.users[keep].id),
                });
            }
        }
    }
    // Match keys in order.
    for &key in &up.match_by {
        let mut tidx: HashMap<String, Vec<usize>> = HashMap::new();
        for (t, u) in target.users.iter().enumerate() {
            if !claimed[t]
                && let Some(v) = target_key_value(u, key)
            {
                tidx.entry(v).or_default().push(t);
            }
        }
        let mut sidx: HashMap<String, Vec<usize>> = HashMap::new();
        for i in 0..n {
            if matched[i].is_none()
                && !stop[i]
                && let Some(v) = key_value(src[i], key)
            {
                sidx.entry(v).or_default().push(i);
            }
        }
        for i in 0..n {
            if matched[i].is_some() || stop[i] {
                continue;
            }
            let Some(v) = key_value(src[i], key) else { continue };
            let others = &sidx[&v];
            if others.len() > 1 {
                stop[i] = true;
                let names: Vec<String> = others.iter().map(|&o| src[o].source_id.to_string()).collect();
                p.items.push(Item {
                    kind: Kind::User,
                    op: "bind",
                    source_id: Some(src[i].source_id.clone()),
                    target_id: None,
                    outcome: ItemOutcome::Conflict,
                    message: format!("{key} {v:?} is shared by source users {}", names.join(", ")),
                });
                if let Some(c) = tidx.get(&v) {
                    conflicted_targets.extend(c.iter().copied());
                }
                continue;
            }
            let free: Vec<usize> = tidx.get(&v).map(|c| c.iter().copied().filter(|&t| !claimed[t]).collect()).unwrap_or_default();
            match free.len() {
                0 => {}
                1 => {
                    claimed[free[0]] = true;
                    matched[i] = Some(free[0]);
                    how[i] = Some(format!("{key} {v:?}"));
                }
                _ => {
                    stop[i] = true;
                    conflicted_targets.extend(free.iter().copied());
                    p.items.push(Item {
                        kind: Kind::User,
                        op: "bind",
                        source_id: Some(src[i].source_id.clone()),
                        target_id: None,
                        outcome: ItemOutcome::Conflict,
                        message: format!(
                            "{key} {v:?} matches several target users: {}",
                            free.iter().map(|&t| target.users[t].id.to_string()).collect::<Vec<_>>().join(", ")
                        ),
                    });
                }
            }
        }
    }

    let mut ops = Vec::new();
    for i in 0..n {
        let u = src[i];
        let spec = user_spec(u, policy, dept);
        if spec.departments.is_some() && !u.is_absent(UserField::DepartmentIds) {
            let unknown: Vec<&str> = u.department_ids.iter().filter(|d| !dept.index.contains_key(d)).map(SourceId::as_str).collect();
            if !unknown.is_empty() {
                let (outcome, why) = if source.scoped {
                    (ItemOutcome::OutOfScope, "outside the sync scope; the user is kept in the departments within it")
                } else {
                    (ItemOutcome::Invalid, "not in the source: a data error; the user is kept in the departments that exist")
                };
                p.items.push(Item {
                    kind: Kind::User,
                    op: if matched[i].is_some() { "update" } else { "create" },
                    source_id: Some(u.source_id.clone()),
                    target_id: matched[i].map(|t| target.users[t].id.clone()),
                    outcome,
                    message: format!("department {} {why}", unknown.join(", ")),
                });
            }
        }
        match matched[i] {
            Some(t) => {
                let tu = &target.users[t];
                if is_protected_user(tu, &up.protected) {
                    continue;
                }
                if let Some(how) = &how[i] {
                    binds.push(Op::Bind {
                        kind: Kind::User,
                        source_id: u.source_id.clone(),
                        target_id: tu.id.clone(),
                        reason: format!("matched by {how}"),
                    });
                }
                let changes = user_changes(u, tu, &spec, up, dept, target);
                if !changes.is_empty() {
                    ops.push(Op::UpdateUser {
                        source_id: u.source_id.clone(),
                        target_id: tu.id.clone(),
                        spec,
                        old_departments: tu.departments.clone(),
                        changes,
                    });
                }
            }
            None if stop[i] => {}
            None => {
                // A user none of whose match keys has a value cannot match an
                // existing account: it is source-only. Created, its externalId
                // keeps every later run from creating it again.
                let keyless = up.match_by.iter().all(|&k| key_value(u, k).is_none());
                let keys = || up.match_by.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ");
                if keyless && !up.create_without_match_keys {
                    p.items.push(Item {
                        kind: Kind::User,
                        op: "create",
                        source_id: Some(u.source_id.clone()),
                        target_id: None,
                        outcome: ItemOutcome::Unmatchable,
                        message: format!(
                            "every match key ({}) is empty: not created (policy.users.create_without_match_keys = false)",
                            keys()
                        ),
                    });
                    continue;
                }
                // A user who already left is not provisioned.
                if up.source_only == SourceOnly::CreateAndBind && u.active {
                    let note = keyless.then(|| format!("created without a match key: {} is empty", keys()));
                    ops.push(Op::CreateUser { source_id: u.source_id.clone(), spec, note });
                }
            }
        }
    }

    let mut removals = Vec::new();
    if up.target_only != TargetOnly::Ignore {
        let rev = reverse(&bindings.users);
        for (t, tu) in target.users.iter().enumerate() {
            if claimed[t] || conflicted_targets.contains(&t) || is_protected_user(tu, &up.protected) {
                continue;
            }
            let source_id = rev.get(&tu.id).map(|s| (*s).clone());
            match up.target_only {
                TargetOnly::Disable if tu.active => removals.push(Op::DisableUser {
                    target_id: tu.id.clone(),
                    username: tu.username.clone(),
                    source_id,
                    reason: "no in-scope source user; policy.users.target_only = disable".into(),
                }),
                TargetOnly::Delete => removals.push(Op::DeleteUser {
                    target_id: tu.id.clone(),
                    username: tu.username.clone(),
                    source_id,
                    departments: tu.departments.clone(),
                    reason: "no in-scope source user; policy.users.target_only = delete".into(),
                }),
                _ => {}
            }
        }
    }
    (ops, removals)
}

fn user_spec(u: &User, policy: &Policy, dept: &DeptState<'_>) -> UserSpec {
    let fields = &policy.users.fields;
    let m = |f: UserField, v: &Option<String>| if fields.contains(&f) { opt(v) } else { None };
    let departments: Option<Vec<SourceId>> = fields.contains(&UserField::DepartmentIds).then(|| {
        let mut seen = HashSet::new();
        u.department_ids
            .iter()
            .filter(|d| dept.index.get(d).is_some_and(|&i| dept.res[i] != DeptRes::Absent))
            .filter(|d| seen.insert(*d))
            .cloned()
            .collect()
    });
    let department = departments.as_ref().and_then(|d| d.first()).and_then(|d| dept.index.get(d)).map(|&i| dept.src[i].name.clone());
    UserSpec {
        external_id: u.source_id.to_string(),
        username: opt(&u.username).or_else(|| opt(&u.email)),
        name: m(UserField::Name, &u.name),
        email: m(UserField::Email, &u.email),
        mobile: m(UserField::Mobile, &u.mobile),
        employee_no: m(UserField::EmployeeNo, &u.employee_no),
        nickname: m(UserField::Nickname, &u.nickname),
        title: m(UserField::Title, &u.title),
        department,
        departments,
        active: u.active,
    }
}

fn user_changes(
    u: &User,
    tu: &TargetUser,
    spec: &UserSpec,
    policy: &UserPolicy,
    dept: &DeptState<'_>,
    target: &TargetSnapshot,
) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut cmp = |field: Field, have: &Option<String>, want: &Option<String>| {
        if opt(have) != *want {
            changes.push(Change { field, from: opt(have), to: want.clone() });
        }
    };
    cmp(Field::ExternalId, &tu.external_id, &Some(spec.external_id.clone()));
    if spec.username.is_some() {
        cmp(Field::Username, &tu.username, &spec.username);
    }
    let pairs: [(UserField, Field, &Option<String>, &Option<String>); 6] = [
        (UserField::Name, Field::Name, &tu.name, &spec.name),
        (UserField::Email, Field::Email, &tu.email, &spec.email),
        (UserField::Mobile, Field::Mobile, &tu.mobile, &spec.mobile),
        (UserField::EmployeeNo, Field::EmployeeNo, &tu.employee_no, &spec.employee_no),
        (UserField::Nickname, Field::Nickname, &tu.nickname, &spec.nickname),
        (UserField::Title, Field::Title, &tu.title, &spec.title),
    ];
    for (f, name, have, want) in pairs {
        // Absent (withheld by the source) never changes the target; empty
        // clears it only when the policy allows.
        let keep = u.is_absent(f) || (want.is_none() && !policy.clear_when_empty);
        if policy.fields.contains(&f) && !keep {
            cmp(name, have, want);
        }
    }
    if let Some(want) = spec.departments.as_ref().filter(|_| !u.is_absent(UserField::DepartmentIds)) {
        cmp(Field::Department, &tu.department, &spec.department);
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
                from: Some(have.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(",")),
                to: Some(want.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")),
            });
        }
    }
    if tu.active != spec.active {
        changes.push(Change { field: Field::Active, from: Some(tu.active.to_string()), to: Some(spec.active.to_string()) });
    }
    changes
}
