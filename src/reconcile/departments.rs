//! Departments: matching (binding, externalId, the same name under the same
//! matched parent), the tree's depths, creates parents first, updates
//! (renames, moves), duplicates, and target-only deletes children first.

use super::matching::{BY_EXTERNAL_ID, ByExternalId, by_binding, claim_unread, claim_unreadable, external_id_index, reverse};
use super::plan::{Change, DeptSpec, Field, FieldSet, Item, Op, Outcome, Verb};
use super::policy::{Policy, SourceOnly, TargetOnly};
use super::{DepartmentShape, RunOptions};
use crate::model::{Bindings, Department, Kind, Snapshot, SourceId, TargetDepartment, TargetId, TargetSnapshot, non_empty};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

/// Where a source department's target counterpart is (or will be).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum DeptRes {
    /// Matched to this target department.
    Matched(usize),
    /// Will be created in this run.
    Created,
    /// Will not exist in the target (ignored, invalid, unmatched).
    Absent,
}

pub(super) struct DeptState<'a> {
    pub(super) src: Vec<&'a Department>,
    pub(super) index: HashMap<&'a SourceId, usize>,
    /// Depth in the source tree, None when invalid (cycle/missing parent).
    pub(super) depth: Vec<Option<usize>>,
    pub(super) res: Vec<DeptRes>,
    /// How the target holds departments.
    pub(super) shape: DepartmentShape,
    /// The user fields the target cannot hold.
    pub(super) unheld: FieldSet,
    pub(super) primary_only: bool,
    /// Now, for grace periods.
    pub(super) now: Option<chrono::DateTime<chrono::Utc>>,
}

impl DeptState<'_> {
    /// The desired target parent of source department `i`:
    /// Some(Some(id)) / Some(None) when known now, None when it depends on a create.
    fn desired_parent(&self, i: usize, target: &TargetSnapshot) -> ParentRes {
        let Some(pid) = self.parent(i) else { return ParentRes::Known(None) };
        match self.index.get(pid).map(|&p| &self.res[p]) {
            Some(DeptRes::Matched(t)) => ParentRes::Known(Some(target.departments[*t].id.clone())),
            Some(DeptRes::Created) => ParentRes::Pending,
            _ => ParentRes::Unavailable,
        }
    }
}

impl<'a> DeptState<'a> {
    /// A target department as the run log names it: by the source id of the
    /// department matched to it (both sides of a change read alike), else
    /// as the target's (`target <id>`).
    pub(super) fn named(&self, t: &TargetId, target: &TargetSnapshot) -> String {
        self.res
            .iter()
            .position(|r| matches!(r, DeptRes::Matched(i) if target.departments[*i].id == *t))
            .map_or_else(|| format!("target {t}"), |i| self.src[i].source_id.to_string())
    }

    /// Source department `i`'s parent as the target holds it: none in a flat target.
    pub(super) fn parent(&self, i: usize) -> Option<&'a SourceId> {
        self.src[i].parent_id.as_ref().filter(|_| self.shape == DepartmentShape::Tree)
    }
}

pub(super) enum ParentRes {
    Known(Option<TargetId>),
    Pending,
    Unavailable,
}

/// The departments' part of a plan: its operations by phase, the bindings
/// it found or dropped, what it reports instead of doing, and the state the
/// users are planned against.
pub(super) struct DepartmentPlan<'a> {
    pub(super) state: DeptState<'a>,
    pub(super) creates: Vec<Op>,
    pub(super) updates: Vec<Op>,
    pub(super) deletes: Vec<Op>,
    /// Binds, unbinds and schedules (mirror only).
    pub(super) binds: Vec<Op>,
    pub(super) items: Vec<Item>,
}

pub(super) fn is_protected_dept(d: &TargetDepartment, protected: &[String]) -> bool {
    protected.iter().any(|p| p == d.id.as_str() || p == &d.name || d.external_id.as_deref() == Some(p.as_str()))
}

