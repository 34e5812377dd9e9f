//! What the Entra source keeps between runs, how a delta round changes it,
//! and the snapshot it makes. Pure: no I/O.

use super::DepartmentsFrom;
use super::api;
use crate::model::{Department, Kind, Snapshot, SourceId, Unreadable, User, UserField};
use crate::sources::saas::wire::{Item, Text, invalid, without_id};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The kept state's format; another version is ignored (a full fetch follows).
pub const VERSION: u32 = 2;

/// A group (or administrative unit) and its direct members.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct GroupState {
    pub name: Option<String>,
    pub security_enabled: Option<bool>,
    pub users: BTreeSet<String>,
    pub groups: BTreeSet<String>,
}

/// What the source keeps between runs (in the mirror, as JSON).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct State {
    pub version: u32,
    /// Every user read, by id (soft-deleted ones carry `@removed`).
    pub users: BTreeMap<String, api::User>,
    /// Groups or administrative units, by id.
    pub groups: BTreeMap<String, GroupState>,
    /// Where the next users delta round starts.
    pub users_delta: Option<String>,
    /// Where the next groups delta round starts (groups without a filter).
    pub groups_delta: Option<String>,
    /// When the last full fetch was (Unix seconds).
    pub full_at: i64,
    /// The users' `$select` of that fetch (empty: orgsync's own, kept
    /// before `user_properties` existed).
    #[serde(default)]
    pub select: String,
}

fn flat<T: Clone>(v: &Option<Option<T>>) -> Option<T> {
    v.clone().flatten()
}

fn text(v: &Option<Option<Text>>) -> Option<String> {
    flat(v).and_then(|t| t.get())
}

/// A user record (from a list or a delta round) into the state; the
/// unreadable ones are returned.
pub fn apply_user(state: &mut State, item: Item<api::User>) -> Option<Unreadable> {
    let u = match item {
        Item::Ok(u, ..) => u,
        Item::Bad(b) => return Some(b.unreadable(Kind::User, "id", &["userPrincipalName", "mail", "displayName"])),
    };
    let Some(id) = u.id.as_ref().and_then(Text::get) else {
        let hints = [("userPrincipalName", text(&u.user_principal_name)), ("displayName", text(&u.display_name))];
        return Some(without_id(Kind::User, "id", &hints));
    };
    match u.removed.as_ref().and_then(|r| r.reason.as_deref()) {
        // Permanently deleted: gone from the source.
        Some("deleted") => {
            state.users.remove(&id);
        }
        _ => match state.users.get_mut(&id) {
            Some(have) => have.merge(u),
            None => {
                state.users.insert(id, u);
            }
        },
    }
    None
}

/// A group record of a groups delta round (or its initial round) into the state.
pub fn apply_group(state: &mut State, item: Item<api::Group>) -> Option<Unreadable> {
    let g = match item {
        Item::Ok(g, ..) => g,
        Item::Bad(b) => return Some(b.unreadable(Kind::Department, "id", &["displayName"])),
    };
    let Some(id) = g.id.as_ref().and_then(Text::get) else {
        return Some(without_id(Kind::Department, "id", &[("displayName", text(&g.display_name))]));
    };
    if g.removed.is_some() {
        state.groups.remove(&id);
        for other in state.groups.values_mut() {
            other.groups.remove(&id);
        }
        return None;
    }
    let have = state.groups.entry(id).or_default();
    if let Some(name) = g.display_name {
        have.name = name.and_then(|t| t.get());
    }
    if let Some(s) = g.security_enabled {
        have.security_enabled = s;
    }
    for m in g.members_delta {
        let Some(mid) = m.id.as_ref().and_then(Text::get) else { continue };
        let set = if m.is_user() {
            &mut have.users
        } else if m.is_group() {
            &mut have.groups
        } else {
            continue;
        };
        if m.removed.is_some() {
            set.remove(&mid);
        } else {
            set.insert(mid);
        }
    }
    None
}

