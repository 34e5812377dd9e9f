//! Huawei WeLink's contact APIs on the wire (docs/vendor-apis.md section 4).
//! `code` is a string on token and department answers and an integer on
//! user lists; numbers come as strings (`pageSize`, `deptLevel`): every
//! field is [`Text`]. Record fields are optional, and vendors add fields.

use crate::sources::saas::wire::{Item, Text};
use serde::Deserialize;

/// The envelope: `code` `"0"` / `0` is success.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    pub code: Option<Text>,
    pub message: Option<String>,
}

/// `GET /api/contact/v2/departments/list`: one page.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DepartmentPage {
    pub total_count: Option<Text>,
    #[serde(default)]
    pub department_info: Vec<Item<Department>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Department {
    pub dept_code: Option<Text>,
    pub dept_name_cn: Option<Text>,
    pub dept_name_en: Option<Text>,
    pub father_code: Option<Text>,
    /// Orders siblings (smaller first; the direction is unverified).
    pub order_no: Option<Text>,
}

/// `GET /api/contact/v1/user/users`: one page.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserPage {
    pub pages: Option<Text>,
    pub total: Option<Text>,
    #[serde(default)]
    pub data: Vec<Item<User>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// The stable id (an account, `name@tenant`).
    pub user_id: Option<Text>,
    /// The enterprise's own employee number (may be empty).
    pub corp_user_id: Option<Text>,
    pub user_name_cn: Option<Text>,
    pub user_name_en: Option<Text>,
    pub user_email: Option<Text>,
    /// `+86-15811847236`.
    pub mobile_number: Option<Text>,
    /// "1" not opened, "2" opening, "3" opened (active), "4" closed.
    pub user_status: Option<Text>,
    /// The user's department.
    pub dept_code: Option<Text>,
    /// In the SDK's struct; unverified in the docs.
    pub position: Option<Text>,
}

/// A count the answer gives as a number or as text.
pub fn count(t: &Option<Text>) -> Option<u64> {
    t.as_ref().and_then(Text::get).and_then(|s| s.parse().ok())
}
