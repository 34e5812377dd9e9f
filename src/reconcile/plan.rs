//! Matching, diffing and ordering.
//!
//! Order of operations in a plan (apply runs them phase by phase):
//! 1. unbind stale bindings, bind matched pairs (mirror only);
//! 2. create departments, shallowest first (parents before children);
//! 3. update departments (renames, moves: a parent change is an update);
//! 4. create and update users (their departments exist by now);
//! 5. disable / delete users;
//! 6. delete departments, deepest first (children before parents).

use super::departments::plan_departments;
use super::guard;
use super::policy::Policy;
use super::users::plan_users;
use super::{DepartmentShape, RunOptions};
use crate::model::{Bindings, Kind, Snapshot, SourceId, TargetId, TargetSnapshot};
use serde::Serialize;
use std::borrow::Cow;

/// The desired target-side form of a department. `parent` is a source id,
/// resolved through the bindings when the operation is applied (the parent
/// may be created earlier in the same run).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeptSpec {
    pub external_id: String,
    pub name: String,
    pub parent: Option<SourceId>,
    /// The leaders, by source id (`Op::SetLeaders`): resolved to their
    /// accounts when applied.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub leaders: Vec<SourceId>,
    /// Each leader's account where the plan knows it (none: created in
    /// this run, resolved when applied).
    #[serde(skip)]
    pub leader_accounts: Vec<Option<TargetId>>,
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
    /// The manager, by source id: resolved to its target id when the
    /// operation is applied (it may be created earlier in the same run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manager: Option<SourceId>,
    /// The extra attributes to write (`[mapping.attributes]`), by the
    /// target's name for them; `None` clears one.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub attributes: std::collections::BTreeMap<String, Option<String>>,
    /// An update's account's manager now (its target id): what a target
    /// that writes the whole user (a REST PUT) writes back when the
    /// manager does not change.
    #[serde(skip)]
    pub holds_manager: Option<TargetId>,
    /// `manager`'s account, where the plan knows it (a protected account
    /// matched by its keys is never bound): the apply resolves only the
    /// others (created in the same run).
    #[serde(skip)]
    pub manager_account: Option<TargetId>,
    /// An update's account's extra attributes now: what a target that
    /// writes the whole user writes back for those `attributes` leaves out.
    #[serde(skip)]
    pub holds_attributes: std::collections::BTreeMap<String, String>,
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
    /// A user's manager.
    Manager,
    /// A user's extra attributes (`[mapping.attributes]`), written together.
    Attributes,
    /// A department's leaders (LDAP `owner`).
    Leaders,
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
        Field::Manager,
        Field::Attributes,
    ];

    /// Every field.
    pub const ALL: &'static [Field] = &[
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
        Field::Parent,
        Field::Manager,
        Field::Attributes,
        Field::Leaders,
    ];

    pub fn parse(s: &str) -> Option<Field> {
        Field::ALL.iter().copied().find(|f| f.as_str() == s)
    }

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
            Field::Manager => "manager",
            Field::Attributes => "attributes",
            Field::Leaders => "leaders",
        }
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of fields (a bit per field).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FieldSet(u32);

impl FieldSet {
    fn bit(f: Field) -> u32 {
        1 << Field::ALL.iter().position(|x| *x == f).unwrap_or(31)
    }

    #[must_use]
    pub fn with(self, f: Field) -> Self {
        FieldSet(self.0 | Self::bit(f))
    }

