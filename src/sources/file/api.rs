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

/// One record of `list` (`raw`, parsed as `parsed`), or why it cannot be
/// read (with its id when it has one).
fn record<T: DeserializeOwned>(kind: Kind, list: &str, index: usize, raw: &[u8], parsed: serde_json::Result<T>) -> Result<T, Unreadable> {
    parsed.map_err(|e| {
        let id =
            serde_json::from_slice::<IdOnly>(raw).ok().and_then(|r| r.id).map(IdValue::into_id).filter(|i| !i.as_str().trim().is_empty());
        // serde's position is within the record, not the file: leave it out.
        let what = e.to_string();
        let what = what.split(" at line ").next().unwrap_or(&what);
        let named = id.as_ref().map(|i| format!(" (id \"{i}\")")).unwrap_or_default();
        Unreadable { kind, source_id: id, message: format!("{list}[{index}]{named} cannot be read: {what}") }
    })
}

/// The document's records as they are read, each mapped at once.
struct Records<'m> {
    mapping: &'m crate::mapping::Mapping,
    snap: Snapshot,
    /// Ids seen so far, departments' and users'.
    seen: [HashMap<SourceId, usize>; 2],
    /// What failed the whole document (a duplicate id), beside the JSON error that stopped the read.
    failed: Option<FormatError>,
}

impl<'m> Records<'m> {
    fn new(mapping: &'m crate::mapping::Mapping) -> Self {
        Records { mapping, snap: Snapshot::default(), seen: [HashMap::new(), HashMap::new()], failed: None }
    }

    /// The whole document by serde_json's reader: every record's text is
    /// copied out byte by byte (slower than `json_lists`), and its answer
    /// on any document is the reference.
    fn read_all(&mut self, read: impl std::io::Read) -> Result<(), FormatError> {
        let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(1 << 16, read));
        let parsed = serde::de::DeserializeSeed::deserialize(&mut *self, &mut de).and_then(|()| de.end());
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        Ok(parsed?)
    }

    /// Department `i` (`raw`, parsed as `parsed`).
    fn department(&mut self, i: usize, raw: &[u8], parsed: serde_json::Result<DeptDto>) -> Result<(), FormatError> {
        let d = match record(Kind::Department, "departments", i, raw, parsed) {
            Ok(d) => d,
            Err(u) => {
                self.snap.unreadable.push(u);
                return Ok(());
            }
        };
        let Some(source_id) = readable_id(Kind::Department, "departments", i, d.id, &mut self.seen[0], &mut self.snap.unreadable)? else {
            return Ok(());
        };
        let department = Department {
            source_id,
            parent_id: d.parent_id.map(IdValue::into_id).filter(|p| !p.as_str().is_empty()),
            name: d.name,
            order: d.order,
            leader_ids: d.leader_ids.into_iter().map(IdValue::into_id).collect(),
        };
        match crate::sources::mapped_department(self.mapping, as_value(self.mapping, raw), Ok(department)) {
            Ok(d) => self.snap.departments.push(d),
            Err(u) => self.snap.unreadable.push(u),
        }
        Ok(())
    }

    /// User `i` (`raw`, parsed as `parsed`).
    fn user(&mut self, i: usize, raw: &[u8], parsed: serde_json::Result<UserDto>) -> Result<(), FormatError> {
        let u = match record(Kind::User, "users", i, raw, parsed) {
            Ok(u) => u,
            Err(e) => {
                self.snap.unreadable.push(e);
                return Ok(());
            }
        };
        let Some(source_id) = readable_id(Kind::User, "users", i, u.id, &mut self.seen[1], &mut self.snap.unreadable)? else {
            return Ok(());
        };
        let user = User {
            source_id,
            username: u.username,
            name: u.name,
            email: u.email,
            mobile: u.mobile,
            employee_no: u.employee_no,
            nickname: u.nickname,
            title: u.title,
            department_ids: {
                // Made in the list read (room for four): held at its size.
                let mut ids: Vec<SourceId> = u.department_ids.into_iter().map(IdValue::into_id).collect();
                ids.shrink_to_fit();
                ids
            },
            active: u.active,
            // The document is the whole truth: a missing key is empty.
            absent: if u.manager_id.is_none() { vec![crate::model::UserField::Manager] } else { Vec::new() },
            manager_id: u.manager_id.flatten().map(IdValue::into_id).filter(|m| !m.as_str().is_empty()),
            attributes: Default::default(),
        };
        match crate::sources::mapped(self.mapping, as_value(self.mapping, raw), Ok(user)) {
            Ok(u) => self.snap.users.push(u),
            Err(u) => self.snap.unreadable.push(u),
        }
        Ok(())
    }
}

/// The document: `{"departments": [...], "users": [...]}`, either left out.
impl<'de> serde::de::DeserializeSeed<'de> for &mut Records<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for &mut Records<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object with `departments` and `users`")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        use serde::de::Error;
        const KEYS: &[&str] = &["departments", "users"];
        let mut done = [false; 2];
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let Some(k) = KEYS.iter().position(|x| *x == key) else { return Err(A::Error::unknown_field(&key, KEYS)) };
            if std::mem::replace(&mut done[k], true) {
                return Err(A::Error::duplicate_field(KEYS[k]));
            }
            map.next_value_seed(List { records: &mut *self, users: k == 1 })?;
        }
        Ok(())
    }
}

