//! WeLink records -> the model; a record that does not map is an
//! `Unreadable`, returned beside the others, never dropped.

use super::api;
use crate::mapping::Mapping;
use crate::model::{Department, Kind, SourceId, Unreadable, User, UserField};
use crate::sources::saas::wire::{Item, absent_fields, invalid, text, without_id};
use crate::sources::{mapped, mapped_department};

/// `+86-15811847236` -> `+8615811847236` (E.164); a number without a
/// country code keeps its digits.
pub fn mobile(raw: &str) -> String {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    if raw.trim_start().starts_with('+') { format!("+{digits}") } else { digits }
}

/// One user listed in department `listed`: its own `deptCode` is the
/// primary, the listing department (when another) follows.
pub(super) fn user(u: Item<api::User>, listed: &str, m: &Mapping) -> Result<User, Unreadable> {
    let (u, raw) = match u {
        Item::Ok(u, raw) => (u, raw),
        Item::Bad(b) => return Err(b.unreadable(Kind::User, "userId", &["userNameCn", "userNameEn", "corpUserId"])),
    };
    let Some(id) = text(&u.user_id) else {
        let hints = [("userNameCn", &u.user_name_cn), ("userNameEn", &u.user_name_en), ("corpUserId", &u.corp_user_id)];
        return Err(without_id(Kind::User, "userId", &hints.map(|(k, v)| (k, text(v)))));
    };
    let mut departments: Vec<SourceId> = text(&u.dept_code).into_iter().map(SourceId).collect();
    if !departments.iter().any(|d| d.as_str() == listed) {
        departments.push(SourceId(listed.to_owned()));
    }
    mapped(
        m,
        raw,
        Ok(User {
            source_id: SourceId(id.clone()),
            username: Some(id),
            name: text(&u.user_name_cn).or_else(|| text(&u.user_name_en)),
            email: text(&u.user_email),
            mobile: text(&u.mobile_number).map(|m| mobile(&m)),
            employee_no: text(&u.corp_user_id),
            nickname: text(&u.user_name_en),
            title: text(&u.position),
            department_ids: departments,
            active: text(&u.user_status).as_deref() == Some("3"),
            manager_id: None,
            attributes: Default::default(),
            absent: absent_fields(&[
                (UserField::Name, &[&u.user_name_cn, &u.user_name_en]),
                (UserField::Email, &[&u.user_email]),
                (UserField::Mobile, &[&u.mobile_number]),
                (UserField::EmployeeNo, &[&u.corp_user_id]),
                (UserField::Nickname, &[&u.user_name_en]),
                (UserField::Title, &[&u.position]),
                // WeLink's user APIs give no manager.
                (UserField::Manager, &[]),
            ]),
        }),
    )
}

/// One department: a parent that is a root (or `0`) is none.
pub(super) fn department(d: Item<api::Department>, roots: &[String], m: &Mapping) -> Result<Department, Unreadable> {
    let (d, raw) = match d {
        Item::Ok(d, raw) => (d, raw),
        Item::Bad(b) => return Err(b.unreadable(Kind::Department, "deptCode", &["deptNameCn", "deptNameEn"])),
    };
    let Some(code) = text(&d.dept_code) else {
        let hints = [("deptNameCn", text(&d.dept_name_cn)), ("deptNameEn", text(&d.dept_name_en))];
        return Err(without_id(Kind::Department, "deptCode", &hints));
    };
    let source_id = SourceId(code);
    let Some(name) = text(&d.dept_name_cn).or_else(|| text(&d.dept_name_en)).or_else(|| m.names_departments().then(String::new)) else {
        return Err(invalid(Kind::Department, source_id, "no name"));
    };
    mapped_department(
        m,
        raw,
        Ok(Department {
            source_id,
            parent_id: text(&d.father_code).filter(|p| p != "0" && !roots.contains(p)).map(SourceId),
            name,
            order: text(&d.order_no).and_then(|o| o.parse().ok()).unwrap_or(0),
            leader_ids: Vec::new(),
        }),
    )
}
