//! One dingtalk record -> the model; a record that does not map is an
//! `Unreadable`, returned beside the others, never dropped.

use super::*;

/// One listed user. Departments are sorted by department order (smaller
/// first; the roots, which are not departments, last), so the primary is
/// the first by order.
pub(super) fn user(u: &Value, user_id_type: &str, order: &HashMap<&str, i64>) -> Result<User, Unreadable> {
    let r = Record::new(u);
    let Some(id) = r.text(user_id_type) else {
        return Err(without_id(Kind::User, u, user_id_type, &["name", "userid", "unionid", "job_number"]));
    };
    let s = |k: &str| r.text(k);
    let mut depts: Vec<String> = u["dept_id_list"].as_array().into_iter().flatten().filter_map(text).collect();
    depts.sort_by_key(|d| order.get(d.as_str()).copied().unwrap_or(i64::MAX));
    let mobile = s("mobile").map(|m| match s("state_code") {
        Some(cc) if !m.starts_with('+') => format!("+{cc} {m}"),
        _ => m,
    });
    let user = User {
        source_id: SourceId(id),
        username: s("userid"),
        name: s("name"),
        email: s("org_email").or_else(|| s("email")),
        mobile,
        employee_no: s("job_number"),
        nickname: None,
        title: s("title"),
        department_ids: depts.into_iter().map(SourceId).collect(),
        active: true,
        // Email and mobile need field permissions; DingTalk has no nickname.
        absent: absent_fields(
            u,
            &[
                (UserField::Name, &["name"]),
                (UserField::Email, &["org_email", "email"]),
                (UserField::Mobile, &["mobile"]),
                (UserField::EmployeeNo, &["job_number"]),
                (UserField::Nickname, &[]),
                (UserField::Title, &["title"]),
            ],
        ),
    };
    r.finish(Kind::User, &user.source_id)?;
    Ok(user)
}