/// Plan the departments in stages: the source's distinct ids, their place
/// in the tree, the target indexed, matched and bound, the fields diffed,
/// duplicates, then the target-only departments.
pub(super) fn plan_departments<'a>(
    source: &'a Snapshot,
    target: &TargetSnapshot,
    bindings: &Bindings,
    policy: &Policy,
    options: RunOptions,
) -> DepartmentPlan<'a> {
    let (src, index, mut items) = distinct(source);
    let (depth, invalid) = super::tree::depths(&src, &index);
    items.extend(invalid);
    let shape = options.departments;
    let tree = shape == DepartmentShape::Tree;
    let tindex = TargetIndex::new(target);
    let matched = match_departments(source, &src, &index, &depth, target, &tindex, bindings, tree);
    items.extend(matched.items.iter().cloned());
    let mut binds = matched.unbinds.clone();
    let res = created(&src, &index, &matched, policy, tree);
    let state = DeptState { src, index, depth, res, shape, unheld: options.unheld, primary_only: options.primary_only, now: options.now };
    let diffed = diff(&state, &matched, target, policy, options);
    binds.extend(diffed.binds);
    let dup = duplicates(&state, &matched, &tindex, target, policy);
    items.extend(dup.items);
    let gone = target_only(&matched, &dup.handled, target, bindings, policy, options);
    items.extend(gone.items);
    binds.extend(gone.binds);
    let mut deletes = dup.deletes;
    deletes.extend(gone.deletes);
    DepartmentPlan { state, creates: diffed.creates, updates: diffed.updates, deletes, binds, items }
}

/// The source's departments by id: the first with an id wins, the rest are
/// `invalid` items.
fn distinct(source: &Snapshot) -> (Vec<&Department>, HashMap<&SourceId, usize>, Vec<Item>) {
    let mut index: HashMap<&SourceId, usize> = HashMap::default();
    let mut src: Vec<&Department> = Vec::new();
    let mut items = Vec::new();
    for d in &source.departments {
        if index.contains_key(&d.source_id) {
            items.push(Item {
                kind: Kind::Department,
                op: Verb::Create,
                source_id: Some(d.source_id.clone()),
                target_id: None,
                outcome: Outcome::Invalid,
                message: format!("duplicate source id {}: only the first department with it is used", d.source_id),
            });
            continue;
        }
        index.insert(&d.source_id, src.len());
        src.push(d);
    }
    (src, index, items)
}

/// The target's departments indexed: by id, by externalId, and how much
/// each holds (member users and child departments).
struct TargetIndex<'t> {
    target: &'t TargetSnapshot,
    by_id: HashMap<&'t TargetId, usize>,
    by_ext: ByExternalId<'t>,
    /// Counted when first asked: only departments sharing an externalId
    /// ask, and counting reads every user's memberships.
    used: std::cell::OnceCell<Vec<usize>>,
}

impl<'t> TargetIndex<'t> {
    fn new(target: &'t TargetSnapshot) -> Self {
        let by_id: HashMap<&TargetId, usize> = target.departments.iter().enumerate().map(|(i, d)| (&d.id, i)).collect();
        let by_ext = external_id_index(target.departments.iter().map(|d| &d.external_id).enumerate());
        TargetIndex { target, by_id, by_ext, used: std::cell::OnceCell::new() }
    }

    /// How much target department `t` holds: member users and child departments.
    fn used(&self, t: usize) -> usize {
        self.used.get_or_init(|| {
            let mut used = vec![0usize; self.target.departments.len()];
            let members = self.target.users.iter().flat_map(|u| &u.departments);
            let children = self.target.departments.iter().filter_map(|d| d.parent.as_ref());
            for t in members.chain(children).filter_map(|d| self.by_id.get(d)) {
                used[*t] += 1;
            }
            used
        })[t]
    }
}

/// How the source departments matched: each one's target, how (for the
/// bind's reason), the targets taken, the ones in a conflict, and the
/// valid departments parents first.
struct Matched {
    res: Vec<DeptRes>,
    how: Vec<Option<&'static str>>,
    claimed: Vec<bool>,
    conflicted: HashSet<usize>,
    order: Vec<usize>,
    unbinds: Vec<Op>,
    items: Vec<Item>,
}

