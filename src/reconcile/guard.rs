//! The deletion guard: deletes + disables of one run above
//! `policy.guard.max_deletes` or `max_delete_percent` of the target are held
//! back as items (the rest of the plan still applies), unless the admin lets
//! them through once with `--allow-deletes N`. An empty source against a
//! non-empty target never deletes without that approval.

use super::RunOptions;
use super::plan::{Item, ItemOutcome, Op, Plan};
use super::policy::Guard;
use crate::model::{Snapshot, TargetSnapshot};

pub(super) fn apply(plan: &mut Plan, source: &Snapshot, target: &TargetSnapshot, guard: Guard, options: RunOptions) {
    let wanted = plan.ops.iter().filter(|o| o.is_destructive()).count() as u64;
    if wanted == 0 {
        return;
    }
    let total = (target.users.len() + target.departments.len()) as u64;
    let mut reasons = Vec::new();
    if source.users.is_empty() && source.departments.is_empty() {
        reasons.push("the source returned no users and no departments".to_owned());
    }
    if wanted > guard.max_deletes {
        reasons.push(format!("{wanted} deletes/disables exceed policy.guard.max_deletes = {}", guard.max_deletes));
    }
    if wanted * 100 > guard.max_delete_percent * total {
        reasons.push(format!(
            "{wanted} deletes/disables are more than policy.guard.max_delete_percent = {}% of {total} target objects",
            guard.max_delete_percent
        ));
    }
    if reasons.is_empty() || options.allow_deletes >= wanted {
        return;
    }
    let mut allowed = options.allow_deletes;
    let mut held = 0u64;
    let ops = std::mem::take(&mut plan.ops);
    for op in ops {
        if !op.is_destructive() {
            plan.ops.push(op);
        } else if allowed > 0 {
            allowed -= 1;
            plan.ops.push(op);
        } else {
            held += 1;
            plan.items.push(held_item(&op, "held back by the deletion guard"));
        }
    }
    plan.guard = Some(format!(
        "deletion guard held back {held} of {wanted} deletes/disables: {}; run `orgsync sync --allow-deletes {wanted}` to approve them once",
        reasons.join("; ")
    ));
}

/// An operation not done but held back, and why.
pub(super) fn held_item(op: &Op, why: &str) -> Item {
    Item {
        kind: op.kind(),
        op: op.verb(),
        source_id: op.source_id().cloned(),
        target_id: op.target_id().cloned(),
        outcome: ItemOutcome::HeldBack,
        message: format!("{why}: {}", op.detail()),
    }
}
