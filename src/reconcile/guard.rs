//! The deletion guard: per kind, the removals of one run above the kind's
//! count (`max_deletes`, `max_department_deletes`) or share of the target's
//! objects of that kind (`max_delete_percent`,
//! `max_department_delete_percent`) are held back as items (the rest of the
//! plan still applies), unless the admin lets them through once with
//! `--allow-deletes N`.
//!
//! What counts: user deletes and disables, a user the source turns
//! inactive (a broken HR export marking everyone inactive would disable
//! every account), and department deletes. Held department deletes also
//! hold the membership changes that leave those departments. An empty
//! source against a non-empty target never removes without approval.

use super::RunOptions;
use super::plan::{Field, Item, Op, Outcome, Plan};
use super::policy::Guard;
use crate::model::{Kind, Snapshot, TargetId, TargetSnapshot};
use std::collections::HashSet;

/// How a removal the guard held back is said (its item's message starts so);
/// a membership change held with a department's deletion is said otherwise.
pub const HELD_BY_GUARD: &str = "held back by the deletion guard";

/// A digest of a set of removals (kind, verb, target id), the same in any
/// order: what the admin page shows and approves, and what a run holds back.
pub fn removals_digest<'a>(removals: impl Iterator<Item = (Kind, super::Verb, Option<&'a str>)>) -> u64 {
    use sha2::{Digest, Sha256};
    let mut lines: Vec<String> = removals.map(|(k, v, t)| format!("{k} {v} {}", t.unwrap_or(""))).collect();
    lines.sort_unstable();
    let digest = Sha256::digest(lines.join("\n").as_bytes());
    u64::from_be_bytes(digest[..8].try_into().unwrap_or_default())
}

/// Whether the guard counts `op`, and as which kind.
pub(super) fn counted(op: &Op) -> Option<Kind> {
    match op {
        Op::DisableUser { .. } | Op::DeleteUser { .. } => Some(Kind::User),
        Op::UpdateUser { .. } if deactivates(op) => Some(Kind::User),
        Op::DeleteDepartment { .. } if op.is_destructive() => Some(Kind::Department),
        _ => None,
    }
}

/// A user update that turns an active account inactive.
fn deactivates(op: &Op) -> bool {
    matches!(op, Op::UpdateUser { changes, .. } if changes.iter().any(|c| c.field == Field::Active && c.to.as_deref() == Some("false")))
}

/// Why the removals of one kind trip the guard (none: they do not).
fn reasons(kind: Kind, wanted: u64, total: u64, empty_source: bool, guard: Guard) -> Vec<String> {
    let (max, pct, (count_key, pct_key), what) = match kind {
        Kind::User => (guard.max_deletes, guard.max_delete_percent, ("max_deletes", "max_delete_percent"), "user removals"),
        Kind::Department => (
            guard.max_department_deletes,
            guard.max_department_delete_percent,
            ("max_department_deletes", "max_department_delete_percent"),
            "department deletes",
        ),
    };
    let mut reasons = Vec::new();
    if wanted == 0 {
        return reasons;
    }
    if empty_source {
        reasons.push("the source returned no users and no departments".to_owned());
    }
    if wanted > max {
        reasons.push(format!("{wanted} {what} exceed policy.guard.{count_key} = {max}"));
    }
    if wanted * 100 > pct * total {
        reasons.push(format!("{wanted} {what} are more than policy.guard.{pct_key} = {pct}% of {total} in the target"));
    }
    reasons
}

pub(super) fn apply(plan: &mut Plan, source: &Snapshot, target: &TargetSnapshot, guard: Guard, options: RunOptions) {
    let totals = (target.users.len() as u64, target.departments.len() as u64);
    judge(plan, source.users.is_empty() && source.departments.is_empty(), totals, guard, options);
}

