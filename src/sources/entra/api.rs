//! Microsoft Graph v1.0 on the wire (docs/vendor-apis.md section 5). Graph
//! answers 2xx with the payload, errors as `{"error": {"code", "message"}}`;
//! the token endpoint's errors are OAuth's
//! `{"error", "error_description", "error_codes"}`. A delta record carries
//! only what changed: fields are missing, null or set, told apart.

use crate::sources::saas::wire::{self, Item, Text};
use serde::{Deserialize, Serialize};

/// Both error shapes.
#[derive(Debug, Default, Deserialize)]
pub struct Envelope {
    pub error: Option<ErrorField>,
    pub error_description: Option<String>,
    #[serde(default)]
    pub error_codes: Vec<u64>,
}

/// Graph's `error` is a table; OAuth's is a string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ErrorField {
    Graph { code: Option<String>, message: Option<String> },
    OAuth(String),
}

/// One page of a list or a delta round.
#[derive(Debug, Deserialize)]
#[serde(bound = "T: serde::de::DeserializeOwned")]
pub struct Page<T> {
    #[serde(default)]
    pub value: Vec<Item<T>>,
    #[serde(rename = "@odata.nextLink")]
    pub next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink")]
    pub delta_link: Option<String>,
}

/// `@removed`: `changed` (soft-deleted, restorable 30 days) or `deleted`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Removed {
    pub reason: Option<String>,
}

type Maybe<T> = Option<Option<T>>;

/// A user, or (in a delta round) the properties of one that changed.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: Option<Text>,
    #[serde(default, deserialize_with = "wire::maybe", skip_serializing_if = "Option::is_none")]
    pub user_principal_name: Maybe<Text>,
    #[serde(default, deserialize_with = "wire::maybe", skip_serializing_if = "Option::is_none")]
    pub mail: Maybe<Text>,
    #[serde(default, deserialize_with = "wire::maybe", skip_serializing_if = "Option::is_none")]
    pub display_name: Maybe<Text>,
    #[serde(default, deserialize_with = "wire::maybe", skip_serializing_if = "Option::is_none")]
    pub mobile_phone: Maybe<Text>,
    #[serde(default, deserialize_with = "wire::maybe", skip_serializing_if = "Option::is_none")]
    pub business_phones: Maybe<Vec<Text>>,
    #[serde(default, deserialize_with = "wire::maybe", skip_serializing_if = "Option::is_none")]
    pub employee_id: Maybe<Text>,
    #[serde(default, deserialize_with = "wire::maybe", skip_serializing_if = "Option::is_none")]
    pub department: Maybe<Text>,
    #[serde(default, deserialize_with = "wire::maybe", skip_serializing_if = "Option::is_none")]
    pub job_title: Maybe<Text>,
    #[serde(default, deserialize_with = "wire::maybe", skip_serializing_if = "Option::is_none")]
    pub account_enabled: Maybe<bool>,
    /// `$expand=manager($select=id)` on a full fetch: the manager, or
    /// none (`Some(None)`); never read: `None` (absent).
    #[serde(default, deserialize_with = "wire::maybe", skip_serializing_if = "Option::is_none")]
    pub manager: Maybe<Reference>,
    #[serde(rename = "@removed", skip_serializing_if = "Option::is_none")]
    pub removed: Option<Removed>,
    /// Every other property selected (`user_properties`), for `[mapping]`'s expressions.
    #[serde(flatten, default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl User {
    /// Take what a delta record says over what was known.
    pub fn merge(&mut self, changed: User) {
        fn take<T>(have: &mut Option<T>, new: Option<T>) {
            if new.is_some() {
                *have = new;
            }
        }
        take(&mut self.user_principal_name, changed.user_principal_name);
        take(&mut self.mail, changed.mail);
        take(&mut self.display_name, changed.display_name);
        take(&mut self.mobile_phone, changed.mobile_phone);
        take(&mut self.business_phones, changed.business_phones);
        take(&mut self.employee_id, changed.employee_id);
        take(&mut self.department, changed.department);
        take(&mut self.job_title, changed.job_title);
        take(&mut self.account_enabled, changed.account_enabled);
        take(&mut self.manager, changed.manager);
        self.other.extend(changed.other);
        self.removed = changed.removed;
    }
}

/// A directory object named by its id (a manager).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct Reference {
    pub id: Option<Text>,
}

/// What a full fetch expands: each user's manager, its id only.
pub const MANAGER_EXPAND: &str = "manager($select=id)";

/// The properties every user request selects (`accountEnabled`,
/// `employeeId` and `department` are not in Graph's default set).
pub const USER_SELECT: &str =
    "id,userPrincipalName,mail,displayName,mobilePhone,businessPhones,employeeId,department,jobTitle,accountEnabled";

/// A group or an administrative unit.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub id: Option<Text>,
    #[serde(default, deserialize_with = "wire::maybe", skip_serializing_if = "Option::is_none")]
    pub display_name: Maybe<Text>,
    #[serde(default, deserialize_with = "wire::maybe", skip_serializing_if = "Option::is_none")]
    pub security_enabled: Maybe<bool>,
    /// In a groups delta round: members added, or removed (`@removed`).
    #[serde(rename = "members@delta", default, skip_serializing)]
    pub members_delta: Vec<Member>,
    #[serde(rename = "@removed", skip_serializing_if = "Option::is_none")]
    pub removed: Option<Removed>,
}

/// A member of a group: a user or a group, told by `@odata.type`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Member {
    #[serde(rename = "@odata.type")]
    pub odata_type: Option<String>,
    pub id: Option<Text>,
    #[serde(rename = "@removed", skip_serializing_if = "Option::is_none")]
    pub removed: Option<Removed>,
}

impl Member {
    pub fn is_user(&self) -> bool {
        self.odata_type.as_deref() == Some("#microsoft.graph.user")
    }

    pub fn is_group(&self) -> bool {
        self.odata_type.as_deref() == Some("#microsoft.graph.group")
    }
}