/// Match and bind: the binding, then the externalId (the one in use where
/// several carry it), then the same name under the same matched parent,
/// parents first. Invalid departments still claim their bound and
/// externalId targets, so they never turn into target-only deletions.
#[allow(clippy::too_many_arguments)]
fn match_departments(
    source: &Snapshot,
    src: &[&Department],
    index: &HashMap<&SourceId, usize>,
    depth: &[Option<usize>],
    target: &TargetSnapshot,
    tindex: &TargetIndex<'_>,
    bindings: &Bindings,
    tree: bool,
) -> Matched {
    let n = src.len();
    let mut claimed = vec![false; target.departments.len()];
    let mut res = vec![DeptRes::Absent; n];
    let mut how: Vec<Option<&'static str>> = vec![None; n];
    let ids: Vec<&SourceId> = src.iter().map(|d| &d.source_id).collect();
    let (bound, unbinds) = by_binding(Kind::Department, &ids, &bindings.departments, &tindex.by_id, &mut claimed);
    for (i, t) in bound.into_iter().enumerate() {
        if let Some(t) = t {
            res[i] = DeptRes::Matched(t);
        }
    }
    claim_unreadable(source, Kind::Department, &bindings.departments, &tindex.by_id, &tindex.by_ext, &mut claimed);
    claim_unread(source, Kind::Department, &bindings.departments, &tindex.by_id, &mut claimed);
    for i in 0..n {
        if res[i] != DeptRes::Absent {
            continue;
        }
        if let Some(c) = tindex.by_ext.get(src[i].source_id.as_str()) {
            // Several carry it (a lost create answer, a crash): bind the one
            // in use (counted only then); the others are duplicates, handled below.
            let several = c.len() > 1;
            let pick = c
                .iter()
                .copied()
                .filter(|&t| !claimed[t])
                .max_by_key(|&t| (if several { tindex.used(t) } else { 0 }, std::cmp::Reverse(t)));
            if let Some(t) = pick {
                claimed[t] = true;
                res[i] = DeptRes::Matched(t);
                how[i] = Some(BY_EXTERNAL_ID);
            }
        }
    }
    let mut order: Vec<usize> = (0..n).filter(|&i| depth[i].is_some()).collect();
    order.sort_by_key(|&i| (depth[i], i));
    let mut m = Matched { res, how, claimed, conflicted: HashSet::default(), order, unbinds, items: Vec::new() };
    by_name(&mut m, src, index, target, tree);
    m
}

/// Match by name under the same matched parent, parents first: one free
/// candidate is bound, several are a conflict (nothing bound).
fn by_name(m: &mut Matched, src: &[&Department], index: &HashMap<&SourceId, usize>, target: &TargetSnapshot, tree: bool) {
    let mut by_name: HashMap<(Option<&TargetId>, &str), Vec<usize>> = HashMap::default();
    for (t, d) in target.departments.iter().enumerate() {
        if !m.claimed[t] {
            by_name.entry((d.parent.as_ref().filter(|_| tree), d.name.as_str())).or_default().push(t);
        }
    }
    for &i in &m.order {
        if m.res[i] != DeptRes::Absent {
            continue;
        }
        let parent_tid = match src[i].parent_id.as_ref().filter(|_| tree) {
            None => None,
            Some(pid) => match index.get(pid).map(|&pi| &m.res[pi]) {
                Some(DeptRes::Matched(t)) => Some(&target.departments[*t].id),
                _ => continue,
            },
        };
        let Some(c) = by_name.get(&(parent_tid, src[i].name.as_str())) else { continue };
        let free: Vec<usize> = c.iter().copied().filter(|&t| !m.claimed[t]).collect();
        match free.len() {
            0 => {}
            1 => {
                m.claimed[free[0]] = true;
                m.res[i] = DeptRes::Matched(free[0]);
                m.how[i] = Some("matched by same name under the same parent");
            }
            _ => {
                m.conflicted.extend(free.iter().copied());
                m.items.push(Item {
                    kind: Kind::Department,
                    op: Verb::Bind,
                    source_id: Some(src[i].source_id.clone()),
                    target_id: None,
                    outcome: Outcome::Conflict,
                    message: format!(
                        "name {:?} matches several target departments: {}",
                        src[i].name,
                        free.iter().map(|&t| target.departments[t].id.to_string()).collect::<Vec<_>>().join(", ")
                    ),
                });
                m.res[i] = DeptRes::Absent;
                m.how[i] = Some("conflict");
            }
        }
    }
}

