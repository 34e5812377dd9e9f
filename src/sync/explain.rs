//! `orgsync explain user|department <key>`: one object, step by step:
//! the source's record (read by id where the vendor can), the mapped
//! record, the scope's decision, the binding and the match keys tried, what
//! the next run would do to it and why, the difference with the target
//! now, what the mirror remembers of it, and its last runs' items. It plans
//! as an on-demand run of that object does (`sync --only`), so its
//! difference is what that run writes. Writes nothing.

use super::{SyncError, TargetSide, against, settle};
use crate::mirror::{ItemRecord, RunId};
use crate::model::{Kind, Snapshot, SourceId, TargetId, TargetSnapshot};
use crate::reconcile::only::Only;
use crate::reconcile::{self, Change, Item, MatchKey, Op, RunOptions};
use crate::settings::Config;
use crate::sources::{self, IdentitySource, Objects};
use crate::targets::Wanted;
use serde::Serialize;

/// Why there is nothing to explain.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error("no {kind} {query:?} in the source or the mirror (tried the source id{names}); nothing to explain")]
    Unknown { kind: Kind, query: String, names: &'static str },
}

impl From<sources::SourceError> for ExplainError {
    fn from(e: sources::SourceError) -> Self {
        ExplainError::Sync(SyncError::Source(e))
    }
}

/// The answer, in the order a person asks.
#[derive(Debug, Serialize)]
pub struct Explanation {
    pub kind: Kind,
    pub query: String,
    pub source_id: SourceId,
    /// How `query` led to the source id.
    pub found_by: String,
    pub source: SourceRecord,
    pub scope: ScopeDecision,
    pub binding: Option<Binding>,
    /// Users: each `policy.users.match_by` key, its value and the target
    /// objects that have it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub match_keys: Vec<KeyTried>,
    /// The target's object now (bound, or the one the plan binds).
    pub target: Option<serde_json::Value>,
    /// What an on-demand run of it does (its operations, and those of the
    /// departments it needs created first), and what it reports instead of
    /// doing (held back, not kept, invalid...).
    pub operations: Vec<Op>,
    pub items: Vec<Item>,
    /// The decision in words.
    pub decision: String,
    /// Field by field, old -> new.
    pub changes: Vec<Change>,
    /// Values the mirror remembers the target did not keep or refused.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub memory: Vec<Remembered>,
    /// Failures in a row, backoff and quarantine.
    pub failing: Option<Failing>,
    /// Its last runs' items, newest first.
    pub history: Vec<HistoryItem>,
}

#[derive(Debug, Serialize)]
pub struct SourceRecord {
    /// `id`: the vendor's one-object calls; `whole source`: the source was
    /// read whole (the file source, or the query was not an id).
    pub read: &'static str,
    /// Requests sent to the vendor, where it counts them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    /// The vendor's own fields, as sent (none: the source does not have it).
    pub raw: Option<serde_json::Value>,
    /// The record orgsync maps it to.
    pub mapped: Option<serde_json::Value>,
    /// Mapped fields the source withheld (kept as the target has them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_sent: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct ScopeDecision {
    pub in_scope: bool,
    pub rule: String,
}

#[derive(Debug, Serialize)]
pub struct Binding {
    pub target_id: TargetId,
    /// When the binding was last set.
    pub since: String,
    /// How: the item of the run that bound it, when still kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub how: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct KeyTried {
    pub key: MatchKey,
    pub value: Option<String>,
    pub target_ids: Vec<TargetId>,
}

#[derive(Debug, Serialize)]
pub struct Remembered {
    pub field: String,
    pub state: &'static str,
    pub run: i64,
}

#[derive(Debug, Serialize)]
pub struct Failing {
    pub failures: u32,
    pub error: String,
    pub next_at: String,
    pub quarantined: bool,
}

#[derive(Debug, Serialize)]
pub struct HistoryItem {
    pub run: RunId,
    pub trigger: String,
    #[serde(flatten)]
    pub item: ItemRecord,
}

