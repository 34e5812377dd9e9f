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

    /// What templates see of a user: `user.manager_id` is the manager's
    /// target id, `user.attributes` the extra attributes by name (none: clear).
    pub(super) fn user_ctx(spec: &UserSpec, manager: Option<&TargetId>) -> Value {
        json!({
            "external_id": spec.external_id, "username": spec.username, "name": spec.name, "email": spec.email,
            "mobile": spec.mobile, "employee_no": spec.employee_no, "nickname": spec.nickname, "title": spec.title,
            "department": spec.department, "active": spec.active, "manager_id": manager, "attributes": Self::attributes_ctx(spec),
        })
    }

    /// The extra attributes to write, with those the update leaves as the
    /// account has them (a template that writes the whole user keeps them).
    fn attributes_ctx(spec: &UserSpec) -> std::collections::BTreeMap<String, Option<String>> {
        let mut all: std::collections::BTreeMap<String, Option<String>> =
            spec.holds_attributes.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
        all.extend(spec.attributes.clone());
        all
    }

    /// The extra attributes a listed user holds: under the `attributes`
    /// field's object, by name (a list gives its first value).
    pub(super) fn extras_of(&self, item: &Value) -> std::collections::BTreeMap<String, String> {
        let Some(holder) = self.c.users.field("attributes").and_then(|p| p.all(item).first().copied()) else { return Default::default() };
        self.extras
            .iter()
            .filter_map(|name| {
                let v = match holder.get(name)? {
                    Value::Array(a) => a.first()?.clone(),
                    v => v.clone(),
                };
                let text = match v {
                    Value::String(s) => s,
                    Value::Null => return None,
                    other => other.to_string(),
                };
                Some((name.clone(), text)).filter(|(_, t)| !t.trim().is_empty())
            })
            .collect()
    }
}