    pub fn contains(self, f: Field) -> bool {
        self.0 & Self::bit(f) != 0
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
        /// Most are one of a few fixed texts (a re-bind is 100,000 of them).
        reason: std::borrow::Cow<'static, str>,
    },
    Unbind {
        kind: Kind,
        source_id: SourceId,
        target_id: TargetId,
        reason: String,
    },
    CreateDepartment {
        source_id: SourceId,
        /// Boxed, as a user's: an `Op` is as large as its largest variant.
        spec: Box<DeptSpec>,
        depth: usize,
    },
    /// Start a grace period for a target-only object (the mirror keeps when): it is deleted when still gone after it.
    Schedule {
        kind: Kind,
        target_id: TargetId,
        reason: String,
    },
    UpdateDepartment {
        source_id: SourceId,
        target_id: TargetId,
        spec: Box<DeptSpec>,
        old_parent: Option<TargetId>,
        changes: Vec<Change>,
    },
    CreateUser {
        source_id: SourceId,
        /// Boxed: an `Op` is as large as its largest variant, and most
        /// plans are binds.
        spec: Box<UserSpec>,
        /// Said in the run item, e.g. that the user was created without a match key.
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    UpdateUser {
        source_id: SourceId,
        target_id: TargetId,
        spec: Box<UserSpec>,
        old_departments: Vec<TargetId>,
        changes: Vec<Change>,
    },
    /// Set a user's manager once both exist: after the run's creates, so a
    /// manager created in the same run is referenced in it. `target_id` is
    /// none for a user this run creates (resolved when applied).
    SetManager {
        source_id: SourceId,
        target_id: Option<TargetId>,
        /// The whole user as the create or update wrote it, `manager` set.
        spec: Box<UserSpec>,
        /// The manager the target holds now.
        from: Option<TargetId>,
    },
    /// Set a department's leaders once their accounts exist: after the
    /// run's user creates and department updates. `target_id` is none for a
    /// department this run creates.
    SetLeaders {
        source_id: SourceId,
        target_id: Option<TargetId>,
        /// The department as the run writes it, `leaders` set.
        spec: Box<DeptSpec>,
        /// The leaders the target holds now, as the run log shows them.
        from: Option<String>,
    },
    DisableUser {
        target_id: TargetId,
        username: Option<String>,
        source_id: Option<SourceId>,
        reason: String,
        /// Starts a grace period (`disable_then_delete`): the mirror keeps when.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        grace: bool,
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

/// Extra attributes as a change shows them: `name=value, name=∅`.
pub fn attributes_text(a: &std::collections::BTreeMap<String, Option<String>>) -> Option<String> {
    (!a.is_empty()).then(|| a.iter().map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("∅"))).collect::<Vec<_>>().join(", "))
}

/// How a removal's reason begins, one per kind of reason (see [`removal_label`]).
pub const LEFT_SOURCE: &str = "left the source";
pub const LEFT_SCOPE: &str = "left the scope";
pub const NOT_IN_SOURCE: &str = "in no source";
pub const GRACE_OVER: &str = "grace period over";

/// A bounded label for why a user or department is disabled or deleted
/// (the `reason` of `orgsync_removals_total`).
pub fn removal_label(reason: &str) -> &'static str {
    [
        (LEFT_SOURCE, "left_source"),
        (LEFT_SCOPE, "left_scope"),
        (NOT_IN_SOURCE, "not_in_source"),
        (GRACE_OVER, "grace_over"),
        ("no in-scope source department", "not_in_source"),
        ("an empty duplicate", "duplicate"),
    ]
    .iter()
    .find(|(p, _)| reason.starts_with(p))
    .map_or("other", |(_, l)| l)
}

impl Op {
    pub fn kind(&self) -> Kind {
        match self {
            Op::Bind { kind, .. } | Op::Unbind { kind, .. } | Op::Schedule { kind, .. } => *kind,
            Op::CreateDepartment { .. } | Op::UpdateDepartment { .. } | Op::DeleteDepartment { .. } | Op::SetLeaders { .. } => {
                Kind::Department
            }
            _ => Kind::User,
        }
    }

    /// The short verb used in run items, counts and metrics.
    pub fn verb(&self) -> Verb {
        match self {
            Op::Bind { .. } => Verb::Bind,
            Op::Schedule { .. } => Verb::Schedule,
            Op::Unbind { .. } => Verb::Unbind,
            Op::CreateDepartment { .. } | Op::CreateUser { .. } => Verb::Create,
            Op::UpdateDepartment { .. } | Op::UpdateUser { .. } | Op::SetManager { .. } | Op::SetLeaders { .. } => Verb::Update,
            Op::DisableUser { .. } => Verb::Disable,
            Op::DeleteUser { .. } | Op::DeleteDepartment { .. } => Verb::Delete,
        }
    }

    pub fn source_id(&self) -> Option<&SourceId> {
        match self {
            Op::Bind { source_id, .. }
            | Op::Unbind { source_id, .. }
            | Op::CreateDepartment { source_id, .. }
            | Op::UpdateDepartment { source_id, .. }
            | Op::CreateUser { source_id, .. }
            | Op::SetManager { source_id, .. }
            | Op::SetLeaders { source_id, .. }
            | Op::UpdateUser { source_id, .. } => Some(source_id),
            Op::DisableUser { source_id, .. } | Op::DeleteUser { source_id, .. } | Op::DeleteDepartment { source_id, .. } => {
                source_id.as_ref()
            }
            Op::Schedule { .. } => None,
        }
    }

