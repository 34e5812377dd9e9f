//! Feishu/Lark contact v3 on the wire (docs/vendor-apis.md section 1). Every
//! field is optional: the app's scopes decide what is sent, and vendors add
//! fields (none is denied).

use crate::sources::saas::wire::{Item, Text};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The envelope of every answer: `code` 0 is success.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    pub code: Option<Text>,
    pub msg: Option<String>,
}

/// A paged list: `data.items`, `data.has_more`, `data.page_token`.
#[derive(Debug, Deserialize)]
#[serde(bound = "T: DeserializeOwned")]
pub struct Paged<T> {
    pub data: PageData<T>,
}

#[derive(Debug, Deserialize)]
#[serde(bound = "T: DeserializeOwned")]
pub struct PageData<T> {
    /// Left out of an empty page.
    pub items: Option<Vec<Item<T>>>,
    #[serde(default)]
    pub has_more: bool,
    pub page_token: Option<String>,
}

/// `departments/:id`: one department, `data.department`.
#[derive(Debug, Deserialize)]
pub struct One {
    pub data: OneData,
}

#[derive(Debug, Deserialize)]
pub struct OneData {
    pub department: Item<Department>,
}

/// `departments/:id/children` items.
#[derive(Debug, Deserialize)]
pub struct Department {
    pub open_department_id: Option<Text>,
    pub department_id: Option<Text>,
    pub name: Option<Text>,
    pub parent_department_id: Option<Text>,
    /// A number as text ("10").
    pub order: Option<Text>,
    /// The department's main leader (a user id of the configured type).
    pub leader_user_id: Option<Text>,
}

impl Department {
    /// The id of the configured `department_id_type`.
    pub fn id(&self, id_type: &str) -> &Option<Text> {
        match id_type {
            "department_id" => &self.department_id,
            _ => &self.open_department_id,
        }
    }
}

/// `users/find_by_department` items.
#[derive(Debug, Deserialize)]
pub struct User {
    pub union_id: Option<Text>,
    pub open_id: Option<Text>,
    pub user_id: Option<Text>,
    pub name: Option<Text>,
    pub en_name: Option<Text>,
    pub nickname: Option<Text>,
    pub email: Option<Text>,
    pub enterprise_email: Option<Text>,
    pub mobile: Option<Text>,
    /// `false`: the user hides the mobile from the app.
    pub mobile_visible: Option<bool>,
    pub employee_no: Option<Text>,
    pub job_title: Option<Text>,
    #[serde(default)]
    pub department_ids: Vec<Text>,
    #[serde(default)]
    pub orders: Vec<Order>,
    pub status: Option<Status>,
    /// The direct manager (a user id of the configured type).
    pub leader_user_id: Option<Text>,
}

impl User {
    /// The id of the configured `user_id_type`.
    pub fn id(&self, id_type: &str) -> &Option<Text> {
        match id_type {
            "open_id" => &self.open_id,
            "user_id" => &self.user_id,
            _ => &self.union_id,
        }
    }
}

/// One of a user's departments with its order; one is the primary.
#[derive(Debug, Deserialize)]
pub struct Order {
    pub department_id: Option<Text>,
    #[serde(default)]
    pub is_primary_dept: bool,
}

#[derive(Debug, Deserialize)]
pub struct Status {
    #[serde(default)]
    pub is_frozen: bool,
    #[serde(default)]
    pub is_resigned: bool,
}
