//! The file source's wire format and its mapping to the model.

use crate::model::{Department, Snapshot, SourceId, User};
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(default)]
    departments: Vec<DeptDto>,
    #[serde(default)]
    users: Vec<UserDto>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeptDto {
    id: IdValue,
    #[serde(default)]
    parent_id: Option<IdValue>,
    name: String,
    #[serde(default)]
    order: i64,
    #[serde(default)]
    leader_ids: Vec<IdValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserDto {
    id: IdValue,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    mobile: Option<String>,
    #[serde(default)]
    employee_no: Option<String>,
    #[serde(default)]
    nickname: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    department_ids: Vec<IdValue>,
    #[serde(default = "yes")]
    active: bool,
}

fn yes() -> bool {
    true
}

/// Ids may be strings or integers in exports; both become strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum IdValue {
    S(String),
    N(i64),
}

impl IdValue {
    fn into_id(self) -> SourceId {
        match self {
            IdValue::S(s) => SourceId(s),
            IdValue::N(n) => SourceId(n.to_string()),
        }
    }
}

/// What is wrong with a file-source document; each names the offending entry.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("{list}[{index}].id is empty")]
    EmptyId { list: &'static str, index: usize },
    #[error("{list}[{index}].id \"{id}\" duplicates {list}[{first}].id")]
    DuplicateId { list: &'static str, index: usize, id: SourceId, first: usize },
}

/// Check the id of `list[i]`: not empty, and not seen before in that list.
fn checked_id(list: &'static str, index: usize, id: IdValue, seen: &mut HashMap<SourceId, usize>) -> Result<SourceId, FormatError> {
    let id = id.into_id();
    if id.as_str().trim().is_empty() {
        return Err(FormatError::EmptyId { list, index });
    }
    if let Some(first) = seen.insert(id.clone(), index) {
        return Err(FormatError::DuplicateId { list, index, id, first });
    }
    Ok(id)
}

/// Parse and check a document. Errors name the offending entry.
pub fn parse(bytes: &[u8]) -> Result<Snapshot, FormatError> {
    // Windows tools (Excel, PowerShell) start UTF-8 files with a BOM.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let doc: Document = serde_json::from_slice(bytes)?;
    let mut snap = Snapshot::default();
    let mut seen = HashMap::new();
    for (i, d) in doc.departments.into_iter().enumerate() {
        snap.departments.push(Department {
            source_id: checked_id("departments", i, d.id, &mut seen)?,
            parent_id: d.parent_id.map(IdValue::into_id).filter(|p| !p.as_str().is_empty()),
            name: d.name,
            order: d.order,
            leader_ids: d.leader_ids.into_iter().map(IdValue::into_id).collect(),
        });
    }
    seen.clear();
    for (i, u) in doc.users.into_iter().enumerate() {
        snap.users.push(User {
            source_id: checked_id("users", i, u.id, &mut seen)?,
            username: u.username,
            name: u.name,
            email: u.email,
            mobile: u.mobile,
            employee_no: u.employee_no,
            nickname: u.nickname,
            title: u.title,
            department_ids: u.department_ids.into_iter().map(IdValue::into_id).collect(),
            active: u.active,
            // The document is the whole truth: a missing key is empty.
            absent: Vec::new(),
        });
    }
    Ok(snap)
}
