//! On-demand runs (`orgsync sync --only user:<id>`): the plan of the whole
//! source, restricted to the objects named and what they need (the
//! departments a new user joins, created parents first).

use super::plan::{History, Item, Op, Outcome, Plan, Planned, Verb};
use super::{Policy, RunOptions};
use crate::model::{Bindings, Kind, Snapshot, SourceId, TargetId, TargetSnapshot};
use std::collections::BTreeSet;
use std::fmt;

/// The objects an on-demand run is about, by source id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Only {
    pub users: BTreeSet<SourceId>,
    pub departments: BTreeSet<SourceId>,
}

/// Why an `--only` value cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("--only {0:?}: expected user:<source id> or department:<source id>")]
pub struct OnlyError(pub String);

impl Only {
    /// `user:<id>` and `department:<id>` values.
    pub fn parse(values: &[String]) -> Result<Only, OnlyError> {
        let mut only = Only::default();
        for v in values {
            match v.split_once(':') {
                Some(("user", id)) if !id.trim().is_empty() => only.users.insert(id.trim().into()),
                Some(("department", id)) if !id.trim().is_empty() => only.departments.insert(id.trim().into()),
                _ => return Err(OnlyError(v.clone())),
            };
        }
        Ok(only)
    }

    pub fn names(&self, kind: Kind, id: &SourceId) -> bool {
        match kind {
            Kind::User => self.users.contains(id),
            Kind::Department => self.departments.contains(id),
        }
    }
}

impl fmt::Display for Only {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let users = self.users.iter().map(|u| format!("user:{u}"));
        let departments = self.departments.iter().map(|d| format!("department:{d}"));
        f.write_str(&users.chain(departments).collect::<Vec<_>>().join(" "))
    }
}

/// The plan of an on-demand run from the objects read by id (`source`,
/// narrowed to them and the departments above them): planned as a whole
/// run plans, restricted to the objects named ([`restrict`]), the guard
/// judged on what is left (a source read in part is no sign of an emptied
/// directory), and the memory of unkept values changed only for them.
pub fn plan(
    source: &Snapshot,
    target: &TargetSnapshot,
    bindings: &Bindings,
    history: &History,
    policy: &Policy,
    options: RunOptions,
    only: &Only,
) -> Planned {
    let source = &Snapshot { partial: Some((only.users.clone(), only.departments.clone())), ..source.clone() };
    let Planned { plan, mut memory, held } = super::plan::stages(source, target, bindings, history, policy, options, false);
    let mut plan = restrict(plan, only, source, bindings);
    // The target may have been read only for these objects: its size is
    // at least what the mirror has bound.
    let totals = (target.users.len().max(bindings.users.len()) as u64, target.departments.len().max(bindings.departments.len()) as u64);
    super::guard::judge(&mut plan, false, totals, policy.guard, options);
    memory.not_kept.retain(|(kind, id, _)| only.names(*kind, id));
    memory.forget.retain(|(kind, id, _)| only.names(*kind, id));
    Planned { plan, memory, held }
}

/// `plan` restricted to the objects `only` names, and to the department
/// creates (and binds) that the named users' departments need, parents
/// first. A named object neither in the source nor bound is an `invalid`
/// item.
fn restrict(plan: Plan, only: &Only, source: &Snapshot, bindings: &Bindings) -> Plan {
    // The target ids bound to the objects named, looked up once (a plan
    // of the whole source may hold an operation for every object).
    let targets: BTreeSet<(Kind, &TargetId)> = [(Kind::User, &bindings.users), (Kind::Department, &bindings.departments)]
        .into_iter()
        .flat_map(|(kind, map)| map.iter().filter(move |(s, _)| only.names(kind, s)).map(move |(_, t)| (kind, t)))
        .collect();
    let bound = |kind: Kind, t: &TargetId| targets.contains(&(kind, t));
    let named = |kind: Kind, s: Option<&SourceId>, t: Option<&TargetId>| {
        s.is_some_and(|s| only.names(kind, s)) || t.is_some_and(|t| bound(kind, t))
    };
    let kept: Vec<Op> = plan.ops.iter().filter(|op| named(op.kind(), op.source_id(), op.target_id())).cloned().collect();
    let needed = needed_departments(&plan.ops, &kept);
    let ops = plan
        .ops
        .into_iter()
        .filter(|op| {
            named(op.kind(), op.source_id(), op.target_id())
                || (op.kind() == Kind::Department
                    && matches!(op, Op::CreateDepartment { .. } | Op::Bind { .. })
                    && op.source_id().is_some_and(|s| needed.contains(s)))
        })
        .collect();
    let mut items: Vec<Item> = plan.items.into_iter().filter(|i| named(i.kind, i.source_id.as_ref(), i.target_id.as_ref())).collect();
    items.extend(unknown(only, source, bindings));
    let unscheduled = plan.unscheduled.into_iter().filter(|t| bound(Kind::User, t) || bound(Kind::Department, t)).collect();
    Plan { ops, items, guard: None, unscheduled }
}

/// The departments the kept users are written into, and the parents of
/// the kept departments, that this plan creates, with the parents those
/// creates need.
fn needed_departments(all: &[Op], kept: &[Op]) -> BTreeSet<SourceId> {
    // The named users' departments, and the parents of the named departments.
    let mut needed: BTreeSet<SourceId> = kept
        .iter()
        .filter_map(|op| match op {
            Op::CreateUser { spec, .. } | Op::UpdateUser { spec, .. } => spec.departments.clone(),
            Op::CreateDepartment { spec, .. } | Op::UpdateDepartment { spec, .. } => spec.parent.clone().map(|p| vec![p]),
            _ => None,
        })
        .flatten()
        .collect();
    loop {
        let parents: Vec<SourceId> = all
            .iter()
            .filter_map(|op| match op {
                Op::CreateDepartment { source_id, spec, .. } if needed.contains(source_id) => spec.parent.clone(),
                _ => None,
            })
            .filter(|p| !needed.contains(p))
            .collect();
        if parents.is_empty() {
            return needed;
        }
        needed.extend(parents);
    }
}

/// Named objects that no binding knows and the source does not have (an
/// `invalid` item), or has out of `[scope]` (an `out_of_scope` item).
fn unknown(only: &Only, source: &Snapshot, bindings: &Bindings) -> Vec<Item> {
    let users = only.users.iter().filter(|u| !bindings.users.contains_key(*u) && !source.users.iter().any(|s| &s.source_id == *u));
    let departments = only
        .departments
        .iter()
        .filter(|d| !bindings.departments.contains_key(*d) && !source.departments.iter().any(|s| &s.source_id == *d));
    let item = |kind: Kind, id: &SourceId| {
        let (outcome, message) = if kind == Kind::User && source.out_of_scope.contains(id) {
            (Outcome::OutOfScope, format!("--only {kind}:{id}: out of [scope], and never synced"))
        } else {
            (Outcome::Invalid, format!("--only {kind}:{id}: not in the source, and never synced"))
        };
        Item { kind, op: Verb::Read, source_id: Some(id.clone()), target_id: None, outcome, message }
    };
    users.map(|u| item(Kind::User, u)).chain(departments.map(|d| item(Kind::Department, d))).collect()
}