/// How many of the object's last items are shown.
const HISTORY: usize = 20;

pub async fn explain(config: &Config, kind: Kind, query: &str) -> Result<Explanation, ExplainError> {
    let mut side = TargetSide::open(config)?;
    let source = sources::build(&config.source, &config.scope, &config.mapping);
    let (source_id, found_by, objects, read) = resolve(&mut side, source.as_ref(), kind, query).await?;
    let only = match kind {
        Kind::User => Only { users: [source_id.clone()].into(), ..Only::default() },
        Kind::Department => Only { departments: [source_id.clone()].into(), ..Only::default() },
    };
    let raw = objects.raw.get(&(kind, source_id.clone())).cloned();
    let mapped = mapped(&objects.snapshot, kind, &source_id);
    let scope = if mapped.is_some() {
        let (in_scope, rule) = config.scope.decide(kind, &source_id, &objects.snapshot);
        ScopeDecision { in_scope, rule }
    } else {
        ScopeDecision { in_scope: false, rule: "not in the source".into() }
    };
    let mut snapshot = objects.snapshot.clone();
    settle(source.as_ref(), &mut snapshot, &config.policy, &config.scope, true);
    // The target, for this object only where it can (its account, the
    // accounts its keys find, the departments).
    let wanted = Wanted::of(&only, &snapshot, &side.bindings, &config.policy.users.match_by);
    side.current = side.target.load_for(&wanted).await.map_err(SyncError::Target)?;
    let not_sent: Vec<&'static str> = match snapshot.users.iter().find(|u| kind == Kind::User && u.source_id == source_id) {
        Some(u) => sources::STRING_FIELDS.iter().filter(|f| u.is_absent(**f)).map(|f| f.as_str()).collect(),
        None => Vec::new(),
    };
    let mut options = against(side.target.as_ref(), RunOptions::default(), chrono::Utc::now());
    if let Some(m) = &side.mirror {
        options.prior_removals = m.removals_since_full_run().map_err(SyncError::Mirror)?;
    }
    let inputs = super::OnDemand {
        snapshot: &snapshot,
        bindings: &side.bindings,
        history: &side.history,
        policy: &config.policy,
        options,
        only: &only,
    };
    let planned = super::on_demand_plan(side.target.as_ref(), &mut side.current, &inputs).await.map_err(SyncError::Target)?;
    let bound = match kind {
        Kind::User => side.bindings.users.get(&source_id),
        Kind::Department => side.bindings.departments.get(&source_id),
    }
    .cloned();
    let plan = planned.plan;
    let own: Vec<Op> = plan.ops.iter().filter(|o| o.kind() == kind && is_it(o, &source_id, bound.as_ref())).cloned().collect();
    let target_id = bound.clone().or_else(|| own.iter().find_map(|o| o.target_id().cloned()));
    let (binding, history) = past(side.mirror.as_ref(), kind, &source_id, target_id.as_ref())?;
    let user = snapshot.users.iter().find(|u| u.source_id == source_id);
    let match_keys = match (kind, user) {
        (Kind::User, Some(u)) => config.policy.users.match_by.iter().map(|k| tried(*k, u, &side.current)).collect(),
        _ => Vec::new(),
    };
    let items: Vec<Item> = plan
        .items
        .iter()
        .filter(|i| i.kind == kind && (i.source_id.as_ref() == Some(&source_id) || (i.target_id.is_some() && i.target_id == target_id)))
        .cloned()
        .collect();
    let changes = changes(&own);
    let decision = decision(&plan.ops, &items, &scope, bound.is_some());
    let (memory, failing) = remembered(&side.history, kind, &source_id);
    Ok(Explanation {
        kind,
        query: query.to_owned(),
        source_id,
        found_by,
        source: SourceRecord { read, requests: objects.requests, raw, mapped, not_sent },
        scope,
        binding,
        match_keys,
        target: target_id.as_ref().and_then(|t| target_record(&side.current, kind, t)),
        operations: plan.ops.clone(),
        items,
        decision,
        changes,
        memory,
        failing,
        history,
    })
}