    pub fn target_id(&self) -> Option<&TargetId> {
        match self {
            Op::CreateDepartment { .. } | Op::CreateUser { .. } => None,
            Op::SetManager { target_id, .. } | Op::SetLeaders { target_id, .. } => target_id.as_ref(),
            Op::Bind { target_id, .. }
            | Op::Unbind { target_id, .. }
            | Op::UpdateDepartment { target_id, .. }
            | Op::UpdateUser { target_id, .. }
            | Op::DisableUser { target_id, .. }
            | Op::DeleteUser { target_id, .. }
            | Op::DeleteDepartment { target_id, .. }
            | Op::Schedule { target_id, .. } => Some(target_id),
        }
    }

    /// What the op's run item says besides its outcome.
    pub fn note(&self) -> Option<&str> {
        match self {
            Op::CreateUser { note, .. } => note.as_deref(),
            // Why an account or a department goes.
            Op::DisableUser { reason, .. }
            | Op::DeleteUser { reason, .. }
            | Op::DeleteDepartment { reason, .. }
            | Op::Schedule { reason, .. } => Some(reason),
            _ => None,
        }
    }

    /// What a create sets, attribute by attribute, borrowed from its spec
    /// (none for any other op).
    pub fn set_values(&self) -> Vec<(Field, Cow<'_, str>)> {
        fn set<'a>(field: Field, v: Option<impl Into<Cow<'a, str>>>) -> Option<(Field, Cow<'a, str>)> {
            v.map(|v| (field, v.into()))
        }
        match self {
            Op::CreateUser { spec, .. } => [
                set(Field::ExternalId, Some(spec.external_id.as_str())),
                set(Field::Username, spec.username.as_deref()),
                set(Field::Name, spec.name.as_deref()),
                set(Field::Email, spec.email.as_deref()),
                set(Field::Mobile, spec.mobile.as_deref()),
                set(Field::EmployeeNo, spec.employee_no.as_deref()),
                set(Field::Nickname, spec.nickname.as_deref()),
                set(Field::Title, spec.title.as_deref()),
                set(Field::Department, spec.department.as_deref()),
                set(Field::Departments, spec.departments.as_ref().map(|d| d.iter().map(SourceId::as_str).collect::<Vec<_>>().join(","))),
                set(Field::Active, Some(if spec.active { "true" } else { "false" })),
                set(Field::Manager, spec.manager.as_ref().map(SourceId::as_str)),
                set(Field::Attributes, attributes_text(&spec.attributes)),
            ]
            .into_iter()
            .flatten()
            .collect(),
            Op::CreateDepartment { spec, .. } => [
                set(Field::ExternalId, Some(spec.external_id.as_str())),
                set(Field::Name, Some(spec.name.as_str())),
                set(Field::Parent, spec.parent.as_ref().map(SourceId::as_str)),
            ]
            .into_iter()
            .flatten()
            .collect(),
            _ => Vec::new(),
        }
    }

    /// What the op changes, attribute by attribute, for the run log: an
    /// update's changes; for a create, each attribute it sets (from none).
    pub fn changes(&self) -> Vec<Change> {
        match self {
            Op::UpdateUser { changes, .. } | Op::UpdateDepartment { changes, .. } => changes.clone(),
            Op::CreateUser { .. } | Op::CreateDepartment { .. } => {
                self.set_values().into_iter().map(|(field, v)| Change { field, from: None, to: Some(v.into_owned()) }).collect()
            }
            Op::SetManager { spec, from, .. } => vec![Change {
                field: Field::Manager,
                from: from.as_ref().map(|f| f.to_string()),
                to: spec.manager.as_ref().map(|m| m.to_string()),
            }],
            Op::SetLeaders { spec, from, .. } => vec![Change {
                field: Field::Leaders,
                from: from.clone(),
                to: Some(spec.leaders.iter().map(SourceId::as_str).collect::<Vec<_>>().join(",")),
            }],
            // What a disable changes, said like any other change.
            Op::DisableUser { .. } => vec![Change { field: Field::Active, from: Some("true".into()), to: Some("false".into()) }],
            _ => Vec::new(),
        }
    }

    /// Ops that touch only the mirror, never the target.
    pub fn mirror_only(&self) -> bool {
        matches!(self, Op::Bind { .. } | Op::Unbind { .. } | Op::Schedule { .. })
    }

    /// Deletes and disables: what the deletion guard counts.
    pub fn is_destructive(&self) -> bool {
        matches!(self, Op::DisableUser { .. } | Op::DeleteUser { .. } | Op::DeleteDepartment { duplicate_of: None, .. })
    }

    /// Why a user or department goes (disable, delete).
    pub fn removal_reason(&self) -> Option<&str> {
        match self {
            Op::DisableUser { reason, .. } | Op::DeleteUser { reason, .. } | Op::DeleteDepartment { reason, .. } => Some(reason),
            _ => None,
        }
    }

    /// Apply runs ops phase by phase; ops of one phase may run concurrently.
    /// Department creates and deletes carry their depth so that each tree
    /// level is its own phase.
    pub fn phase(&self) -> (u8, usize) {
        match self {
            Op::Unbind { .. } | Op::Bind { .. } | Op::Schedule { .. } => (0, 0),
            Op::CreateDepartment { depth, .. } => (1, *depth),
            // Users before department updates: a group's rename then goes
            // with the run's member changes of that group (one request).
            Op::CreateUser { .. } | Op::UpdateUser { .. } => (2, 0),
            // After every user create: the manager exists by now.
            Op::SetManager { .. } => (2, 1),
            Op::UpdateDepartment { .. } => (3, 0),
            // After the user creates and the department updates: both exist, named as they end.
            Op::SetLeaders { .. } => (3, 1),
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
            Op::Bind { reason, .. } => reason.to_string(),
            Op::Unbind { reason, .. }
            | Op::Schedule { reason, .. }
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
            Op::SetManager { .. } | Op::SetLeaders { .. } => changes_text(&self.changes()),
        }
    }
}

