//! One feishu record -> the model; a record that does not map is an
//! `Unreadable`, returned beside the others, never dropped.

use super::*;

/// Users listed once per department -> one user per id, departments merged,
/// the primary (`orders[].is_primary_dept`) first.
/// Users listed per department -> one user per id; the records that do not
/// map are returned beside them, never dropped.
pub fn merge_users(items: impl IntoIterator<Item = Value>, user_id_type: &str) -> (Vec<User>, Vec<Unreadable>) {
    let (users, unreadable) = split(items.into_iter().map(|u| user(&u, user_id_type)));
    (crate::source::merge_by_id(users), unreadable)
}

pub(super) fn user(u: &Value, user_id_type: &str) -> Result<User, Unreadable> {
    let r = Record::new(u);
    let Some(id) = r.text(user_id_type) else {
        return Err(without_id(Kind::User, u, user_id_type, &["name", "open_id", "union_id", "user_id", "employee_no"]));
    };
    let mut depts: Vec<String> = u["department_ids"].as_array().into_iter().flatten().filter_map(text).collect();
    let primary = u["orders"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["is_primary_dept"] == true)
        .and_then(|o| o.get("department_id").and_then(text));
    if let Some(p) = primary {
        depts.retain(|d| *d != p);
        depts.insert(0, p);
    }
    let s = |k: &str| r.text(k);
    let status = &u["status"];
    let inactive = status["is_frozen"] == true || status["is_resigned"] == true;
    // Fields the app has no scope for are left out of the record.
    let mut absent = absent_fields(
        u,
        &[
            (UserField::Name, &["name"]),
            (UserField::Email, &["email", "enterprise_email"]),
            (UserField::Mobile, &["mobile"]),
            (UserField::EmployeeNo, &["employee_no"]),
            (UserField::Nickname, &["nickname", "en_name"]),
            (UserField::Title, &["job_title"]),
        ],
    );
    // A mobile the user hides from the app says nothing about the number.
    if u["mobile_visible"] == false && !absent.contains(&UserField::Mobile) {
        absent.push(UserField::Mobile);
    }
    let user = User {
        source_id: SourceId(id),
        username: s("user_id").or_else(|| s("email")),
        name: s("name"),
        email: s("email").or_else(|| s("enterprise_email")),
        mobile: s("mobile").filter(|_| u["mobile_visible"] != false),
        employee_no: s("employee_no"),
        nickname: s("nickname").or_else(|| s("en_name")),
        title: s("job_title"),
        department_ids: depts.into_iter().map(SourceId).collect(),
        active: !inactive,
        absent,
    };
    r.finish(Kind::User, &user.source_id)?;
    Ok(user)
}