/// The binding the mirror keeps (with how it was made: the item that
/// created or bound it), and the object's last items.
fn past(
    mirror: Option<&crate::mirror::Mirror>,
    kind: Kind,
    source_id: &SourceId,
    target_id: Option<&TargetId>,
) -> Result<(Option<Binding>, Vec<HistoryItem>), SyncError> {
    let Some(m) = mirror else { return Ok((None, Vec::new())) };
    let history: Vec<HistoryItem> = m
        .object_items(kind, Some(source_id), target_id, HISTORY)?
        .into_iter()
        .map(|(run, trigger, item)| HistoryItem { run, trigger, item })
        .collect();
    let binding = m.binding(kind, source_id)?.map(|(target_id, since)| {
        let how = history
            .iter()
            .find(|h| matches!(h.item.op, reconcile::Verb::Bind | reconcile::Verb::Create) && h.item.outcome == reconcile::Outcome::Ok)
            .map(|h| {
                format!(
                    "{} in run {} ({}){}",
                    h.item.op,
                    h.run,
                    h.trigger,
                    h.item.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
                )
            });
        Binding { target_id, since, how }
    });
    Ok((binding, history))
}

/// What the mirror remembers of the object: values not kept or refused,
/// and its failures.
fn remembered(history: &reconcile::History, kind: Kind, source_id: &SourceId) -> (Vec<Remembered>, Option<Failing>) {
    let memory = history
        .unkept
        .iter()
        .filter(|((k, s, _), r)| *k == kind && s == source_id && r.state != reconcile::unkept::Sent::Sent)
        .map(|((_, _, f), r)| Remembered { field: f.to_string(), state: r.state.as_str(), run: r.run })
        .collect();
    let failing = history.failures.get(&(kind, source_id.to_string())).map(|f| Failing {
        failures: f.count,
        error: f.error.clone(),
        next_at: f.next_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        quarantined: f.quarantined,
    });
    (memory, failing)
}

/// The source id `query` names, how it was found, and the objects read
/// for it: a source id first (bound, or read by id), then the target's
/// username, email or name of a bound object, then the whole source.
async fn resolve(
    side: &mut TargetSide,
    source: &dyn IdentitySource,
    kind: Kind,
    query: &str,
) -> Result<(SourceId, String, Objects, &'static str), ExplainError> {
    let by_id = |id: SourceId| match kind {
        Kind::User => Only { users: [id].into(), ..Only::default() },
        Kind::Department => Only { departments: [id].into(), ..Only::default() },
    };
    let id = SourceId::from(query);
    let bound = match kind {
        Kind::User => side.bindings.users.contains_key(&id),
        Kind::Department => side.bindings.departments.contains_key(&id),
    };
    // Not a bound id: the target's accounts with that username or email
    // (every department is read anyway).
    if !bound {
        let keys =
            if kind == Kind::User { vec![(MatchKey::Username, query.to_owned()), (MatchKey::Email, query.to_owned())] } else { Vec::new() };
        side.current = side.target.load_for(&Wanted { keys, ..Wanted::default() }).await.map_err(SyncError::Target)?;
    }
    let bindings = match kind {
        Kind::User => &side.bindings.users,
        Kind::Department => &side.bindings.departments,
    };
    let bound_by_name =
        target_named(&side.current, kind, query).and_then(|t| bindings.iter().find(|(_, bt)| **bt == t).map(|(s, _)| s.clone()));
    let (id, found_by) = match bound_by_name {
        Some(s) if !bindings.contains_key(&id) => {
            (s, format!("the target's {} of a bound {kind}", if kind == Kind::User { "username or email" } else { "name" }))
        }
        _ => (id, "its source id".to_owned()),
    };
    // A vendor answers an id it does not know with an error: then the
    // query may be a name (unless the id is bound: that error is the answer).
    match source.fetch_objects(&by_id(id.clone())).await {
        Ok(objects) if has(&objects.snapshot, kind, &id) || bindings.contains_key(&id) => {
            let read = if objects.by_id { "id" } else { "whole source" };
            return Ok((id, found_by, objects, read));
        }
        Err(e) if bindings.contains_key(&id) => return Err(e.into()),
        Err(e) => tracing::debug!(error = %e, "{kind} {id:?} is not a source id the source knows; trying names"),
        Ok(_) => {}
    }
    // A name the target does not show for a bound object: the source, whole.
    let whole = source.fetch().await?;
    let found = match kind {
        Kind::User => whole
            .users
            .iter()
            .find(|u| [&u.username, &u.email].iter().any(|v| v.as_deref().is_some_and(|v| v.eq_ignore_ascii_case(query))))
            .map(|u| u.source_id.clone()),
        Kind::Department => whole.departments.iter().find(|d| d.name == query).map(|d| d.source_id.clone()),
    };
    let names = if kind == Kind::User { ", username and email" } else { " and name" };
    let Some(id) = found else {
        return Err(ExplainError::Unknown { kind, query: query.to_owned(), names });
    };
    let snapshot = sources::narrow(whole, &by_id(id.clone()));
    let found_by =
        format!("the source's {} (the source was read whole to find it)", if kind == Kind::User { "username or email" } else { "name" });
    Ok((id, found_by, Objects { snapshot, ..Objects::default() }, "whole source"))
}

