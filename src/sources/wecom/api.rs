//! WeCom's contact APIs on the wire (docs/vendor-apis.md section 3). Record
//! fields are optional: apps created after 2022-06-20 receive no email,
//! biz_mail or mobile, and vendors add fields (none is denied).

use crate::sources::saas::wire::{Item, Text};
use serde::Deserialize;

/// The envelope: `errcode` 0 is success.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    pub errcode: Option<Text>,
    pub errmsg: Option<String>,
}

/// `department/simplelist`: ids and parents only.
#[derive(Debug, Deserialize)]
pub struct SimpleList {
    pub department_id: Vec<SimpleRow>,
}

#[derive(Debug, Deserialize)]
pub struct SimpleRow {
    pub id: i64,
}

/// `department/list`.
#[derive(Debug, Deserialize)]
pub struct DepartmentList {
    pub department: Vec<Item<Department>>,
}

/// `department/get`.
#[derive(Debug, Deserialize)]
pub struct DepartmentGet {
    pub department: Item<Department>,
}

#[derive(Debug, Deserialize)]
pub struct Department {
    pub id: i64,
    pub parentid: Option<i64>,
    pub name: Option<Text>,
    /// Larger first.
    pub order: Option<i64>,
    /// The department's leaders (user ids).
    pub department_leader: Option<Vec<Text>>,
}

/// `user/list_id`: one page of (user, department) rows.
#[derive(Debug, Deserialize)]
pub struct ListId {
    pub dept_user: Vec<Item<DeptUser>>,
    /// Empty or absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct DeptUser {
    pub userid: Option<Text>,
    pub department: Option<Text>,
}

/// `user/list`.
#[derive(Debug, Deserialize)]
pub struct UserList {
    pub userlist: Vec<Item<User>>,
}

/// A user from `user/get` (the envelope's own fields beside it) or `user/list`.
#[derive(Debug, Deserialize)]
pub struct User {
    pub userid: Option<Text>,
    pub name: Option<Text>,
    pub email: Option<Text>,
    pub biz_mail: Option<Text>,
    pub mobile: Option<Text>,
    pub alias: Option<Text>,
    pub english_name: Option<Text>,
    pub position: Option<Text>,
    #[serde(default)]
    pub department: Vec<Text>,
    pub main_department: Option<Text>,
    /// 1 active; 2 disabled, 4 not activated, 5 left.
    pub status: Option<i64>,
    /// The direct managers (user ids); the first is the manager.
    pub direct_leader: Option<Vec<Text>>,
}
