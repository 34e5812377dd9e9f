//! A user as LDAP attributes: which attribute holds each field, the RDN,
//! the display name and the object classes.

use super::*;
use crate::reconcile::Change;

impl LdapTarget {
    /// The attribute each changeable field is written to ("" for none).
    pub(super) fn attribute(&self, f: Field) -> &str {
        let a = &self.c.attributes;
        match f {
            Field::Username => &a.username,
            Field::Name => &a.name,
            Field::Email => &a.email,
            Field::Mobile => &a.mobile,
            Field::EmployeeNo => &a.employee_no,
            Field::Nickname => &a.nickname,
            Field::Title => &a.title,
            Field::Department => &a.department,
            Field::ExternalId => &a.external_id,
            Field::Manager => &a.manager,
            // Each extra attribute by its own name (`extras`).
            Field::Departments | Field::Active | Field::Parent | Field::Attributes | Field::Leaders => "",
        }
    }

    pub(super) fn value(spec: &UserSpec, f: Field) -> Option<&str> {
        match f {
            Field::Username => spec.username.as_deref(),
            Field::Name => spec.name.as_deref(),
            Field::Email => spec.email.as_deref(),
            Field::Mobile => spec.mobile.as_deref(),
            Field::EmployeeNo => spec.employee_no.as_deref(),
            Field::Nickname => spec.nickname.as_deref(),
            Field::Title => spec.title.as_deref(),
            Field::Department => spec.department.as_deref(),
            Field::ExternalId => Some(spec.external_id.as_str()),
            // Resolved to a DN when written; the extras by name.
            Field::Departments | Field::Active | Field::Parent | Field::Manager | Field::Attributes | Field::Leaders => None,
        }
        .filter(|v| !v.trim().is_empty())
    }

    /// `cn` and `sn` are required by `person`: the name, else the username.
    pub(super) fn display(spec: &UserSpec) -> Option<&str> {
        Self::value(spec, Field::Name).or(Self::value(spec, Field::Username))
    }

    /// The user's RDN (`uid=jdoe`), from the field written to `user_rdn`.
    pub(super) fn user_rdn(&self, spec: &UserSpec) -> Result<String, TargetError> {
        let r = &self.c.user_rdn;
        let field = [Field::Username, Field::Name, Field::Email, Field::EmployeeNo]
            .into_iter()
            .find(|f| self.attribute(*f).eq_ignore_ascii_case(r))
            .ok_or_else(|| TargetError::InvalidConfig(format!("user_rdn {r} is not written from any field")))?;
        let v =
            Self::value(spec, field).ok_or_else(|| TargetError::Missing(format!("the user has no {field} to name its entry ({r}=...)")))?;
        Ok(rdn(r, v))
    }

    pub(super) fn rdn_field(&self, f: Field) -> bool {
        self.attribute(f).eq_ignore_ascii_case(&self.c.user_rdn)
    }

    /// The modifications that write `changes`' manager (its DN) and extra attributes.
    pub(super) fn reference_mods(&self, spec: &UserSpec, changes: &[Change], manager: Option<&str>) -> Vec<Mod<String>> {
        let mut mods = Vec::new();
        let has = |f: Field| changes.iter().any(|c| c.field == f);
        if has(Field::Manager) && !self.c.attributes.manager.is_empty() {
            mods.push(Mod::Replace(self.c.attributes.manager.clone(), manager.map(one).unwrap_or_default()));
        }
        if has(Field::Attributes) {
            for (name, v) in &spec.attributes {
                mods.push(Mod::Replace(name.clone(), v.as_deref().map(one).unwrap_or_default()));
            }
        }
        mods
    }

    pub(super) fn user_attrs(&self, spec: &UserSpec, manager: Option<&str>) -> Attrs {
        let mut attrs: Attrs = vec![("objectClass".into(), self.c.user_object_classes.iter().cloned().collect())];
        let mut put = |attr: &str, v: &str| {
            if attr.is_empty() {
                return;
            }
            match attrs.iter_mut().find(|(a, _)| a.eq_ignore_ascii_case(attr)) {
                Some((_, vals)) => {
                    vals.insert(v.to_owned());
                }
                None => attrs.push((attr.to_owned(), one(v))),
            }
        };
        for &f in Field::USER {
            if let Some(v) = Self::value(spec, f) {
                put(self.attribute(f), v);
            }
        }
        // cn and sn are required by person.
        if let Some(d) = Self::display(spec) {
            put(&self.c.attributes.surname, d);
            if Self::value(spec, Field::Name).is_none() {
                put(&self.c.attributes.name, d);
            }
        }
        if let (Disable::Attribute { name, value }, false) = (&self.c.disable, spec.active) {
            put(name, value);
        }
        if let Some(dn) = manager {
            put(&self.c.attributes.manager, dn);
        }
        for (name, v) in &spec.attributes {
            if let Some(v) = v {
                put(name, v);
            }
        }
        attrs
    }
}