fn has(s: &Snapshot, kind: Kind, id: &SourceId) -> bool {
    match kind {
        Kind::User => s.users.iter().any(|u| &u.source_id == id),
        Kind::Department => s.departments.iter().any(|d| &d.source_id == id),
    }
}

/// The target object whose username or email (a user) or name (a
/// department) is `query`, when exactly one has it.
fn target_named(t: &TargetSnapshot, kind: Kind, query: &str) -> Option<TargetId> {
    let ids: Vec<&TargetId> = match kind {
        Kind::User => t
            .users
            .iter()
            .filter(|u| [&u.username, &u.email].iter().any(|v| v.as_deref().is_some_and(|v| v.eq_ignore_ascii_case(query))))
            .map(|u| &u.id)
            .collect(),
        Kind::Department => t.departments.iter().filter(|d| d.name == query).map(|d| &d.id).collect(),
    };
    match ids.as_slice() {
        [one] => Some((*one).clone()),
        _ => None,
    }
}

/// The record the source's is mapped to.
fn mapped(s: &Snapshot, kind: Kind, id: &SourceId) -> Option<serde_json::Value> {
    match kind {
        Kind::User => s.users.iter().find(|u| &u.source_id == id).and_then(|u| serde_json::to_value(u).ok()),
        Kind::Department => s.departments.iter().find(|d| &d.source_id == id).and_then(|d| serde_json::to_value(d).ok()),
    }
}

/// Whether `op` acts on the object (by its source id or bound target id).
fn is_it(op: &Op, source_id: &SourceId, bound: Option<&TargetId>) -> bool {
    op.source_id() == Some(source_id) || (bound.is_some() && op.target_id() == bound)
}

fn tried(key: MatchKey, u: &crate::model::User, t: &TargetSnapshot) -> KeyTried {
    let value = crate::model::non_empty(reconcile::user_key(u, key)).map(str::to_owned);
    let wanted = reconcile::normalized_key(key, reconcile::user_key(u, key));
    let target_ids = match &wanted {
        Some(w) => t
            .users
            .iter()
            .filter(|x| reconcile::normalized_key(key, reconcile::target_user_key(x, key)).as_ref() == Some(w))
            .map(|x| x.id.clone())
            .collect(),
        None => Vec::new(),
    };
    KeyTried { key, value, target_ids }
}