/// What became of an operation or plan item, as a run records it: the
/// operations' outcomes (`ok`, `failed`, `refused`, `not_attempted`), then
/// why an item of the plan is not an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done.
    Ok,
    /// The target answered with an error (or could not be reached).
    Failed,
    /// The target refused a value it does not take (the rest went through).
    Refused,
    /// Not tried: the run stopped (shutdown, an unreachable target).
    NotAttempted,
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
    /// Changes the target does not keep (it rewrites or refuses them): not
    /// sent again until the source value changes.
    NotKept,
    /// A disabled leaver waiting out its grace period: deleted when due.
    Scheduled,
    /// Failed too often in a row: left out of every run until `orgsync retry`.
    Quarantined,
    /// Failed lately: tried again when its backoff is over.
    RetryLater,
    /// A username (or email) another user has, given a number
    /// (`[mapping.users] unique`): said, and done with the user's operation.
    MadeUnique,
}

super::policy::string_enum!(Outcome {
    Ok => "ok", Failed => "failed", Refused => "refused", NotAttempted => "not_attempted",
    HeldBack => "held_back", Conflict => "conflict", Unmatchable => "unmatchable", Invalid => "invalid",
    OutOfScope => "out_of_scope", NotKept => "not_kept", Scheduled => "scheduled",
    Quarantined => "quarantined", RetryLater => "retry_later", MadeUnique => "made_unique",
});

/// What an operation or plan item does (or would have done), as a run
/// records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verb {
    Create,
    Update,
    Disable,
    Delete,
    /// Bind a source object to the target object it matched.
    Bind,
    /// Forget a binding whose target object is gone.
    Unbind,
    /// Start (or keep) a leaver's grace period.
    Schedule,
    /// A group's batched membership changes (written at the end of the run).
    Members,
    /// A source record that could not be read.
    Read,
}

super::policy::string_enum!(Verb {
    Create => "create", Update => "update", Disable => "disable", Delete => "delete", Bind => "bind",
    Unbind => "unbind", Schedule => "schedule", Members => "members", Read => "read",
});

/// Something the plan reports instead of doing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Item {
    pub kind: Kind,
    /// The verb that would have been done (`delete`, `create`, `bind`, ...).
    pub op: Verb,
    pub source_id: Option<SourceId>,
    pub target_id: Option<TargetId>,
    pub outcome: Outcome,
    pub message: String,
}

