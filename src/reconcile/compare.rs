//! Two plans of the same source and target side by side (`orgsync plan`):
//! what one config would write that the other would not, object by
//! object, and which part of the config explains it.

use super::plan::{Outcome, Plan, Verb};
use crate::model::Kind;
use serde::Serialize;
use std::collections::BTreeMap;

/// Which parts of the config differ between the two plans.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Changed {
    /// `[scope]` (or the source itself): which objects are synced.
    pub scope: bool,
    /// `policy.users.fields` and `[mapping]`: which fields are synced, and their values.
    pub mapping: bool,
    /// The rest of `[policy]`: what is done with what differs.
    pub policy: bool,
}

/// The part of the config a difference comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Scope,
    Mapping,
    Policy,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Scope => "scope",
            Reason::Mapping => "mapping",
            Reason::Policy => "policy",
        }
    }
}

/// One object written differently under the two configs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub kind: Kind,
    /// Its source id, else its target id.
    pub id: String,
    /// What the current config's plan does with it (`None`: nothing).
    pub current: Option<Verb>,
    /// What the proposed config's plan does with it.
    pub proposed: Option<Verb>,
    /// The proposed write's detail (or the current one's, when the proposed does nothing).
    pub detail: String,
    pub reason: Reason,
}

/// The writes of a plan by object: (kind, id) -> (verb, the fields changed,
/// detail). A removal the deletion guard holds back counts, said so in its
/// detail: the plan would make it, once approved.
fn writes(plan: &Plan) -> BTreeMap<(Kind, String), (Verb, Vec<String>, String)> {
    let id = |s: Option<&crate::model::SourceId>, t: Option<&crate::model::TargetId>| {
        s.map(|s| s.to_string()).or_else(|| t.map(|t| t.to_string()))
    };
    let ops = plan.ops.iter().filter(|op| !op.mirror_only()).filter_map(|op| {
        let fields = op.changes().iter().map(|c| c.field.to_string()).collect();
        Some(((op.kind(), id(op.source_id(), op.target_id())?), (op.verb(), fields, op.detail())))
    });
    let held = plan.items.iter().filter(|i| i.outcome == Outcome::HeldBack).filter_map(|i| {
        let detail = "held back by the deletion guard".to_owned();
        Some(((i.kind, id(i.source_id.as_ref(), i.target_id.as_ref())?), (i.op, Vec::new(), detail)))
    });
    // An operation of the same object (what the guard let through) wins.
    held.chain(ops).collect()
}

/// The objects the two plans write differently: one writes and the other
/// does not, or both write but not the same (another verb, other fields).
/// Each is put down to the part of the config that explains it: an object
/// one plan has and the other has not comes from the scope when the scope
/// changed; an update of other fields from the mapping when it changed;
/// the rest from the policy.
pub fn compare(current: &Plan, proposed: &Plan, changed: Changed) -> Vec<Difference> {
    let (now, next) = (writes(current), writes(proposed));
    let keys: std::collections::BTreeSet<&(Kind, String)> = now.keys().chain(next.keys()).collect();
    let mut out = Vec::new();
    for key in keys {
        let (a, b) = (now.get(key), next.get(key));
        if let (Some(a), Some(b)) = (a, b)
            && a.0 == b.0
            && a.1 == b.1
        {
            continue;
        }
        let updates = [a, b].iter().flatten().all(|w| w.0 == Verb::Update);
        let one_side = a.is_none() || b.is_none();
        let reason = if updates && changed.mapping {
            Reason::Mapping
        } else if one_side && changed.scope && !updates {
            Reason::Scope
        } else if changed.policy || !(changed.scope || changed.mapping) {
            Reason::Policy
        } else if changed.scope {
            Reason::Scope
        } else {
            Reason::Mapping
        };
        let detail = b.or(a).map(|w| w.2.clone()).unwrap_or_default();
        out.push(Difference { kind: key.0, id: key.1.clone(), current: a.map(|w| w.0), proposed: b.map(|w| w.0), detail, reason });
    }
    out
}
