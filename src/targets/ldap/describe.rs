//! `sync --dry-run` in LDAP terms: the add / modify / modrdn / delete
//! operations a plan would send, with their DNs. DNs are as the directory
//! holds them now (a department renamed in the same run is shown by its
//! current DN under its other operations).

use super::entries::{dn_parent, first_rdn, rdn};
use super::{Disable, Layout, LdapTarget};
use crate::model::{SourceId, TargetId};
use crate::reconcile::{Field, Op, UserSpec};
use std::collections::HashMap;

impl LdapTarget {
    pub(super) fn operations(&self, ops: &[Op], resolve: &dyn Fn(&SourceId) -> Option<TargetId>) -> Vec<String> {
        let mut planned: HashMap<&SourceId, String> = HashMap::new();
        let known = |id: &TargetId| self.dn_of(id).unwrap_or_else(|_| format!("<{id}>"));
        let mut out = Vec::new();
        let dept = |planned: &HashMap<&SourceId, String>, s: &SourceId| {
            planned.get(s).cloned().or_else(|| resolve(s).map(|t| known(&t))).unwrap_or_else(|| format!("<department {s}>"))
        };
        let naming = if self.c.layout == Layout::OuTree { "ou" } else { "cn" };
        for op in ops {
            match op {
                Op::CreateDepartment { source_id, spec, .. } => {
                    let parent = spec.parent.as_ref().map(|p| dept(&planned, p));
                    let dn = match (self.c.layout, &parent) {
                        (Layout::OuTree, Some(p)) => format!("{},{p}", rdn("ou", &spec.name)),
                        _ => format!("{},{}", rdn(naming, &spec.name), self.c.departments_dn),
                    };
                    out.push(format!("add {dn}"));
                    if let (Layout::Groups, Some(p)) = (self.c.layout, parent) {
                        out.push(format!("modify {p}: add member {dn}"));
                    }
                    planned.insert(source_id, dn);
                }
                Op::UpdateDepartment { target_id, spec, changes, .. } => {
                    let dn = known(target_id);
                    let has = |f| changes.iter().any(|c| c.field == f);
                    if has(Field::Name) || (has(Field::Parent) && self.c.layout == Layout::OuTree) {
                        let superior = match (&spec.parent, self.c.layout) {
                            (Some(p), Layout::OuTree) => dept(&planned, p),
                            _ => self.c.departments_dn.clone(),
                        };
                        let under = if has(Field::Parent) { format!(" under {superior}") } else { String::new() };
                        out.push(format!("modrdn {dn} to {}{under}", rdn(naming, &spec.name)));
                    }
                    if has(Field::Parent) && self.c.layout == Layout::Groups {
                        out.push(format!("modify <old and new parent groups>: move member {dn}"));
                    }
                }
                Op::CreateUser { spec, .. } => {
                    let home = match (self.c.layout, spec.departments.as_ref().and_then(|d| d.first())) {
                        (Layout::OuTree, Some(d)) => dept(&planned, d),
                        _ => self.c.users_dn.clone(),
                    };
                    let r = self.user_rdn(spec).unwrap_or_else(|e| format!("<{e}>"));
                    out.push(format!("add {r},{home}"));
                    if self.c.layout == Layout::Groups {
                        for d in spec.departments.iter().flatten() {
                            out.push(format!("modify {}: add member {r},{home}", dept(&planned, d)));
                        }
                    }
                }
                Op::UpdateUser { target_id, spec, changes, .. } => {
                    let dn = known(target_id);
                    self.describe_update(&mut out, &dn, spec, changes, |d| dept(&planned, d));
                }
                Op::SetLeaders { target_id, source_id, .. } => {
                    let dn = target_id.as_ref().map_or_else(|| dept(&planned, source_id), known);
                    out.push(format!("modify {dn}: replace {} (the leaders' DNs)", self.c.attributes.leader));
                }
                Op::SetManager { target_id, spec, .. } => {
                    let dn = target_id.as_ref().map_or_else(|| "<the user created above>".to_owned(), known);
                    let m = spec.manager.as_ref().map_or_else(String::new, |m| format!(" (the DN of {m})"));
                    out.push(format!("modify {dn}: replace {}{m}", self.c.attributes.manager));
                }
                Op::DisableUser { target_id, .. } => out.push(self.disable_text(&known(target_id), false)),
                Op::DeleteUser { target_id, .. } | Op::DeleteDepartment { target_id, .. } => {
                    out.push(format!("delete {}", known(target_id)))
                }
                Op::Bind { .. } | Op::Unbind { .. } | Op::Schedule { .. } => {}
            }
        }
        out
    }

    fn describe_update(
        &self,
        out: &mut Vec<String>,
        dn: &str,
        spec: &UserSpec,
        changes: &[crate::reconcile::Change],
        dept: impl Fn(&SourceId) -> String,
    ) {
        let has = |f| changes.iter().any(|c| c.field == f);
        let rename = changes.iter().any(|c| self.rdn_field(c.field));
        let primary = spec.departments.as_ref().and_then(|d| d.first());
        let home = match (self.c.layout, primary) {
            (Layout::OuTree, _) if !spec.active && matches!(self.c.disable, Disable::Move { .. }) => None,
            (Layout::OuTree, Some(d)) if has(Field::Departments) => Some(dept(d)),
            (Layout::OuTree, None) if has(Field::Departments) => Some(self.c.users_dn.clone()),
            _ => None,
        };
        if rename || home.is_some() {
            let r = if rename { self.user_rdn(spec).unwrap_or_else(|e| format!("<{e}>")) } else { first_rdn(dn).to_owned() };
            let under = home.filter(|h| super::normalize(h) != super::normalize(dn_parent(dn))).map(|h| format!(" under {h}"));
            if rename || under.is_some() {
                out.push(format!("modrdn {dn} to {r}{}", under.unwrap_or_default()));
            }
        }
        let mut attrs: Vec<&str> = changes
            .iter()
            .map(|c| self.attribute(c.field))
            .filter(|a| !a.is_empty() && !a.eq_ignore_ascii_case(&self.c.user_rdn))
            .collect();
        if has(Field::Attributes) {
            attrs.extend(spec.attributes.keys().map(String::as_str));
        }
        if !attrs.is_empty() {
            out.push(format!("modify {dn}: replace {}", attrs.join(", ")));
        }
        if has(Field::Departments) && self.c.layout == Layout::Groups {
            out.push(format!("modify <groups left and joined>: member {dn}"));
        }
        if has(Field::Active) {
            out.push(self.disable_text(dn, spec.active));
        }
    }

    fn disable_text(&self, dn: &str, active: bool) -> String {
        match (&self.c.disable, active) {
            (Disable::Delete, false) => format!("delete {dn}"),
            (Disable::Delete, true) => format!("(enable {dn}: nothing to do)"),
            (Disable::Move { disabled_dn }, false) => format!("modrdn {dn} to {} under {disabled_dn}", first_rdn(dn)),
            (Disable::Move { .. }, true) => format!("modrdn {dn} back to its department"),
            (Disable::Attribute { name, value }, false) => format!("modify {dn}: replace {name}: {value}"),
            (Disable::Attribute { name, .. }, true) => format!("modify {dn}: delete {name}"),
        }
    }
}
