//! Feishu records -> the model; a record that does not map is an
//! `Unreadable`, returned beside the others, never dropped.

use super::api;
use crate::mapping::Mapping;
use crate::model::{Department, Kind, SourceId, Unreadable, User, UserField};
use crate::sources::saas::split;
use crate::sources::saas::wire::{Item, absent_fields, invalid, text, without_id};
use crate::sources::{mapped, mapped_department};

/// Users listed per department -> one user per id, departments merged, the
/// primary (`orders[].is_primary_dept`) first; the records that do not map
/// are returned beside them, never dropped.
pub fn merge_users(items: impl IntoIterator<Item = Item<api::User>>, user_id_type: &str, m: &Mapping) -> (Vec<User>, Vec<Unreadable>) {
    let (users, unreadable) = split(items.into_iter().map(|u| match u {
        Item::Ok(u, raw) => mapped(m, raw, user(u, user_id_type)),
        Item::Bad(b) => Err(b.unreadable(Kind::User, user_id_type, &["name", "open_id", "union_id", "user_id", "employee_no"])),
    }));
    (crate::sources::merge_by_id(users), unreadable)
}

pub(super) fn user(u: api::User, user_id_type: &str) -> Result<User, Unreadable> {
    let Some(id) = text(u.id(user_id_type)) else {
        let hints = [("name", &u.name), ("open_id", &u.open_id), ("union_id", &u.union_id), ("user_id", &u.user_id)];
        return Err(without_id(Kind::User, user_id_type, &hints.map(|(k, v)| (k, text(v)))));
    };
    let mut depts: Vec<String> = u.department_ids.iter().filter_map(|d| d.get()).collect();
    if let Some(p) = u.orders.iter().find(|o| o.is_primary_dept).and_then(|o| text(&o.department_id)) {
        depts.retain(|d| *d != p);
        depts.insert(0, p);
    }
    let inactive = u.status.as_ref().is_some_and(|s| s.is_frozen || s.is_resigned);
    // Fields the app has no scope for are left out of the record.
    let mut absent = absent_fields(&[
        (UserField::Name, &[&u.name]),
        (UserField::Email, &[&u.email, &u.enterprise_email]),
        (UserField::Mobile, &[&u.mobile]),
        (UserField::EmployeeNo, &[&u.employee_no]),
        (UserField::Nickname, &[&u.nickname, &u.en_name]),
        (UserField::Title, &[&u.job_title]),
        (UserField::Manager, &[&u.leader_user_id]),
    ]);
    // A mobile the user hides from the app says nothing about the number.
    let hidden = u.mobile_visible == Some(false);
    if hidden && !absent.contains(&UserField::Mobile) {
        absent.push(UserField::Mobile);
    }
    Ok(User {
        source_id: SourceId(id),
        username: text(&u.user_id).or_else(|| text(&u.email)),
        name: text(&u.name),
        email: text(&u.email).or_else(|| text(&u.enterprise_email)),
        mobile: text(&u.mobile).filter(|_| !hidden),
        employee_no: text(&u.employee_no),
        nickname: text(&u.nickname).or_else(|| text(&u.en_name)),
        title: text(&u.job_title),
        department_ids: depts.into_iter().map(SourceId).collect(),
        active: !inactive,
        manager_id: text(&u.leader_user_id).map(SourceId),
        attributes: Default::default(),
        absent,
    })
}

/// One department under `root`: a parent that is the root (or `0`) is none.
pub(super) fn department(d: Item<api::Department>, id_type: &str, root: &str, m: &Mapping) -> Result<Department, Unreadable> {
    let (d, raw) = match d {
        Item::Ok(d, raw) => (d, raw),
        Item::Bad(b) => return Err(b.unreadable(Kind::Department, id_type, &["name", "open_department_id", "department_id"])),
    };
    let Some(id) = text(d.id(id_type)) else {
        let hints = [("name", &d.name), ("open_department_id", &d.open_department_id), ("department_id", &d.department_id)];
        return Err(without_id(Kind::Department, id_type, &hints.map(|(k, v)| (k, text(v)))));
    };
    let source_id = SourceId(id);
    let Some(name) = text(&d.name).or_else(|| m.names_departments().then(String::new)) else {
        return Err(invalid(Kind::Department, source_id, "no name"));
    };
    mapped_department(
        m,
        raw,
        Ok(Department {
            source_id,
            parent_id: text(&d.parent_department_id).filter(|p| p != "0" && p != root).map(SourceId),
            name,
            order: text(&d.order).and_then(|o| o.parse().ok()).unwrap_or(0),
            leader_ids: text(&d.leader_user_id).map(SourceId).into_iter().collect(),
        }),
    )
}