/// One list of the document, each record mapped as it is read.
struct List<'r, 'm> {
    records: &'r mut Records<'m>,
    users: bool,
}

impl<'de> serde::de::DeserializeSeed<'de> for List<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for List<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a list of records")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        while let Some(raw) = seq.next_element::<Box<RawValue>>()? {
            let raw = raw.get().as_bytes();
            let r = if self.users {
                self.records.user(i, raw, serde_json::from_slice(raw))
            } else {
                self.records.department(i, raw, serde_json::from_slice(raw))
            };
            if let Err(e) = r {
                let said = e.to_string();
                self.records.failed = Some(e);
                return Err(serde::de::Error::custom(said));
            }
            i += 1;
        }
        Ok(())
    }
}

/// Parse and check a document. Errors name the offending entry.
#[cfg(test)]
pub fn parse(bytes: &[u8]) -> Result<Snapshot, FormatError> {
    parse_mapped(bytes, &crate::mapping::Mapping::default())
}

/// A record as JSON, for `[mapping]`'s expressions (only when it has some).
fn as_value(mapping: &crate::mapping::Mapping, raw: &[u8]) -> serde_json::Value {
    if mapping.is_empty() { serde_json::Value::Null } else { serde_json::from_slice(raw).unwrap_or_default() }
}

/// [`parse`], with the fields `mapping` sets.
pub fn parse_mapped(bytes: &[u8], mapping: &crate::mapping::Mapping) -> Result<Snapshot, FormatError> {
    parse_reader(std::io::Cursor::new(bytes), mapping)
}

/// [`parse_mapped`], reading the document as it parses it: one record's
/// text at a time is in memory, never the whole document's beside the
/// records made from it. The plain shape is read by `json_lists`; anything
/// else (or a record whose text does not parse as JSON) is read again from
/// the start by serde_json's reader, whose answer (and error) stands.
pub fn parse_reader(mut read: impl std::io::Read + std::io::Seek, mapping: &crate::mapping::Mapping) -> Result<Snapshot, FormatError> {
    use crate::json_lists::Stop;
    let io = serde_json::Error::io;
    // Windows tools (Excel, PowerShell) start UTF-8 files with a BOM.
    let mut bom = [0; 3];
    let start = match read.read_exact(&mut bom) {
        Ok(()) if bom == *b"\xEF\xBB\xBF" => 3,
        Ok(()) => 0,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
        Err(e) => return Err(io(e).into()),
    };
    read.seek(std::io::SeekFrom::Start(start)).map_err(io)?;
    let mut records = Records::new(mapping);
    let fast = crate::json_lists::read(&mut read, &["departments", "users"], |list, i, el| {
        let unreadable = records.snap.unreadable.len();
        // Parsed, and its text found, before anything is kept: `read` asks again for more text.
        if list == 1 {
            let parsed = el.parse()?;
            records.user(i, el.text()?, parsed)
        } else {
            let parsed = el.parse()?;
            records.department(i, el.text()?, parsed)
        }
        .map_err(Stop::Err)?;
        // A record that cannot be read may be one that is not JSON at all:
        // that fails the whole document, as serde_json's read of it says.
        if records.snap.unreadable.len() > unreadable && serde_json::from_slice::<serde::de::IgnoredAny>(el.text()?).is_err() {
            return Err(Stop::Unusual);
        }
        Ok(())
    });
    match fast {
        Ok(_) => {}
        Err(Stop::Err(e)) => return Err(e),
        Err(Stop::Io(e)) => return Err(io(e).into()),
        // `read` asks for more itself: it never returns `More`.
        Err(Stop::Unusual | Stop::More) => {
            read.seek(std::io::SeekFrom::Start(start)).map_err(io)?;
            records = Records::new(mapping);
            records.read_all(read)?;
        }
    }
    Ok(finished(records.snap, mapping))
}

/// The document read by serde_json's reader alone (the way an unusual one
/// is read), for tests to hold the fast path to.
#[cfg(test)]
pub fn parse_reference(bytes: &[u8]) -> Result<Snapshot, FormatError> {
    let mapping = crate::mapping::Mapping::default();
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut records = Records::new(&mapping);
    records.read_all(bytes)?;
    Ok(finished(records.snap, &mapping))
}

/// A read snapshot, held at its size and checked as a whole.
fn finished(mut snap: Snapshot, mapping: &crate::mapping::Mapping) -> Snapshot {
    // The lists grew by doubling: up to a third of them empty room, held
    // through the whole run.
    snap.users.shrink_to_fit();
    snap.departments.shrink_to_fit();
    // A document is the whole truth, but an expression that gives nothing
    // for anyone is more likely a typo than everyone's email gone.
    for key in mapping.withhold_all_empty(&mut snap.users) {
        tracing::warn!(
            field = key,
            "[mapping.users] {key} gave nothing for every user: withheld (the target's values are kept); check the expression"
        );
    }
    snap
}
