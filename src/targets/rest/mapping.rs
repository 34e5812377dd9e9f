//! Model <-> the API's JSON: what the templates see of a user or a
//! department, and the id an answer gives.

use super::*;

impl RestTarget {
    /// The values every template sees.
    pub(super) fn ctx(&self, extra: Value) -> Value {
        let mut ctx = json!({"params": self.c.params, "base_url": self.c.base_url.as_str().trim_end_matches('/')});
        if let (Value::Object(m), Value::Object(e)) = (&mut ctx, extra) {
            m.extend(e);
        }
        ctx
    }

    pub(super) fn render(&self, name: &str, ctx: &Value) -> Result<String, TargetError> {
        self.c.templates.render(name, ctx).map_err(TargetError::Template)
    }

    pub(super) fn id_of(&self, req: &Request, a: &Answer) -> Result<TargetId, TargetError> {
        let m = method_name(&req.method);
        let id = match &req.id {
            Some(IdFrom::Location) => a
                .headers
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| l.trim_end_matches('/').rsplit('/').next())
                .map(str::to_owned),
            Some(IdFrom::Path(p)) => p.text(&a.body),
            None => None,
        };
        id.filter(|i| !i.is_empty()).map(TargetId).ok_or_else(|| TargetError::Decode {
            method: m,
            path: req.name.clone(),
            message: "no id in the answer (see the operation's `id`)".into(),
        })
    }

    pub(super) fn user_ctx(spec: &UserSpec) -> Value {
        json!({
            "external_id": spec.external_id, "username": spec.username, "name": spec.name, "email": spec.email,
            "mobile": spec.mobile, "employee_no": spec.employee_no, "nickname": spec.nickname, "title": spec.title,
            "department": spec.department, "active": spec.active,
        })
    }
}