/// Where each department will be: matched, created (unmatched, valid, the
/// policy creates, and its parent exists or is created), or absent.
fn created(src: &[&Department], index: &HashMap<&SourceId, usize>, m: &Matched, policy: &Policy, tree: bool) -> Vec<DeptRes> {
    let mut res = m.res.clone();
    if policy.departments.source_only != SourceOnly::CreateAndBind {
        return res;
    }
    for &i in &m.order {
        if res[i] == DeptRes::Absent && m.how[i].is_none() {
            // A child can only be created when its parent exists or is created.
            let parent_ok = match src[i].parent_id.as_ref().filter(|_| tree) {
                None => true,
                Some(pid) => index.get(pid).is_some_and(|&pi| res[pi] != DeptRes::Absent),
            };
            if parent_ok {
                res[i] = DeptRes::Created;
            }
        }
    }
    res
}

/// The creates, the updates (name, externalId, parent) and the binds of
/// what matched by more than a binding.
struct Diffed {
    creates: Vec<Op>,
    updates: Vec<Op>,
    binds: Vec<Op>,
}

fn diff(state: &DeptState<'_>, m: &Matched, target: &TargetSnapshot, policy: &Policy, options: RunOptions) -> Diffed {
    let mut out = Diffed { creates: Vec::new(), updates: Vec::new(), binds: Vec::new() };
    for &i in &m.order {
        let d = state.src[i];
        let spec = || DeptSpec {
            external_id: d.source_id.to_string(),
            name: d.name.clone(),
            parent: state.parent(i).cloned(),
            leaders: vec![],
            leader_accounts: vec![],
        };
        match state.res[i] {
            DeptRes::Created => out.creates.push(Op::CreateDepartment {
                source_id: d.source_id.clone(),
                spec: Box::new(spec()),
                depth: state.depth[i].unwrap_or(0),
            }),
            DeptRes::Matched(t) => {
                let td = &target.departments[t];
                if is_protected_dept(td, &policy.departments.protected) {
                    continue;
                }
                if let Some(how) = m.how[i] {
                    out.binds.push(Op::Bind {
                        kind: Kind::Department,
                        source_id: d.source_id.clone(),
                        target_id: td.id.clone(),
                        reason: how.into(),
                    });
                }
                let changes = changes(state, i, td, target, options);
                if !changes.is_empty() {
                    out.updates.push(Op::UpdateDepartment {
                        source_id: d.source_id.clone(),
                        target_id: td.id.clone(),
                        spec: Box::new(spec()),
                        old_parent: td.parent.clone(),
                        changes,
                    });
                }
            }
            DeptRes::Absent => {}
        }
    }
    out
}

/// What differs between source department `i` and its target `td`.
fn changes(state: &DeptState<'_>, i: usize, td: &TargetDepartment, target: &TargetSnapshot, options: RunOptions) -> Vec<Change> {
    let d = state.src[i];
    let mut changes = Vec::new();
    if td.name != d.name {
        changes.push(Change { field: Field::Name, from: Some(td.name.clone()), to: Some(d.name.clone()) });
    }
    if non_empty(&td.external_id) != Some(d.source_id.as_str()) && !options.unheld.contains(Field::ExternalId) {
        changes.push(Change { field: Field::ExternalId, from: td.external_id.clone(), to: Some(d.source_id.to_string()) });
    }
    let parent_change = state.shape == DepartmentShape::Tree
        && match state.desired_parent(i, target) {
            ParentRes::Known(want) => want != td.parent,
            ParentRes::Pending => true,
            ParentRes::Unavailable => false,
        };
    // An unavailable parent (it will not exist in the target) keeps the
    // target's parent: apply only moves when `parent` is a change.
    if parent_change {
        changes.push(Change {
            field: Field::Parent,
            from: td.parent.as_ref().map(|t| state.named(t, target)),
            to: d.parent_id.as_ref().map(|s| s.to_string()),
        });
    }
    changes
}

/// Duplicates: more target departments carry the externalId (our mark) of
/// a source department than the one it is matched to, left by a create
/// whose answer was lost, or by a crash between a create and its record.
/// An empty one is deleted; one in use is for an admin to judge.
struct Duplicates {
    deletes: Vec<Op>,
    items: Vec<Item>,
    /// The target departments dealt with here (deleted or in conflict).
    handled: HashSet<usize>,
}