/// The snapshot the state makes.
pub fn snapshot(state: &State, from: DepartmentsFrom, unreadable: Vec<Unreadable>, m: &crate::mapping::Mapping) -> Snapshot {
    let mut unreadable = unreadable;
    let skip: BTreeSet<String> = unreadable.iter().filter_map(|u| u.source_id.as_ref()).map(|s| s.0.clone()).collect();
    // Departments, and each user's, by department id.
    let mut departments = Vec::new();
    let mut member_of: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    match from {
        DepartmentsFrom::DepartmentAttribute => {
            let names: BTreeSet<String> = state.users.values().filter_map(|u| text(&u.department)).collect();
            departments = names
                .into_iter()
                .map(|n| Department { source_id: SourceId(n.clone()), parent_id: None, name: n, order: 0, leader_ids: Vec::new() })
                .collect();
        }
        DepartmentsFrom::Groups | DepartmentsFrom::AdministrativeUnits => {
            // Groups are departments when security-enabled (administrative
            // units always); a department nested under two is not placed.
            let is_dept = |g: &GroupState| from == DepartmentsFrom::AdministrativeUnits || g.security_enabled != Some(false);
            let depts: BTreeMap<&str, &GroupState> =
                state.groups.iter().filter(|(_, g)| is_dept(g)).map(|(id, g)| (id.as_str(), g)).collect();
            let mut parents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for (id, g) in &depts {
                for child in &g.groups {
                    if depts.contains_key(child.as_str()) {
                        parents.entry(child.as_str()).or_default().push(id);
                    }
                }
            }
            for (id, g) in &depts {
                let source_id = SourceId((*id).to_owned());
                let parent = match parents.get(id).map(Vec::as_slice) {
                    None | Some([]) => None,
                    Some([one]) => Some(SourceId((*one).to_owned())),
                    Some(several) => {
                        unreadable.push(invalid(
                            Kind::Department,
                            source_id,
                            &format!("a member of several department groups ({}): a department has one parent", several.join(", ")),
                        ));
                        continue;
                    }
                };
                let Some(name) = g.name.clone() else {
                    unreadable.push(invalid(Kind::Department, source_id, "no displayName"));
                    continue;
                };
                departments.push(Department { source_id, parent_id: parent, name, order: 0, leader_ids: Vec::new() });
                for u in &g.users {
                    member_of.entry(u.as_str()).or_default().push((*id).to_owned());
                }
            }
        }
    }
    let mut users = Vec::with_capacity(state.users.len());
    for (id, u) in state.users.iter().filter(|(id, _)| !skip.contains(*id)) {
        let department_ids: Vec<SourceId> = match from {
            DepartmentsFrom::DepartmentAttribute => text(&u.department).into_iter().map(SourceId).collect(),
            _ => member_of.get(id.as_str()).into_iter().flatten().map(|d| SourceId(d.clone())).collect(),
        };
        let record = if m.is_empty() { serde_json::Value::Null } else { serde_json::to_value(u).unwrap_or_default() };
        match crate::sources::mapped(m, record, Ok(user(id, u, department_ids))) {
            Ok(u) => users.push(u),
            Err(e) => unreadable.push(e),
        }
    }
    Snapshot { departments, users, scoped: true, unreadable, ..Snapshot::default() }
}

/// One kept user as the model has it: soft-deleted or disabled is inactive.
fn user(id: &str, u: &api::User, department_ids: Vec<SourceId>) -> User {
    let mobile = text(&u.mobile_phone).or_else(|| flat(&u.business_phones).and_then(|p| p.first().and_then(Text::get)));
    let mut absent: Vec<UserField> = [
        (UserField::Name, u.display_name.is_none()),
        (UserField::Email, u.mail.is_none()),
        (UserField::Mobile, u.mobile_phone.is_none() && u.business_phones.is_none()),
        (UserField::EmployeeNo, u.employee_id.is_none()),
        (UserField::Title, u.job_title.is_none()),
        (UserField::Manager, u.manager.is_none()),
    ]
    .into_iter()
    .filter_map(|(f, missing)| missing.then_some(f))
    .collect();
    // Graph has no nickname orgsync reads.
    absent.push(UserField::Nickname);
    User {
        source_id: SourceId(id.to_owned()),
        username: text(&u.user_principal_name),
        name: text(&u.display_name),
        email: text(&u.mail),
        mobile,
        employee_no: text(&u.employee_id),
        nickname: None,
        title: text(&u.job_title),
        department_ids,
        active: flat(&u.account_enabled) != Some(false) && u.removed.is_none(),
        manager_id: flat(&u.manager).and_then(|m| m.id).and_then(|t| t.get()).map(SourceId),
        attributes: Default::default(),
        absent,
    }
}
