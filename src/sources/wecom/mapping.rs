//! WeCom records -> the model; a record that does not map is an
//! `Unreadable`, returned beside the others, never dropped.

use super::api;
use crate::mapping::Mapping;
use crate::model::{Department, Kind, SourceId, Unreadable, User, UserField};
use crate::sources::saas::wire::{Item, Text, absent_fields, invalid, text, without_id};
use crate::sources::{mapped, mapped_department};
use std::collections::HashSet;

/// One user from `user/get` or `user/list`: `main_department` first.
pub(super) fn user(u: Item<api::User>, m: &Mapping) -> Result<User, Unreadable> {
    let (u, raw) = match u {
        Item::Ok(u, raw) => (u, raw),
        Item::Bad(b) => return Err(b.unreadable(Kind::User, "userid", &["name", "open_userid", "alias"])),
    };
    let Some(id) = text(&u.userid) else {
        return Err(without_id(Kind::User, "userid", &[("name", text(&u.name)), ("alias", text(&u.alias))]));
    };
    let mut depts: Vec<String> = u.department.iter().filter_map(|d| d.get()).collect();
    if let Some(main) = text(&u.main_department).filter(|m| depts.contains(m)) {
        depts.retain(|d| *d != main);
        depts.insert(0, main);
    }
    let leaders_listed: Option<Text> = u.direct_leader.as_ref().map(|_| Text::default());
    mapped(
        m,
        raw,
        Ok(User {
            source_id: SourceId(id.clone()),
            username: Some(id),
            name: text(&u.name),
            email: text(&u.email).or_else(|| text(&u.biz_mail)),
            mobile: text(&u.mobile),
            employee_no: None,
            nickname: text(&u.alias).or_else(|| text(&u.english_name)),
            title: text(&u.position),
            department_ids: depts.into_iter().map(SourceId).collect(),
            active: u.status == Some(1),
            // Apps created after 2022-06-20 receive no email, biz_mail or
            // mobile; WeCom has no employee number field.
            manager_id: u.direct_leader.iter().flatten().find_map(|l| l.get()).map(SourceId),
            attributes: Default::default(),
            absent: absent_fields(&[
                // Absent when the record leaves the key out; an empty list is no manager.
                (UserField::Manager, &[&leaders_listed]),
                (UserField::Name, &[&u.name]),
                (UserField::Email, &[&u.email, &u.biz_mail]),
                (UserField::Mobile, &[&u.mobile]),
                (UserField::EmployeeNo, &[]),
                (UserField::Nickname, &[&u.alias, &u.english_name]),
                (UserField::Title, &[&u.position]),
            ]),
        }),
    )
}

/// One department by `id`: a parent that is a root (or 0) is none; WeCom
/// orders larger-first, orgsync smaller-first.
pub(super) fn department(id: i64, d: Item<api::Department>, roots: &HashSet<i64>, m: &Mapping) -> Result<Department, Unreadable> {
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
            parent_id: d.parentid.filter(|p| !roots.contains(p) && *p != 0).map(|p| SourceId(p.to_string())),
            name,
            order: -d.order.unwrap_or(0),
            leader_ids: d.department_leader.iter().flatten().filter_map(|l| l.get()).map(SourceId).collect(),
        }),
    )
}
