//! Departments: matching (binding, externalId, the same name under the same
//! matched parent), the tree's depths, creates parents first, updates
//! (renames, moves), duplicates, and target-only deletes children first.

use super::matching::{by_binding, claim_unreadable, external_id_index, reverse};
use super::plan::{Change, DeptSpec, Field, FieldSet, Item, Op, Outcome, Plan, Verb};
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
    fn parent(&self, i: usize) -> Option<&'a SourceId> {
        self.src[i].parent_id.as_ref().filter(|_| self.shape == DepartmentShape::Tree)
    }
}

pub(super) enum ParentRes {
    Known(Option<TargetId>),
    Pending,
    Unavailable,
}

pub(super) type DeptOps = (Vec<Op>, Vec<Op>, Vec<Op>);

pub(super) fn is_protected_dept(d: &TargetDepartment, protected: &[String]) -> bool {
    protected.iter().any(|p| p == d.id.as_str() || p == &d.name || d.external_id.as_deref() == Some(p.as_str()))
}

pub(super) fn plan_departments<'a>(
    source: &'a Snapshot,
    target: &TargetSnapshot,
    bindings: &Bindings,
    policy: &Policy,
    options: RunOptions,
    p: &mut Plan,
    binds: &mut Vec<Op>,
) -> (DeptState<'a>, DeptOps) {
    let shape = options.departments;
    let tree = shape == DepartmentShape::Tree;
    // Deduplicate source ids: the first wins, the rest are item errors.
    let mut index: HashMap<&'a SourceId, usize> = HashMap::default();
    let mut src: Vec<&'a Department> = Vec::new();
    for d in &source.departments {
        if index.contains_key(&d.source_id) {
            p.items.push(Item {
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
    let n = src.len();

    // Depths; cycles and missing parents make a department (and its subtree) invalid.
    let mut depth: Vec<Option<usize>> = vec![None; n];
    let mut done = vec![false; n];
    for start in 0..n {
        if done[start] {
            continue;
        }
        let mut chain: Vec<usize> = Vec::new();
        let mut on_chain = HashSet::default();
        let mut cur = start;
        // Walk up until a resolved node, a root, a missing parent or a cycle.
        let base: Result<usize, BadAncestor> = loop {
            if done[cur] {
                break depth[cur].map(|d| d + 1).ok_or_else(|| BadAncestor::Invalid(src[cur].source_id.clone()));
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
                break Err(BadAncestor::InCycle(src[cur].source_id.clone()));
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
                        break Err(BadAncestor::MissingParent(src[cur].source_id.clone()));
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
            Err(bad) => {
                for &c in chain.iter().rev() {
                    if !done[c] {
                        done[c] = true;
                        p.items.push(invalid_dept(src[c], bad.to_string()));
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
    let ids: Vec<&SourceId> = src.iter().map(|d| &d.source_id).collect();
    for (i, t) in by_binding(Kind::Department, &ids, &bindings.departments, &tindex, &mut claimed, binds).into_iter().enumerate() {
        if let Some(t) = t {
            res[i] = DeptRes::Matched(t);
        }
    }
    let by_ext = external_id_index(target.departments.iter().map(|d| &d.external_id));
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
    let mut conflicted_targets: HashSet<usize> = HashSet::default();
    {
        let mut by_name: HashMap<(Option<&TargetId>, &str), Vec<usize>> = HashMap::default();
        for (t, d) in target.departments.iter().enumerate() {
            if !claimed[t] {
                by_name.entry((d.parent.as_ref().filter(|_| tree), d.name.as_str())).or_default().push(t);
            }
        }
        for &i in &order {
            if res[i] != DeptRes::Absent {
                continue;
            }
            let parent_tid = match src[i].parent_id.as_ref().filter(|_| tree) {
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
            let parent_ok = match src[i].parent_id.as_ref().filter(|_| tree) {
                None => true,
                Some(pid) => index.get(pid).is_some_and(|&pi| res[pi] != DeptRes::Absent),
            };
            if parent_ok {
                res[i] = DeptRes::Created;
            }
        }
    }

    let state = DeptState { src, index, depth, res, shape, unheld: FieldSet::default(), primary_only: false, now: options.now };
    let mut creates = Vec::new();
    let mut updates = Vec::new();
    for &i in &order {
        let d = state.src[i];
        let spec = || DeptSpec { external_id: d.source_id.to_string(), name: d.name.clone(), parent: state.parent(i).cloned() };
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
                if non_empty(&td.external_id) != Some(d.source_id.as_str()) && !options.unheld.contains(Field::ExternalId) {
                    changes.push(Change { field: Field::ExternalId, from: td.external_id.clone(), to: Some(d.source_id.to_string()) });
                }
                let parent_change = tree
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
                    op: Verb::Delete,
                    source_id: Some(state.src[i].source_id.clone()),
                    target_id: Some(td.id.clone()),
                    outcome: Outcome::Conflict,
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
                deletes.push(delete("no in-scope source department; policy.departments.target_only = delete".into()));
                continue;
            }
            let g = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
            match (bindings.disabled.get(&td.id), options.now) {
                (Some(at), Some(now)) if now - *at >= g => deletes.push(delete(format!(
                    "{}: gone since {}, still gone after {} (policy.departments.delete_after)",
                    super::plan::GRACE_OVER,
                    at.format("%Y-%m-%d %H:%M UTC"),
                    humantime::format_duration(grace)
                ))),
                (Some(at), _) => p.items.push(Item {
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
                (None, _) => binds.push(Op::Schedule {
                    kind: Kind::Department,
                    target_id: td.id.clone(),
                    reason: format!("in no source department; deleted after {} if still gone", humantime::format_duration(grace)),
                }),
            }
        }
    }
    (state, (creates, updates, deletes))
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

/// Depth of each target department in the target's own tree (cycles cut).
pub(super) fn target_depths(target: &TargetSnapshot) -> Vec<usize> {
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

/// Why a department's ancestry cannot be placed (its descendants' items say it).
#[derive(Debug, thiserror::Error)]
enum BadAncestor {
    #[error("ancestor {0} is invalid")]
    Invalid(SourceId),
    #[error("ancestor {0} is in a parent cycle")]
    InCycle(SourceId),
    #[error("ancestor {0} has a missing parent")]
    MissingParent(SourceId),
}
