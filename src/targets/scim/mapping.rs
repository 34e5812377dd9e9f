//! SCIM resources <-> model: request bodies, PATCH operations, and the
//! target snapshot built from listed Users and Groups.

use crate::model::{TargetDepartment, TargetId, TargetSnapshot, TargetUser};
use crate::reconcile::{Change, DeptSpec, Field, FieldSet, UserSpec};
#[cfg(test)]
use crate::targets::TargetError;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};

pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const EMPLOYEE_NUMBER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber";

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_owned).filter(|x| !x.trim().is_empty())
}

/// The one value of a multi-valued attribute we manage: primary, else of `ty`, else first.
fn pick(v: &Value, attr: &str, ty: &str) -> Option<String> {
    let items = v.get(attr)?.as_array()?;
    let by = |f: &dyn Fn(&Value) -> bool| items.iter().find(|i| f(i)).and_then(|i| s(i, "value"));
    by(&|i| i.get("primary").and_then(Value::as_bool) == Some(true))
        .or_else(|| by(&|i| i.get("type").and_then(Value::as_str) == Some(ty)))
        .or_else(|| items.first().and_then(|i| s(i, "value")))
}

/// An attribute's value at a SCIM path (`userType`, `urn:…:costCenter`), as text.
fn at_path(v: &Value, path: &str) -> Option<String> {
    // Attribute names are case-insensitive (RFC 7643 2.1).
    let get = |v: &'_ Value, k: &str| -> Option<Value> {
        v.as_object()?.iter().find(|(name, _)| name.eq_ignore_ascii_case(k)).map(|(_, x)| x.clone())
    };
    let found = match path.rsplit_once(':') {
        Some((schema, attr)) => get(&get(v, schema)?, attr)?,
        None => get(v, path)?,
    };
    match found {
        Value::String(s) => Some(s).filter(|s| !s.trim().is_empty()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A listed User as the model sees it; `extras` are the extra attributes'
/// (name, path).
pub fn user_from(v: &Value, extras: &[(String, String)]) -> Option<TargetUser> {
    static NONE: Value = Value::Null;
    let ent = v.get(ENTERPRISE).unwrap_or(&NONE);
    Some(TargetUser {
        id: TargetId(s(v, "id")?),
        external_id: s(v, "externalId"),
        username: s(v, "userName"),
        name: s(v, "displayName").or_else(|| v.get("name").and_then(|n| s(n, "formatted"))),
        email: pick(v, "emails", "work"),
        mobile: pick(v, "phoneNumbers", "mobile"),
        employee_no: s(ent, "employeeNumber"),
        nickname: s(v, "nickName"),
        title: s(v, "title"),
        department: s(ent, "department"),
        departments: Vec::new(),
        active: v.get("active").and_then(Value::as_bool).unwrap_or(true),
        manager: ent.get("manager").and_then(|m| s(m, "value")).map(TargetId),
        attributes: extras.iter().filter_map(|(name, path)| Some((name.clone(), at_path(v, path)?))).collect(),
    })
}

/// What a group member is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Member {
    User,
    Group,
}

/// A member's kind as the member says it: its `type`, else its `$ref`
/// path (`…/Users/…`, `…/Groups/…`).
fn said_kind(m: &Value) -> Option<Member> {
    let by_type = m.get("type").and_then(Value::as_str).and_then(|t| match t.to_ascii_lowercase().as_str() {
        "user" => Some(Member::User),
        "group" => Some(Member::Group),
        _ => None,
    });
    by_type.or_else(|| {
        let r = m.get("$ref").and_then(Value::as_str)?;
        if r.contains("/Users/") {
            Some(Member::User)
        } else if r.contains("/Groups/") {
            Some(Member::Group)
        } else {
            None
        }
    })
}

/// A listed group, as much as the snapshot needs of it.
#[derive(Debug)]
pub struct ListedGroup {
    pub id: String,
    pub external_id: Option<String>,
    pub name: String,
    /// Member ids, with the kind the member says it is.
    pub members: Vec<(String, Option<Member>)>,
}

/// A listed group read from its resource; `None` without an id.
pub fn group_from(v: &Value) -> Option<ListedGroup> {
    Some(ListedGroup {
        id: s(v, "id")?,
        external_id: s(v, "externalId"),
        name: s(v, "displayName").unwrap_or_default(),
        members: {
            // At the list's size: 10,000 groups' lists grown by doubling
            // hold a third of them empty.
            let listed = v.get("members").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
            let mut members = Vec::with_capacity(listed.len());
            members.extend(listed.iter().filter_map(|m| Some((s(m, "value")?, said_kind(m)))));
            members
        },
    })
}

/// Build the snapshot from resources (see [`snapshot_from`]).
#[cfg(test)]
pub fn snapshot(users: &[Value], groups: &[Value]) -> Result<TargetSnapshot, TargetError> {
    let users = users.iter().map(|u| user_from(u, &[]).ok_or_else(|| decode("a User without an id"))).collect::<Result<Vec<_>, _>>()?;
    let groups = groups.iter().map(|g| group_from(g).ok_or_else(|| decode("a Group without an id"))).collect::<Result<Vec<_>, _>>()?;
    Ok(snapshot_from(users, groups))
}

/// Build the snapshot: group members that are groups are child
/// departments, members that are users are memberships. A member's kind is
/// what it says (`type`, `$ref`), else what the listed ids tell when only
/// one kind has it; an id both a user and a group have (servers whose
/// users and groups share integer ids) is read as neither. Members that are
/// neither a listed user nor a listed group (dangling references), or whose
/// kind cannot be told, are left out.
pub fn snapshot_from(users: Vec<TargetUser>, groups: Vec<ListedGroup>) -> TargetSnapshot {
    let mut snap = TargetSnapshot { users, departments: Vec::with_capacity(groups.len()) };
    let group_ids: HashSet<&str> = groups.iter().map(|g| g.id.as_str()).collect();
    let uidx: HashMap<&str, usize> = snap.users.iter().enumerate().map(|(i, u)| (u.id.as_str(), i)).collect();
    let mut parent_of: HashMap<&str, &str> = HashMap::new();
    let mut memberships: Vec<(usize, &str)> = Vec::new();
    let mut untold = 0usize;
    for g in &groups {
        for (mid, said) in &g.members {
            let kind = said.or(match (uidx.contains_key(mid.as_str()), group_ids.contains(mid.as_str())) {
                (true, false) => Some(Member::User),
                (false, true) => Some(Member::Group),
                _ => None,
            });
            match kind {
                Some(Member::Group) if group_ids.contains(mid.as_str()) => {
                    parent_of.entry(mid.as_str()).or_insert(g.id.as_str());
                }
                Some(Member::User) => {
                    if let Some(&i) = uidx.get(mid.as_str()) {
                        memberships.push((i, g.id.as_str()));
                    }
                }
                Some(Member::Group) => {}
                None => untold += 1,
            }
        }
    }
    if untold > 0 {
        tracing::warn!(
            members = untold,
            "Group members whose kind the target does not say (no type, no $ref, an id both a user and a group have) were left out"
        );
    }
    let parents: HashMap<String, TargetId> = parent_of.into_iter().map(|(c, p)| (c.to_owned(), TargetId(p.to_owned()))).collect();
    drop(uidx);
    // Each user's groups in the order listed, its list made at its size.
    memberships.sort_by_key(|&(i, _)| i);
    for of_one in memberships.chunk_by(|a, b| a.0 == b.0) {
        let departments = &mut snap.users[of_one[0].0].departments;
        departments.reserve_exact(of_one.len());
        departments.extend(of_one.iter().map(|&(_, g)| TargetId(g.to_owned())));
    }
    for g in groups {
        snap.departments.push(TargetDepartment {
            parent: parents.get(&g.id).cloned(),
            id: TargetId(g.id),
            external_id: g.external_id,
            name: g.name,
            leaders: None,
        });
    }
    snap
}

/// Whether a resource has `value` in `attr` (a filter's `attr eq value`,
/// for servers without filters): `userName` and emails compare without
/// case, as RFC 7643 makes them case-insensitive.
pub fn has_value(r: &Value, attr: &str, value: &str) -> bool {
    let eq = |v: &Value, ci: bool| v.as_str().is_some_and(|s| if ci { s.eq_ignore_ascii_case(value) } else { s == value });
    match attr.split_once('.') {
        Some((multi, sub)) if !attr.starts_with("urn:") => r
            .get(multi)
            .and_then(Value::as_array)
            .is_some_and(|items| items.iter().any(|i| i.get(sub).is_some_and(|v| eq(v, multi == "emails")))),
        _ => match attr.strip_prefix(&format!("{ENTERPRISE}:")) {
            Some(ext) => r.get(ENTERPRISE).and_then(|e| e.get(ext)).is_some_and(|v| eq(v, false)),
            None => r.get(attr).is_some_and(|v| eq(v, attr == "userName")),
        },
    }
}

/// The attribute a PATCH operation touches, as errors name it: the
/// enterprise extension's prefix and a value filter are cut off
/// (`emails[type eq "work"].value` -> `emails`).
pub fn attribute_of(op: &Value) -> String {
    let path = op.get("path").and_then(Value::as_str).unwrap_or_default();
    if let Some(ext) = path.strip_prefix(&format!("{ENTERPRISE}:")) {
        return ext.to_owned();
    }
    path.split('[').next().unwrap_or(path).to_owned()
}

#[cfg(test)]
fn decode(message: &str) -> TargetError {
    TargetError::Decode { method: "GET", path: "/".into(), message: message.into() }
}

pub fn group_body(spec: &DeptSpec) -> Value {
    json!({ "schemas": [GROUP], "displayName": spec.name, "externalId": spec.external_id })
}

pub fn group_patch(spec: &DeptSpec, changes: &[Change]) -> Vec<Value> {
    changes
        .iter()
        .filter_map(|c| match c.field {
            Field::Name => Some(json!({"op": "replace", "path": "displayName", "value": spec.name})),
            Field::ExternalId => Some(json!({"op": "replace", "path": "externalId", "value": spec.external_id})),
            _ => None,
        })
        .collect()
}

/// A user's create body, without the fields the server cannot hold (the
/// enterprise extension among them when it is not offered).
pub fn user_body(spec: &UserSpec, unheld: FieldSet, extras: &[(String, String)], manager: Option<&TargetId>) -> Value {
    let mut m = Map::new();
    let enterprise = !unheld.contains(Field::EmployeeNo);
    let mut schemas = vec![USER.to_owned()];
    if enterprise {
        schemas.push(ENTERPRISE.to_owned());
    }
    if let Some(id) = manager.filter(|_| !unheld.contains(Field::Manager)) {
        put_path(&mut m, &mut schemas, &format!("{ENTERPRISE}:manager"), json!({"value": id.as_str()}));
    }
    for (name, path) in extras {
        if let Some(Some(v)) = spec.attributes.get(name) {
            put_path(&mut m, &mut schemas, path, json!(v));
        }
    }
    m.insert("schemas".into(), json!(schemas));
    m.insert("externalId".into(), json!(spec.external_id));
    m.insert("active".into(), json!(spec.active));
    for &f in Field::USER.iter().filter(|f| !unheld.contains(**f)) {
        if let Some((path, v)) = user_value(spec, f) {
            if v.is_null() {
                continue;
            }
            match path.strip_prefix(&format!("{ENTERPRISE}:")) {
                Some(attr) => {
                    let ent = m.entry(ENTERPRISE).or_insert_with(|| json!({}));
                    if let Some(o) = ent.as_object_mut() {
                        o.insert(attr.to_owned(), v);
                    }
                }
                None if path == "displayName" => {
                    m.insert("name".into(), json!({ "formatted": v.clone() }));
                    m.insert(path, v);
                }
                None => {
                    m.insert(path, v);
                }
            }
        }
    }
    Value::Object(m)
}

/// Set `path` (core, or `urn:…:attribute`) in a resource body, its schema listed.
fn put_path(m: &mut Map<String, Value>, schemas: &mut Vec<String>, path: &str, v: Value) {
    match path.rsplit_once(':') {
        Some((schema, attr)) => {
            if !schemas.iter().any(|s| s == schema) {
                schemas.push(schema.to_owned());
            }
            if let Some(o) = m.entry(schema).or_insert_with(|| json!({})).as_object_mut() {
                o.insert(attr.to_owned(), v);
            }
        }
        None => {
            m.insert(path.to_owned(), v);
        }
    }
}

/// (SCIM path, value) of one field; `Value::Null` means remove. `name` also
/// sets `name.formatted` (see `user_patch`).
fn user_value(spec: &UserSpec, field: Field) -> Option<(String, Value)> {
    let opt = |v: &Option<String>| v.as_ref().map_or(Value::Null, |x| json!(x));
    Some(match field {
        Field::ExternalId => ("externalId".into(), json!(spec.external_id)),
        Field::Username => ("userName".into(), opt(&spec.username)),
        Field::Name => ("displayName".into(), opt(&spec.name)),
        Field::Email => {
            ("emails".into(), spec.email.as_ref().map_or(Value::Null, |e| json!([{"value": e, "type": "work", "primary": true}])))
        }
        Field::Mobile => ("phoneNumbers".into(), spec.mobile.as_ref().map_or(Value::Null, |p| json!([{"value": p, "type": "mobile"}]))),
        Field::EmployeeNo => (format!("{ENTERPRISE}:employeeNumber"), opt(&spec.employee_no)),
        Field::Nickname => ("nickName".into(), opt(&spec.nickname)),
        Field::Title => ("title".into(), opt(&spec.title)),
        Field::Department => (format!("{ENTERPRISE}:department"), opt(&spec.department)),
        Field::Active => ("active".into(), json!(spec.active)),
        // Memberships live on the groups; a parent is a department's; the
        // manager and extra attributes need more than the spec (see `user_patch`).
        Field::Departments | Field::Parent | Field::Manager | Field::Attributes | Field::Leaders => return None,
    })
}

/// PATCH operations for exactly these changed fields.
/// The PATCH operations for `fields` (but the unheld), each with the field it carries.
pub fn user_patch(
    spec: &UserSpec,
    fields: &[Field],
    unheld: FieldSet,
    extras: &[(String, String)],
    manager: Option<&TargetId>,
) -> Vec<(Field, Value)> {
    let mut ops = Vec::new();
    let set = |path: &str, v: Option<Value>| match v {
        Some(v) => json!({"op": "replace", "path": path, "value": v}),
        None => json!({"op": "remove", "path": path}),
    };
    if fields.contains(&Field::Manager) && !unheld.contains(Field::Manager) {
        ops.push((Field::Manager, set(&format!("{ENTERPRISE}:manager"), manager.map(|m| json!({"value": m.as_str()})))));
    }
    if fields.contains(&Field::Attributes) {
        for (name, path) in extras {
            if let Some(v) = spec.attributes.get(name) {
                ops.push((Field::Attributes, set(path, v.as_ref().map(|v| json!(v)))));
            }
        }
    }
    for &f in fields.iter().filter(|f| !unheld.contains(**f)) {
        let Some((path, v)) = user_value(spec, f) else { continue };
        let extra = (f == Field::Name).then(|| ("name.formatted".to_owned(), v.clone()));
        for (path, v) in std::iter::once((path, v)).chain(extra) {
            if v.is_null() {
                ops.push((f, json!({"op": "remove", "path": path})));
            } else {
                ops.push((f, json!({"op": "replace", "path": path, "value": v})));
            }
        }
    }
    ops
}
