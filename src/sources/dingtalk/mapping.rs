//! DingTalk records -> the model; a record that does not map is an
//! `Unreadable`, returned beside the others, never dropped.

use super::api;
use crate::mapping::Mapping;
use crate::model::{Department, Kind, SourceId, Unreadable, User, UserField};
use crate::sources::saas::wire::{Item, absent_fields, invalid, text, without_id};
use crate::sources::{mapped, mapped_department};
use std::collections::HashMap;

/// One listed user. Departments are sorted by department order (smaller
/// first; the roots, which are not departments, last), so the primary is
/// the first by order.
pub(super) fn user(u: Item<api::User>, user_id_type: &str, order: &HashMap<&str, i64>, m: &Mapping) -> Result<User, Unreadable> {
    let (u, raw) = match u {
        Item::Ok(u, raw) => (u, raw),
        Item::Bad(b) => return Err(b.unreadable(Kind::User, user_id_type, &["name", "userid", "unionid", "job_number"])),
    };
    let Some(id) = text(u.id(user_id_type)) else {
        let hints = [("name", &u.name), ("userid", &u.userid), ("unionid", &u.unionid), ("job_number", &u.job_number)];
        return Err(without_id(Kind::User, user_id_type, &hints.map(|(k, v)| (k, text(v)))));
    };
    let mut depts: Vec<String> = u.dept_id_list.iter().filter_map(|d| d.get()).collect();
    depts.sort_by_key(|d| order.get(d.as_str()).copied().unwrap_or(i64::MAX));
    let mobile = text(&u.mobile).map(|m| match text(&u.state_code) {
        Some(cc) if !m.starts_with('+') => format!("+{cc} {m}"),
        _ => m,
    });
    mapped(
        m,
        raw,
        Ok(User {
            source_id: SourceId(id),
            username: text(&u.userid),
            name: text(&u.name),
            email: text(&u.org_email).or_else(|| text(&u.email)),
            mobile,
            employee_no: text(&u.job_number),
            nickname: None,
            title: text(&u.title),
            department_ids: depts.into_iter().map(SourceId).collect(),
            active: true,
            // Email and mobile need field permissions; DingTalk has no nickname.
            manager_id: text(&u.manager_userid).map(SourceId),
            attributes: Default::default(),
            absent: absent_fields(&[
                (UserField::Name, &[&u.name]),
                (UserField::Email, &[&u.org_email, &u.email]),
                (UserField::Mobile, &[&u.mobile]),
                (UserField::EmployeeNo, &[&u.job_number]),
                (UserField::Nickname, &[]),
                (UserField::Title, &[&u.title]),
                (UserField::Manager, &[&u.manager_userid]),
            ]),
        }),
    )
}

/// One department read by `department/get`.
pub(super) fn department(id: i64, parent: Option<i64>, d: Item<api::Department>, m: &Mapping) -> Result<Department, Unreadable> {
    let source_id = SourceId(id.to_string());
    let (d, raw) = match d {
        Item::Ok(d, raw) => (d, raw),
        Item::Bad(b) => return Err(invalid(Kind::Department, source_id, &b.problem)),
    };
    let Some(name) = text(&d.name).or_else(|| m.names_departments().then(String::new)) else {
        return Err(invalid(Kind::Department, source_id, "no name"));
    };
    mapped_department(
        m,
        raw,
        Ok(Department {
            source_id,
            parent_id: parent.map(|p| SourceId(p.to_string())),
            name,
            order: text(&d.order).and_then(|o| o.parse().ok()).unwrap_or(0),
            leader_ids: d.dept_manager_userid_list.iter().flatten().filter_map(|l| l.get()).map(SourceId).collect(),
        }),
    )
}