/// The changes the operations make, field by field: an update's own, all
/// of a create's values.
fn changes(ops: &[Op]) -> Vec<Change> {
    let mut out = Vec::new();
    for op in ops {
        match op {
            Op::UpdateUser { changes, .. } | Op::UpdateDepartment { changes, .. } => out.extend(changes.iter().cloned()),
            Op::SetManager { .. } | Op::SetLeaders { .. } => out.extend(op.changes()),
            Op::CreateUser { spec, .. } => out.extend(created(spec)),
            Op::CreateDepartment { spec, .. } => {
                out.push(Change { field: reconcile::Field::Name, from: None, to: Some(spec.name.clone()) })
            }
            _ => {}
        }
    }
    out
}

/// The values a user create sets.
fn created(spec: &reconcile::UserSpec) -> Vec<Change> {
    use reconcile::Field as F;
    let departments = spec.departments.as_ref().map(|d| d.iter().map(SourceId::as_str).collect::<Vec<_>>().join(", "));
    [
        (F::ExternalId, Some(spec.external_id.clone())),
        (F::Username, spec.username.clone()),
        (F::Name, spec.name.clone()),
        (F::Email, spec.email.clone()),
        (F::Mobile, spec.mobile.clone()),
        (F::EmployeeNo, spec.employee_no.clone()),
        (F::Nickname, spec.nickname.clone()),
        (F::Title, spec.title.clone()),
        (F::Department, spec.department.clone()),
        (F::Departments, departments),
        (F::Active, Some(spec.active.to_string())),
        (F::Manager, spec.manager.as_ref().map(SourceId::to_string)),
        (F::Attributes, reconcile::attributes_text(&spec.attributes)),
    ]
    .into_iter()
    .filter(|(_, to)| to.is_some())
    .map(|(field, to)| Change { field, from: None, to })
    .collect()
}

/// The plan's decision for the object, in words.
fn decision(ops: &[Op], items: &[Item], scope: &ScopeDecision, bound: bool) -> String {
    let mut said: Vec<String> = ops.iter().map(describe).collect();
    said.extend(items.iter().map(|i| format!("{} {}: {}", i.op, i.outcome, i.message)));
    if said.is_empty() {
        return match (scope.in_scope, bound) {
            (true, true) => "nothing to do: the target agrees with the source".into(),
            (true, false) => "nothing to do: not bound, and the policy creates nothing (policy.*.source_only)".into(),
            (false, _) => format!("nothing to do: out of scope ({}) and nothing of it in the target to remove", scope.rule),
        };
    }
    said.join("; ")
}

fn describe(op: &Op) -> String {
    let what = match op {
        Op::Bind { target_id, reason, .. } => format!("bind to {target_id}: {reason}"),
        Op::Unbind { target_id, reason, .. } => format!("unbind from {target_id}: {reason}"),
        Op::CreateDepartment { .. } | Op::CreateUser { .. } => "create (policy source_only = create)".into(),
        Op::UpdateUser { changes, .. } | Op::UpdateDepartment { changes, .. } => {
            format!("update {}", changes.iter().map(|c| c.field.to_string()).collect::<Vec<_>>().join(", "))
        }
        Op::SetManager { .. } => "set the manager once it exists (after the run's creates)".into(),
        Op::SetLeaders { .. } => "set the leaders once they exist (after the run's creates)".into(),
        Op::Schedule { reason, .. } => format!("start the grace period: {reason}"),
        Op::DisableUser { reason, .. } => format!("disable: {reason}"),
        Op::DeleteUser { reason, .. } | Op::DeleteDepartment { reason, .. } => format!("delete: {reason}"),
    };
    let id = op.source_id().map(ToString::to_string).or_else(|| op.target_id().map(ToString::to_string)).unwrap_or_default();
    format!("{} {id} {what}", op.kind())
}

fn target_record(t: &TargetSnapshot, kind: Kind, id: &TargetId) -> Option<serde_json::Value> {
    match kind {
        Kind::User => t.users.iter().find(|u| &u.id == id).and_then(|u| serde_json::to_value(u).ok()),
        Kind::Department => t.departments.iter().find(|d| &d.id == id).and_then(|d| serde_json::to_value(d).ok()),
    }
}