/// The ordered operations of one run plus what was held back or skipped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub ops: Vec<Op>,
    pub items: Vec<Item>,
    /// Set when the deletion guard held something back: why.
    pub guard: Option<String>,
    /// Objects waiting out a grace period that are back (or gone from the
    /// target): the mirror forgets when they left.
    pub unscheduled: Vec<TargetId>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.items.is_empty()
    }

    /// Ops that change the target (everything but bind/unbind).
    pub fn writes(&self) -> usize {
        self.ops.iter().filter(|o| !o.mirror_only()).count()
    }
}

/// What earlier runs left that a plan takes into account, besides the
/// bindings.
#[derive(Debug, Default)]
pub struct History {
    /// The values sent before and what became of them: one the target did
    /// not keep is not sent again until the source changes it.
    pub unkept: super::unkept::Memory,
    /// Objects that failed lately (they wait out their backoff) or are
    /// quarantined.
    pub failures: super::retry::Failures,
    /// Users whose manager has no account, said already: the manager's hash.
    pub said: std::collections::HashMap<SourceId, String>,
}

/// A plan, and what it found in the [`History`].
#[derive(Debug)]
pub struct Planned {
    pub plan: Plan,
    /// For the mirror's unkept memory: values found not kept, entries to forget.
    pub memory: super::unkept::MemoryChanges,
    /// Operations held back by their objects' failures.
    pub held: usize,
}

/// Build the plan with no history. Pure: the same inputs always give the
/// same plan.
pub fn plan(source: &Snapshot, target: &TargetSnapshot, bindings: &Bindings, policy: &Policy, options: RunOptions) -> Plan {
    plan_with(source, target, bindings, &History::default(), policy, options).plan
}

/// Build the plan, in stages: the departments, the users against them, the
/// unreadable records, the order of the operations, the deletion guard,
/// then what the history says (values the target does not keep, objects
/// that wait after failures). Pure.
pub fn plan_with(
    source: &Snapshot,
    target: &TargetSnapshot,
    bindings: &Bindings,
    history: &History,
    policy: &Policy,
    options: RunOptions,
) -> Planned {
    stages(source, target, bindings, history, policy, options, true)
}

/// [`plan_with`], with the deletion guard or without it (an on-demand
/// plan judges it once restricted to the objects named).
pub(super) fn stages(
    source: &Snapshot,
    target: &TargetSnapshot,
    bindings: &Bindings,
    history: &History,
    policy: &Policy,
    options: RunOptions,
    guarded: bool,
) -> Planned {
    let resolved;
    let (source, unique) = match super::unique::resolve(source, target, bindings, &policy.users.unique) {
        Some((s, items)) => {
            resolved = s;
            (&resolved, items)
        }
        None => (source, Vec::new()),
    };
    let mut departments = plan_departments(source, target, bindings, policy, options);
    if options.departments == DepartmentShape::None {
        // The target holds no departments: nothing to do to them.
        departments.creates.clear();
        departments.updates.clear();
        departments.deletes.clear();
        departments.binds.retain(|op| op.kind() != Kind::Department);
    }
    let mut users = plan_users(source, target, bindings, policy, &departments.state);
    users.ops.append(&mut users.managers);
    let (read, user_removals) = unreadable(source, users.removals);
    let mut p = Plan { items: departments.items, ..Plan::default() };
    p.items.extend(unique);
    p.items.extend(users.items);
    p.items.extend(read);
    let (said, reports) = super::managers::report(std::mem::take(&mut users.unresolved), &history.said);
    p.items.extend(said);
    let mut dept_updates = departments.updates;
    dept_updates.append(&mut users.leaders);
    p.ops = ordered(departments.binds, users.binds, departments.creates, users.ops, dept_updates, user_removals, departments.deletes);
    if guarded {
        guard::apply(&mut p, source, target, policy.guard, options);
    }
    p.unscheduled = unscheduled(&p, bindings);
    let mut memory = super::unkept::skip_unkept(&mut p, &history.unkept);
    // A run of a few objects says nothing of managers (its items are
    // restricted to the objects named): a full run says them.
    memory.said = source.partial.is_none().then_some((reports, true));
    let held = options.now.map_or(0, |now| super::retry::hold(&mut p, &history.failures, now));
    Planned { plan: p, memory, held }
}

