//! One wecom record -> the model; a record that does not map is an
//! `Unreadable`, returned beside the others, never dropped.

use super::*;

/// One user from `user/get` or `user/list`: `main_department` first.
pub(super) fn user(u: &Value) -> Result<User, Unreadable> {
    let r = Record::new(u);
    let Some(id) = r.text("userid") else { return Err(without_id(Kind::User, u, "userid", &["name", "open_userid", "alias"])) };
    let s = |k: &str| r.text(k);
    let mut depts: Vec<String> = u["department"].as_array().into_iter().flatten().filter_map(text).collect();
    if let Some(main) = u.get("main_department").and_then(text).filter(|m| depts.contains(m)) {
        depts.retain(|d| *d != main);
        depts.insert(0, main);
    }
    let user = User {
        source_id: SourceId(id.clone()),
        username: Some(id),
        name: s("name"),
        email: s("email").or_else(|| s("biz_mail")),
        mobile: s("mobile"),
        employee_no: None,
        nickname: s("alias").or_else(|| s("english_name")),
        title: s("position"),
        department_ids: depts.into_iter().map(SourceId).collect(),
        active: u["status"].as_i64() == Some(1),
        // Apps created after 2022-06-20 receive no email, biz_mail or
        // mobile; WeCom has no employee number field.
        absent: absent_fields(
            u,
            &[
                (UserField::Name, &["name"]),
                (UserField::Email, &["email", "biz_mail"]),
                (UserField::Mobile, &["mobile"]),
                (UserField::EmployeeNo, &[]),
                (UserField::Nickname, &["alias", "english_name"]),
                (UserField::Title, &["position"]),
            ],
        ),
    };
    r.finish(Kind::User, &user.source_id)?;
    Ok(user)
}
