//! The file source's wire format and its mapping to the model.
//!
//! The document is read record by record: a record that cannot be read (a
//! wrong-typed field, no `id` or `name`, an unknown key) is an `invalid`
//! item naming it, never a failed run, as the SaaS sources do. What makes
//! the whole document unusable fails the run: JSON that does not parse, an
//! unknown top-level key (a typo there would read as "no users"), or an id
//! used twice (which record is that id?).

use crate::model::{Department, Kind, Snapshot, SourceId, Unreadable, User};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use std::collections::HashMap;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document<'a> {
    #[serde(default, borrow)]
    departments: Vec<&'a RawValue>,
    #[serde(default, borrow)]
    users: Vec<&'a RawValue>,
}

/// The records `only` names, as the document has them (for `explain`).
pub fn records(bytes: &[u8], only: &crate::reconcile::only::Only) -> std::collections::BTreeMap<(Kind, SourceId), serde_json::Value> {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Default::default();
    };
    let id = |r: &serde_json::Value| match &r["id"] {
        serde_json::Value::String(s) => Some(SourceId::from(s.trim())),
        serde_json::Value::Number(n) => Some(SourceId::from(n.to_string().as_str())),
        _ => None,
    };
    [(Kind::User, "users"), (Kind::Department, "departments")]
        .into_iter()
        .flat_map(|(kind, key)| doc[key].as_array().into_iter().flatten().map(move |r| (kind, r)))
        .filter_map(|(kind, r)| id(r).filter(|i| only.names(kind, i)).map(|i| ((kind, i), r.clone())))
        .collect()
}

/// Whatever id a record that cannot be read has, to name it.
#[derive(Deserialize)]
struct IdOnly {
    #[serde(default)]
    id: Option<IdValue>,
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

/// A key given (even as `null`) is `Some`; a key left out stays `None` (serde's default).
fn some<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
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
    /// The manager's `id`; `null` for none. A document without the key
    /// says nothing of managers: the target's are kept (as before managers
    /// were synced).
    #[serde(default, deserialize_with = "some")]
    manager_id: Option<Option<IdValue>>,
    /// Fields of the HR system's own (`cost_center`), for `[mapping]`'s
    /// expressions (`attributes.cost_center`); nothing without them.
    #[serde(default)]
    #[allow(dead_code)]
    attributes: serde_json::Map<String, serde_json::Value>,
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

/// A record's checked id; an empty one makes the record unreadable (an
/// `invalid` item without an id), a duplicate fails the document.
fn readable_id(
    kind: Kind,
    list: &'static str,
    index: usize,
    id: IdValue,
    seen: &mut HashMap<SourceId, usize>,
    unreadable: &mut Vec<Unreadable>,
) -> Result<Option<SourceId>, FormatError> {
    match checked_id(list, index, id, seen) {
        Ok(id) => Ok(Some(id)),
        Err(e @ FormatError::EmptyId { .. }) => {
            unreadable.push(Unreadable { kind, source_id: None, message: format!("{e}: the record cannot be read") });
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// One record of `list`, or why it cannot be read (with its id when it has one).
fn record<T: DeserializeOwned>(kind: Kind, list: &str, index: usize, raw: &RawValue) -> Result<T, Unreadable> {
    serde_json::from_str(raw.get()).map_err(|e| {
        let id = serde_json::from_str::<IdOnly>(raw.get())
            .ok()
            .and_then(|r| r.id)
            .map(IdValue::into_id)
            .filter(|i| !i.as_str().trim().is_empty());
        // serde's position is within the record, not the file: leave it out.
        let what = e.to_string();
        let what = what.split(" at line ").next().unwrap_or(&what);
        let named = id.as_ref().map(|i| format!(" (id \"{i}\")")).unwrap_or_default();
        Unreadable { kind, source_id: id, message: format!("{list}[{index}]{named} cannot be read: {what}") }
    })
}

/// Parse and check a document. Errors name the offending entry.
#[cfg(test)]
pub fn parse(bytes: &[u8]) -> Result<Snapshot, FormatError> {
    parse_mapped(bytes, &crate::mapping::Mapping::default())
}

/// A record as JSON, for `[mapping]`'s expressions (only when it has some).
fn as_value(mapping: &crate::mapping::Mapping, raw: &RawValue) -> serde_json::Value {
    if mapping.is_empty() { serde_json::Value::Null } else { serde_json::from_str(raw.get()).unwrap_or_default() }
}

/// [`parse`], with the fields `mapping` sets.
pub fn parse_mapped(bytes: &[u8], mapping: &crate::mapping::Mapping) -> Result<Snapshot, FormatError> {
    // Windows tools (Excel, PowerShell) start UTF-8 files with a BOM.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let doc: Document = serde_json::from_slice(bytes)?;
    let mut snap = Snapshot::default();
    snap.departments.reserve_exact(doc.departments.len());
    snap.users.reserve_exact(doc.users.len());
    let mut seen = HashMap::new();
    for (i, raw) in doc.departments.into_iter().enumerate() {
        let d: DeptDto = match record(Kind::Department, "departments", i, raw) {
            Ok(d) => d,
            Err(u) => {
                snap.unreadable.push(u);
                continue;
            }
        };
        let Some(source_id) = readable_id(Kind::Department, "departments", i, d.id, &mut seen, &mut snap.unreadable)? else { continue };
        let department = Department {
            source_id,
            parent_id: d.parent_id.map(IdValue::into_id).filter(|p| !p.as_str().is_empty()),
            name: d.name,
            order: d.order,
            leader_ids: d.leader_ids.into_iter().map(IdValue::into_id).collect(),
        };
        match crate::sources::mapped_department(mapping, as_value(mapping, raw), Ok(department)) {
            Ok(d) => snap.departments.push(d),
            Err(u) => snap.unreadable.push(u),
        }
    }
    seen.clear();
    for (i, raw) in doc.users.into_iter().enumerate() {
        let u: UserDto = match record(Kind::User, "users", i, raw) {
            Ok(u) => u,
            Err(e) => {
                snap.unreadable.push(e);
                continue;
            }
        };
        let Some(source_id) = readable_id(Kind::User, "users", i, u.id, &mut seen, &mut snap.unreadable)? else { continue };
        let user = User {
            source_id,
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
            absent: if u.manager_id.is_none() { vec![crate::model::UserField::Manager] } else { Vec::new() },
            manager_id: u.manager_id.flatten().map(IdValue::into_id).filter(|m| !m.as_str().is_empty()),
            attributes: Default::default(),
        };
        match crate::sources::mapped(mapping, as_value(mapping, raw), Ok(user)) {
            Ok(u) => snap.users.push(u),
            Err(u) => snap.unreadable.push(u),
        }
    }
    // A document is the whole truth, but an expression that gives nothing
    // for anyone is more likely a typo than everyone's email gone.
    for key in mapping.withhold_all_empty(&mut snap.users) {
        tracing::warn!(
            field = key,
            "[mapping.users] {key} gave nothing for every user: withheld (the target's values are kept); check the expression"
        );
    }
    Ok(snap)
}