/// [`apply`], told whether the source came back empty (a source read in
/// part, by id, never counts as emptied) and how many users and
/// departments the target holds (for the shares).
pub(super) fn judge(plan: &mut Plan, empty_source: bool, totals: (u64, u64), guard: Guard, options: RunOptions) {
    let count = |kind| plan.ops.iter().filter(|o| counted(o) == Some(kind)).count() as u64;
    let (users, departments) = (count(Kind::User), count(Kind::Department));
    // Removals of on-demand runs since the last full run count too (none in a full run).
    let mut why = reasons(Kind::User, users + options.prior_removals, totals.0, empty_source, guard);
    let department_reasons = reasons(Kind::Department, departments, totals.1, empty_source, guard);
    let tripped: Vec<Kind> = [(Kind::User, !why.is_empty()), (Kind::Department, !department_reasons.is_empty())]
        .into_iter()
        .filter_map(|(k, t)| t.then_some(k))
        .collect();
    for r in department_reasons {
        if !why.contains(&r) {
            why.push(r);
        }
    }
    let wanted: u64 = tripped.iter().map(|k| if *k == Kind::User { users } else { departments }).sum();
    if tripped.is_empty() || options.allow_deletes >= wanted {
        return;
    }
    let mut changed = false;
    if let Some(approved) = options.approved {
        let removals = plan.ops.iter().filter(|o| counted(o).is_some_and(|k| tripped.contains(&k)));
        if removals_digest(removals.map(|o| (o.kind(), o.verb(), o.target_id().map(TargetId::as_str)))) == approved {
            return;
        }
        changed = true;
    }
    let mut allowed = options.allow_deletes;
    let mut held = 0u64;
    let mut held_departments: HashSet<TargetId> = HashSet::new();
    let mut kept = Vec::with_capacity(plan.ops.len());
    for op in std::mem::take(&mut plan.ops) {
        match counted(&op) {
            Some(kind) if tripped.contains(&kind) && allowed == 0 => {
                held += 1;
                if let (Op::DeleteDepartment { target_id, .. }, Kind::Department) = (&op, kind) {
                    held_departments.insert(target_id.clone());
                }
                plan.items.push(held_item(&op, HELD_BY_GUARD));
                // A deactivation holds back only the `active` change; the rest of the update goes through.
                if let Some(rest) = without(op, Field::Active) {
                    kept.push(rest);
                }
            }
            Some(kind) if tripped.contains(&kind) => {
                allowed -= 1;
                kept.push(op);
            }
            _ => kept.push(op),
        }
    }
    plan.ops = hold_memberships(kept, &held_departments, &mut plan.items);
    let changed = if changed { " (the removals approved on the admin page are not these: look at them again)" } else { "" };
    plan.guard = Some(format!(
        "deletion guard held back {held} of {wanted} removals{changed}: {}; run `orgsync sync --allow-deletes {wanted}` to approve them once",
        why.join("; ")
    ));
}

/// A user update without its change of `field` (none when nothing else is
/// left of it, or `op` is not an update).
fn without(op: Op, field: Field) -> Option<Op> {
    match op {
        Op::UpdateUser { source_id, target_id, mut spec, old_departments, mut changes } => {
            if let Some(c) = changes.iter().find(|c| c.field == field) {
                match field {
                    Field::Active => spec.active = c.from.as_deref() != Some("false"),
                    Field::Departments => spec.departments = None,
                    _ => {}
                }
            }
            changes.retain(|c| c.field != field);
            (!changes.is_empty()).then_some(Op::UpdateUser { source_id, target_id, spec, old_departments, changes })
        }
        _ => None,
    }
}

/// Users leaving a department whose delete is held keep that membership
/// until the delete is approved: their membership change is held too.
fn hold_memberships(ops: Vec<Op>, held: &HashSet<TargetId>, items: &mut Vec<Item>) -> Vec<Op> {
    if held.is_empty() {
        return ops;
    }
    let mut kept = Vec::with_capacity(ops.len());
    for op in ops {
        let leaves = matches!(&op, Op::UpdateUser { changes, old_departments, .. }
            if changes.iter().any(|c| c.field == Field::Departments) && old_departments.iter().any(|d| held.contains(d)));
        if !leaves {
            kept.push(op);
            continue;
        }
        items.push(held_item(&op, "membership change held back with the deletion of its department"));
        kept.extend(without(op, Field::Departments));
    }
    kept
}

/// An operation not done but held back, and why.
pub(super) fn held_item(op: &Op, why: &str) -> Item {
    Item {
        kind: op.kind(),
        op: op.verb(),
        source_id: op.source_id().cloned(),
        target_id: op.target_id().cloned(),
        outcome: Outcome::HeldBack,
        message: format!("{why}: {}", op.detail()),
    }
}