fn duplicates(state: &DeptState<'_>, m: &Matched, tindex: &TargetIndex<'_>, target: &TargetSnapshot, policy: &Policy) -> Duplicates {
    let mut out = Duplicates { deletes: Vec::new(), items: Vec::new(), handled: HashSet::default() };
    for &i in &m.order {
        let DeptRes::Matched(keep) = state.res[i] else { continue };
        for &t in tindex.by_ext.get(state.src[i].source_id.as_str()).into_iter().flatten() {
            if t == keep
                || m.claimed[t]
                || m.conflicted.contains(&t)
                || out.handled.contains(&t)
                || is_protected_dept(&target.departments[t], &policy.departments.protected)
            {
                continue;
            }
            out.handled.insert(t);
            let td = &target.departments[t];
            let kept = &target.departments[keep].id;
            if tindex.used(t) == 0 {
                out.deletes.push(Op::DeleteDepartment {
                    target_id: td.id.clone(),
                    name: td.name.clone(),
                    source_id: None,
                    depth: 0,
                    duplicate_of: Some(kept.clone()),
                    reason: format!("an empty duplicate of {kept} (the same externalId {}, ours)", state.src[i].source_id),
                });
            } else {
                out.items.push(Item {
                    kind: Kind::Department,
                    op: Verb::Delete,
                    source_id: Some(state.src[i].source_id.clone()),
                    target_id: Some(td.id.clone()),
                    outcome: Outcome::Conflict,
                    message: format!(
                        "a duplicate of {kept} (the same externalId) that holds members or departments: not deleted; merge or remove it"
                    ),
                });
            }
        }
    }
    out
}

/// Target-only departments under `target_only = delete`: deleted at once,
/// or after `delete_after` (scheduled first, then said to wait, then
/// deleted).
struct TargetOnlyDepartments {
    deletes: Vec<Op>,
    items: Vec<Item>,
    binds: Vec<Op>,
}

fn target_only(
    m: &Matched,
    handled: &HashSet<usize>,
    target: &TargetSnapshot,
    bindings: &Bindings,
    policy: &Policy,
    options: RunOptions,
) -> TargetOnlyDepartments {
    let mut out = TargetOnlyDepartments { deletes: Vec::new(), items: Vec::new(), binds: Vec::new() };
    if policy.departments.target_only != TargetOnly::Delete {
        return out;
    }
    let tdepth = super::tree::target_depths(target);
    let rev = reverse(&bindings.departments);
    for (t, td) in target.departments.iter().enumerate() {
        if m.claimed[t] || m.conflicted.contains(&t) || handled.contains(&t) || is_protected_dept(td, &policy.departments.protected) {
            continue;
        }
        let delete = |reason: String| Op::DeleteDepartment {
            target_id: td.id.clone(),
            name: td.name.clone(),
            source_id: rev.get(&td.id).map(|s| (*s).clone()),
            depth: tdepth[t],
            duplicate_of: None,
            reason,
        };
        let grace = policy.departments.delete_after;
        if grace.is_zero() {
            out.deletes.push(delete("no in-scope source department; policy.departments.target_only = delete".into()));
            continue;
        }
        let g = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
        match (bindings.disabled.get(&td.id), options.now) {
            (Some(at), Some(now)) if now - *at >= g => out.deletes.push(delete(format!(
                "{}: gone since {}, still gone after {} (policy.departments.delete_after)",
                super::plan::GRACE_OVER,
                at.format("%Y-%m-%d %H:%M UTC"),
                humantime::format_duration(grace)
            ))),
            (Some(at), _) => out.items.push(Item {
                kind: Kind::Department,
                op: Verb::Delete,
                source_id: rev.get(&td.id).map(|s| (*s).clone()),
                target_id: Some(td.id.clone()),
                outcome: Outcome::Scheduled,
                message: format!(
                    "gone since {}; deleted from {} if still gone",
                    at.format("%Y-%m-%d %H:%M UTC"),
                    (*at + g).format("%Y-%m-%d %H:%M UTC")
                ),
            }),
            (None, _) => out.binds.push(Op::Schedule {
                kind: Kind::Department,
                target_id: td.id.clone(),
                reason: format!("in no source department; deleted after {} if still gone", humantime::format_duration(grace)),
            }),
        }
    }
    out
}

pub(super) fn invalid_dept(d: &Department, message: String) -> Item {
    Item {
        kind: Kind::Department,
        op: Verb::Create,
        source_id: Some(d.source_id.clone()),
        target_id: None,
        outcome: Outcome::Invalid,
        message,
    }
}