/// The run's order: bindings first, departments created parents first,
/// users created and updated, departments updated, users removed, then
/// departments deleted children first.
fn ordered(
    dept_binds: Vec<Op>,
    user_binds: Vec<Op>,
    mut dept_creates: Vec<Op>,
    user_ops: Vec<Op>,
    dept_updates: Vec<Op>,
    user_removals: Vec<Op>,
    mut dept_deletes: Vec<Op>,
) -> Vec<Op> {
    dept_creates.sort_by_key(|o| o.phase());
    dept_deletes.sort_by_key(|o| o.phase());
    concat(vec![dept_binds, user_binds, dept_creates, user_ops, dept_updates, user_removals, dept_deletes])
}

/// `parts` one after the other, moved into the largest of them (a first
/// sync's creates, a re-bind's binds): 100,000 operations are not copied
/// into a new list while the old one is still held.
fn concat(mut parts: Vec<Vec<Op>>) -> Vec<Op> {
    let total: usize = parts.iter().map(Vec::len).sum();
    let Some(k) = parts.iter().enumerate().max_by_key(|(_, p)| p.capacity()).map(|(k, _)| k) else { return Vec::new() };
    let mut ops = std::mem::take(&mut parts[k]);
    ops.reserve_exact(total - ops.len());
    let front: Vec<Op> = parts[..k].iter_mut().flat_map(std::mem::take).collect();
    ops.splice(0..0, front);
    for p in &mut parts[k + 1..] {
        ops.append(p);
    }
    ops
}

/// Objects waiting out a grace period that are back (or gone from the
/// target): the mirror forgets when they left. Those still target-only
/// keep their time.
fn unscheduled(p: &Plan, bindings: &Bindings) -> Vec<TargetId> {
    let waiting: std::collections::HashSet<&TargetId> = p
        .ops
        .iter()
        .filter(|o| matches!(o, Op::DisableUser { .. } | Op::DeleteUser { .. } | Op::DeleteDepartment { .. } | Op::Schedule { .. }))
        .filter_map(Op::target_id)
        .chain(p.items.iter().filter(|i| matches!(i.outcome, Outcome::Scheduled | Outcome::HeldBack)).filter_map(|i| i.target_id.as_ref()))
        .collect();
    let mut back: Vec<TargetId> = bindings.disabled.keys().filter(|t| !waiting.contains(t)).cloned().collect();
    back.sort();
    back
}

/// Records the source could not read are `invalid` items. When a user record
/// could not even be identified, nobody can say which account it was: no
/// user is disabled or deleted this run (each removal is held back, said).
/// Returns the items and the removals that stay.
fn unreadable(source: &Snapshot, user_removals: Vec<Op>) -> (Vec<Item>, Vec<Op>) {
    let mut items: Vec<Item> = source
        .unreadable
        .iter()
        .map(|r| Item {
            kind: r.kind,
            op: Verb::Read,
            source_id: r.source_id.clone(),
            target_id: None,
            outcome: Outcome::Invalid,
            message: r.message.clone(),
        })
        .collect();
    let anonymous = source.unreadable.iter().filter(|r| r.kind == Kind::User && r.source_id.is_none()).count();
    if anonymous == 0 {
        return (items, user_removals);
    }
    let why = format!("held back: {anonymous} user record(s) from the source had no id, so no account can be judged gone this run");
    items.extend(user_removals.iter().map(|op| guard::held_item(op, &why)));
    (items, Vec::new())
}

#[cfg(test)]
mod concat_tests {
    use super::*;
    use proptest::prelude::*;

    fn op(part: usize, k: usize) -> Op {
        Op::Schedule { kind: Kind::User, target_id: TargetId(format!("{part}-{k}")), reason: String::new() }
    }

    proptest! {
        /// Whichever part is largest (and however much room each has), the
        /// operations come out in the parts' order, each part's in its own.
        #[test]
        fn concat_keeps_the_order(parts in proptest::collection::vec((0usize..40, 0usize..40), 0..8)) {
            let built: Vec<Vec<Op>> = parts
                .iter()
                .enumerate()
                .map(|(p, &(len, room))| {
                    let mut v = Vec::with_capacity(len + room);
                    v.extend((0..len).map(|k| op(p, k)));
                    v
                })
                .collect();
            let naive: Vec<Op> = built.iter().flatten().cloned().collect();
            prop_assert_eq!(concat(built), naive);
        }
    }

    /// An operation is as large as its largest variant: the specs are boxed
    /// so a plan of 100,000 binds or deletes stays small.
    #[test]
    fn an_operation_stays_small() {
        assert!(std::mem::size_of::<Op>() <= 136, "Op is {} bytes", std::mem::size_of::<Op>());
    }
}
