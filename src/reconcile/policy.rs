//! The admin's discrepancy policies, as typed values (config builds them).

use serde::Serialize;

/// What to do with a target object that matches no in-scope source object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetOnly {
    #[default]
    Ignore,
    /// Users only: set `active = false`.
    Disable,
    Delete,
    /// Users only: disable now, delete when still gone after `delete_after`.
    DisableThenDelete,
}

/// What to do with a source object that matches no target object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceOnly {
    Ignore,
    #[default]
    CreateAndBind,
}

/// A user attribute used to match a source user to an unbound target user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchKey {
    Email,
    Username,
    Mobile,
    EmployeeNo,
}

pub use crate::model::UserField;

macro_rules! string_enum {
    ($ty:ident { $($variant:ident => $s:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALLOWED: &'static [&'static str] = &[$($s),+];
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $s),+ }
            }
        }
        impl std::str::FromStr for $ty {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                match s { $($s => Ok($ty::$variant),)+ _ => Err(()) }
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.as_str()) }
        }
    };
}
pub(crate) use string_enum;

string_enum!(TargetOnly { Ignore => "ignore", Disable => "disable", Delete => "delete", DisableThenDelete => "disable_then_delete" });
string_enum!(SourceOnly { Ignore => "ignore", CreateAndBind => "create_and_bind" });
string_enum!(MatchKey { Email => "email", Username => "username", Mobile => "mobile", EmployeeNo => "employee_no" });
string_enum!(UserField {
    Name => "name", Email => "email", Mobile => "mobile", EmployeeNo => "employee_no",
    Nickname => "nickname", Title => "title", DepartmentIds => "department_ids", Manager => "manager",
});

impl UserField {
    /// docs/design.md: the default mapping.
    pub const DEFAULTS: &'static [UserField] = &[
        UserField::Name,
        UserField::Email,
        UserField::Mobile,
        UserField::DepartmentIds,
        UserField::EmployeeNo,
        UserField::Nickname,
        UserField::Manager,
    ];
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserPolicy {
    pub target_only: TargetOnly,
    pub source_only: SourceOnly,
    pub match_by: Vec<MatchKey>,
    /// Usernames, emails or target ids that are never updated, disabled or deleted.
    pub protected: Vec<String>,
    pub fields: Vec<UserField>,
    /// Create (and bind) a source user none of whose match keys has a value.
    pub create_without_match_keys: bool,
    /// An empty source field clears the target's value (an absent one never does).
    pub clear_when_empty: bool,
    /// Under `disable_then_delete`: how long a disabled leaver waits before it is deleted.
    pub delete_after: std::time::Duration,
    /// `[mapping.users] unique`: values two users would share get a number.
    pub unique: Vec<MatchKey>,
    /// `[mapping.attributes]`: the extra attributes kept in step, by the target's name.
    pub attributes: Vec<String>,
}

impl Default for UserPolicy {
    fn default() -> Self {
        Self {
            target_only: TargetOnly::Ignore,
            source_only: SourceOnly::CreateAndBind,
            match_by: vec![MatchKey::Email],
            protected: Vec::new(),
            fields: UserField::DEFAULTS.to_vec(),
            create_without_match_keys: true,
            clear_when_empty: true,
            delete_after: std::time::Duration::from_secs(30 * 86_400),
            unique: Vec::new(),
            attributes: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DepartmentPolicy {
    /// `disable` is not allowed for departments (config rejects it).
    pub target_only: TargetOnly,
    pub source_only: SourceOnly,
    /// Department names, external ids or target ids that are never touched.
    pub protected: Vec<String>,
    /// Under `delete`: how long a department stays gone before it is deleted (zero: at once).
    pub delete_after: std::time::Duration,
}

/// The deletion guard's limits, one pair per kind: users (deletes,
/// disables and deactivations) and departments (deletes) are counted apart,
/// so an emptied department list cannot hide under a share of all objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Guard {
    /// Users: `policy.guard.max_deletes`.
    pub max_deletes: u64,
    /// Users: `policy.guard.max_delete_percent` of the target's users.
    pub max_delete_percent: u64,
    /// Departments: `policy.guard.max_department_deletes`.
    pub max_department_deletes: u64,
    /// Departments: `policy.guard.max_department_delete_percent` of the target's departments.
    pub max_department_delete_percent: u64,
}

impl Default for Guard {
    fn default() -> Self {
        Self { max_deletes: 100, max_delete_percent: 20, max_department_deletes: 20, max_department_delete_percent: 20 }
    }
}

impl Guard {
    /// The same limits for both kinds.
    pub fn uniform(max_deletes: u64, max_delete_percent: u64) -> Self {
        Self { max_deletes, max_delete_percent, max_department_deletes: max_deletes, max_department_delete_percent: max_delete_percent }
    }
}

/// `policy.quarantine_after`: failures in a row before an object is
/// quarantined (`reconcile::retry`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    pub quarantine_after: u32,
}

impl Default for Retry {
    fn default() -> Self {
        Self { quarantine_after: 5 }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub users: UserPolicy,
    pub departments: DepartmentPolicy,
    pub guard: Guard,
    pub retry: Retry,
}
