//! The directory as orgsync sees it: departments, users, and the ids that tie
//! them to the source and the target. Plain data, no I/O.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_newtype {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}

id_newtype!(
    /// The identity source's stable id of an object (never a DN or a name).
    SourceId
);
id_newtype!(
    /// The target system's id of an object (a SCIM `id`, a file target's id).
    TargetId
);

/// Users or departments: every binding, plan operation and run item has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Department,
    User,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Department => "department",
            Kind::User => "user",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A department as the source reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Department {
    pub source_id: SourceId,
    /// None for a root of the in-scope forest.
    pub parent_id: Option<SourceId>,
    pub name: String,
    #[serde(default)]
    pub order: i64,
    #[serde(default)]
    pub leader_ids: Vec<SourceId>,
}

/// A user attribute orgsync keeps in step (the mapping). `username`,
/// `active` and the external id are always managed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserField {
    Name,
    Email,
    Mobile,
    EmployeeNo,
    Nickname,
    Title,
    DepartmentIds,
    /// The user's manager (a source user id).
    Manager,
}

/// A user as the source reports it.
///
/// A field is *empty* (`None`) when the source says there is no value, and
/// *absent* (listed in `absent`) when the source did not provide it for this
/// record: a permission it lacks, an app too young for it, a field the
/// source has no notion of. An absent field never changes the target.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub source_id: SourceId,
    pub username: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub mobile: Option<String>,
    pub employee_no: Option<String>,
    pub nickname: Option<String>,
    pub title: Option<String>,
    /// Primary department first.
    pub department_ids: Vec<SourceId>,
    pub active: bool,
    /// The user's manager, by the source's user id (an LDAP source gives
    /// the DN when it is not one of the users read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager_id: Option<SourceId>,
    /// Fields beyond the model's (`[mapping.attributes]`): by name; a name
    /// missing is empty.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub attributes: std::collections::BTreeMap<String, String>,
    /// Fields the source did not provide for this record (see above).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub absent: Vec<UserField>,
}

impl User {
    /// The value of a string field (`None` for `DepartmentIds`).
    pub fn field(&self, f: UserField) -> Option<&str> {
        match f {
            UserField::Name => self.name.as_deref(),
            UserField::Email => self.email.as_deref(),
            UserField::Mobile => self.mobile.as_deref(),
            UserField::EmployeeNo => self.employee_no.as_deref(),
            UserField::Nickname => self.nickname.as_deref(),
            UserField::Title => self.title.as_deref(),
            UserField::Manager => self.manager_id.as_ref().map(SourceId::as_str),
            UserField::DepartmentIds => None,
        }
    }

    pub fn is_absent(&self, f: UserField) -> bool {
        self.absent.contains(&f)
    }

    /// Mark `f` absent (once).
    pub fn withhold(&mut self, f: UserField) {
        if !self.is_absent(f) {
            self.absent.push(f);
        }
    }
}

/// Everything one fetch returned: all pages or nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub departments: Vec<Department>,
    pub users: Vec<User>,
    /// The fetch read part of a larger directory (roots, a base DN, an
    /// app's contact range): a user's department outside it is normal. A
    /// file source is the whole directory: such a department is a data error.
    #[serde(default)]
    pub scoped: bool,
    /// Records that could not be read (no id, no name, a wrong type):
    /// reported as `invalid` items, never dropped silently.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<Unreadable>,
    /// Users `[scope]` left out (by source id): one bound to a target
    /// account left the scope, not the source, and its item says so.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub out_of_scope: Vec<SourceId>,
    /// Read in part, by id (an on-demand run), for these users and
    /// departments: every target object bound to a source object neither
    /// read nor named is left as it is (never matched to another, never
    /// taken for target-only). A named one not read is gone.
    #[serde(skip)]
    pub partial: Option<(std::collections::BTreeSet<SourceId>, std::collections::BTreeSet<SourceId>)>,
}

/// A source record that could not be mapped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unreadable {
    pub kind: Kind,
    /// Its stable id when it has one: its target object and binding are
    /// then left untouched (never taken for target-only).
    pub source_id: Option<SourceId>,
    /// What is wrong, with whatever other id the vendor gave (to find it).
    pub message: String,
}

/// A department as the target holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetDepartment {
    pub id: TargetId,
    pub external_id: Option<String>,
    pub name: String,
    pub parent: Option<TargetId>,
    /// The leaders' target ids, where the target holds them (LDAP `owner`);
    /// `None`: it holds none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaders: Option<Vec<TargetId>>,
}

/// A user as the target holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetUser {
    pub id: TargetId,
    pub external_id: Option<String>,
    pub username: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub mobile: Option<String>,
    pub employee_no: Option<String>,
    pub nickname: Option<String>,
    pub title: Option<String>,
    /// The primary department's name, as the target shows it (SCIM enterprise `department`).
    pub department: Option<String>,
    /// Departments the user is a member of; order carries no meaning.
    pub departments: Vec<TargetId>,
    pub active: bool,
    /// The manager's target id (a SCIM id, a DN), as the target holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<TargetId>,
    /// The extra attributes (`[mapping.attributes]`) the target holds, by name.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub attributes: std::collections::BTreeMap<String, String>,
}

/// The target's current users and departments.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetSnapshot {
    pub departments: Vec<TargetDepartment>,
    pub users: Vec<TargetUser>,
}

/// Source id -> target id links, per kind, as kept in the mirror.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bindings {
    pub departments: rustc_hash::FxHashMap<SourceId, TargetId>,
    pub users: rustc_hash::FxHashMap<SourceId, TargetId>,
    /// Users orgsync disabled under `disable_then_delete`, and when.
    pub disabled: std::collections::HashMap<TargetId, chrono::DateTime<chrono::Utc>>,
    /// Users deleted with a 2xx (a target that soft-deletes may still list
    /// them, inactive): never deleted again.
    pub tombstones: std::collections::HashSet<TargetId>,
}

impl Bindings {
    pub fn of_mut(&mut self, kind: Kind) -> &mut rustc_hash::FxHashMap<SourceId, TargetId> {
        match kind {
            Kind::Department => &mut self.departments,
            Kind::User => &mut self.users,
        }
    }
}

/// Treat empty and whitespace-only strings as absent.
pub fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// [`non_empty`] for a borrowed value.
pub fn non_empty_str(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|s| !s.is_empty())
}
