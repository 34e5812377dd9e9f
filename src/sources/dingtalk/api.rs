//! DingTalk's oapi contact APIs on the wire (docs/vendor-apis.md section 2).
//! Every record field is optional: field permissions decide what is sent,
//! and vendors add fields (none is denied).

use crate::sources::saas::wire::{Item, Text};
use serde::Deserialize;

/// The envelope: `errcode` 0 is success; errcode 88 wraps the real reason
/// in `sub_code` / `sub_msg`. The per-IP flood ban is no envelope at all:
/// `{"status": 1111, "wait": 5}`.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    pub errcode: Option<Text>,
    pub errmsg: Option<String>,
    pub sub_code: Option<Text>,
    pub sub_msg: Option<String>,
    pub status: Option<i64>,
    pub wait: Option<Text>,
}

#[derive(Debug, Deserialize)]
pub struct Answer<T> {
    pub result: T,
}

/// `department/listsubid`.
#[derive(Debug, Deserialize)]
pub struct SubIds {
    pub dept_id_list: Vec<i64>,
}

/// `department/get`.
#[derive(Debug, Deserialize)]
pub struct Department {
    pub name: Option<Text>,
    pub order: Option<Text>,
    pub parent_id: Option<Text>,
    /// The department's managers (`department/get`).
    pub dept_manager_userid_list: Option<Vec<Text>>,
}

/// `user/list`: one page.
#[derive(Debug, Deserialize)]
pub struct UserPage {
    pub list: Vec<Item<User>>,
    #[serde(default)]
    pub has_more: bool,
    pub next_cursor: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct User {
    pub userid: Option<Text>,
    pub unionid: Option<Text>,
    pub name: Option<Text>,
    pub state_code: Option<Text>,
    pub mobile: Option<Text>,
    pub email: Option<Text>,
    pub org_email: Option<Text>,
    pub job_number: Option<Text>,
    pub title: Option<Text>,
    #[serde(default)]
    pub dept_id_list: Vec<Text>,
    /// The direct manager: confirmed on `user/get`; `user/list` may lack it
    /// (then absent, never cleared).
    pub manager_userid: Option<Text>,
}

impl User {
    /// The id of the configured `user_id_type`.
    pub fn id(&self, id_type: &str) -> &Option<Text> {
        match id_type {
            "unionid" => &self.unionid,
            _ => &self.userid,
        }
    }
}
