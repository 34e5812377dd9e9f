//! Apply a plan to an in-memory model of the target: what a perfect target
//! would hold afterwards. The file target and the property tests use it, so
//! both agree with `sync::apply` on what each operation means.

use super::plan::{DeptSpec, Field, Op, UserSpec};
use crate::model::{Bindings, Kind, SourceId, TargetDepartment, TargetId, TargetSnapshot, TargetUser};

/// Resolve a department source id through the bindings.
fn resolve(bindings: &Bindings, id: &SourceId) -> Option<TargetId> {
    bindings.departments.get(id).cloned()
}

pub fn dept_from_spec(id: TargetId, spec: &DeptSpec, bindings: &Bindings) -> TargetDepartment {
    TargetDepartment {
        id,
        external_id: Some(spec.external_id.clone()),
        name: spec.name.clone(),
        parent: spec.parent.as_ref().and_then(|p| resolve(bindings, p)),
        leaders: None,
    }
}

pub fn user_from_spec(id: TargetId, spec: &UserSpec, bindings: &Bindings) -> TargetUser {
    TargetUser {
        id,
        external_id: Some(spec.external_id.clone()),
        username: spec.username.clone(),
        name: spec.name.clone(),
        email: spec.email.clone(),
        mobile: spec.mobile.clone(),
        employee_no: spec.employee_no.clone(),
        nickname: spec.nickname.clone(),
        title: spec.title.clone(),
        department: spec.department.clone(),
        departments: spec.departments.iter().flatten().filter_map(|d| resolve(bindings, d)).collect(),
        active: spec.active,
        manager: manager_of(spec, bindings),
        attributes: spec.attributes.iter().filter_map(|(k, v)| Some((k.clone(), v.clone()?))).collect(),
    }
}

/// The manager's account as the apply resolves it: the one the plan knew
/// (a protected account is never bound), else the manager's binding.
fn manager_of(spec: &UserSpec, bindings: &Bindings) -> Option<TargetId> {
    spec.manager_account.clone().or_else(|| spec.manager.as_ref().and_then(|m| bindings.users.get(m).cloned()))
}

/// Apply one op to the model; `new_id` mints target ids for creates.
pub fn apply_op(target: &mut TargetSnapshot, bindings: &mut Bindings, op: &Op, new_id: &mut dyn FnMut() -> TargetId) {
    match op {
        Op::Bind { kind, source_id, target_id, .. } => {
            let map = bindings.of_mut(*kind);
            map.retain(|_, t| t != target_id);
            map.insert(source_id.clone(), target_id.clone());
        }
        Op::Unbind { kind, source_id, .. } => {
            bindings.of_mut(*kind).remove(source_id);
        }
        // The time a grace period starts is the mirror's; nothing in the model changes.
        Op::Schedule { .. } => {}
        Op::CreateDepartment { source_id, spec, .. } => {
            let id = new_id();
            target.departments.push(dept_from_spec(id.clone(), spec, bindings));
            bindings.of_mut(Kind::Department).insert(source_id.clone(), id);
        }
        Op::UpdateDepartment { target_id, spec, changes, .. } => {
            let parent_changes = changes.iter().any(|c| c.field == Field::Parent);
            let new = dept_from_spec(target_id.clone(), spec, bindings);
            if let Some(d) = target.departments.iter_mut().find(|d| &d.id == target_id) {
                let parent = if parent_changes { new.parent } else { d.parent.clone() };
                *d = TargetDepartment { parent, ..new };
            }
        }
        Op::CreateUser { source_id, spec, .. } => {
            let id = new_id();
            target.users.push(user_from_spec(id.clone(), spec, bindings));
            bindings.of_mut(Kind::User).insert(source_id.clone(), id);
        }
        Op::UpdateUser { target_id, spec, changes, .. } => {
            let new = user_from_spec(target_id.clone(), spec, bindings);
            if let Some(u) = target.users.iter_mut().find(|u| &u.id == target_id) {
                for c in changes {
                    set_user_field(u, spec, c.field, &new.departments, new.manager.as_ref());
                }
            }
        }
        Op::SetLeaders { source_id, target_id, spec, .. } => {
            let id = target_id.clone().or_else(|| bindings.departments.get(source_id).cloned());
            let leaders: Vec<TargetId> = spec.leaders.iter().filter_map(|l| bindings.users.get(l).cloned()).collect();
            if let Some(d) = target.departments.iter_mut().find(|d| Some(&d.id) == id.as_ref()) {
                d.leaders = Some(leaders);
            }
        }
        Op::SetManager { source_id, target_id, spec, .. } => {
            let id = target_id.clone().or_else(|| bindings.users.get(source_id).cloned());
            let manager = manager_of(spec, bindings);
            if let Some(u) = target.users.iter_mut().find(|u| Some(&u.id) == id.as_ref()) {
                u.manager = manager;
            }
        }
        Op::DisableUser { target_id, .. } => {
            if let Some(u) = target.users.iter_mut().find(|u| &u.id == target_id) {
                u.active = false;
            }
        }
        Op::DeleteUser { target_id, .. } => {
            target.users.retain(|u| &u.id != target_id);
            bindings.users.retain(|_, t| t != target_id);
        }
        Op::DeleteDepartment { target_id, .. } => {
            remove_department(target, target_id);
            bindings.departments.retain(|_, t| t != target_id);
        }
    }
}

/// Set one changed field of a target user from the spec; `departments` are
/// the spec's departments resolved to target ids. An update sends exactly the
/// changed fields; everything else keeps the target's value.
pub fn set_user_field(u: &mut TargetUser, spec: &UserSpec, field: Field, departments: &[TargetId], manager: Option<&TargetId>) {
    match field {
        Field::ExternalId => u.external_id = Some(spec.external_id.clone()),
        Field::Username => u.username = spec.username.clone(),
        Field::Name => u.name = spec.name.clone(),
        Field::Email => u.email = spec.email.clone(),
        Field::Mobile => u.mobile = spec.mobile.clone(),
        Field::EmployeeNo => u.employee_no = spec.employee_no.clone(),
        Field::Nickname => u.nickname = spec.nickname.clone(),
        Field::Title => u.title = spec.title.clone(),
        Field::Department => u.department = spec.department.clone(),
        Field::Departments => u.departments = departments.to_vec(),
        Field::Active => u.active = spec.active,
        Field::Manager => u.manager = manager.cloned(),
        Field::Attributes => {
            for (k, v) in &spec.attributes {
                match v {
                    Some(v) => u.attributes.insert(k.clone(), v.clone()),
                    None => u.attributes.remove(k),
                };
            }
        }
        // A department's fields.
        Field::Parent | Field::Leaders => {}
    }
}

/// Remove a department: its children become roots, its members lose it.
pub fn remove_department(t: &mut TargetSnapshot, id: &TargetId) {
    t.departments.retain(|d| &d.id != id);
    for d in &mut t.departments {
        if d.parent.as_ref() == Some(id) {
            d.parent = None;
        }
    }
    for u in &mut t.users {
        u.departments.retain(|d| d != id);
    }
}

/// Apply a whole plan to a model of the target; returns the new target and bindings.
pub fn simulate(target: &TargetSnapshot, bindings: &Bindings, ops: &[Op]) -> (TargetSnapshot, Bindings) {
    let mut t = target.clone();
    let mut b = bindings.clone();
    let taken: std::collections::HashSet<String> =
        t.users.iter().map(|u| u.id.0.clone()).chain(t.departments.iter().map(|d| d.id.0.clone())).collect();
    let mut n = 0u64;
    let mut new_id = || loop {
        n += 1;
        let id = format!("sim-{n}");
        if !taken.contains(&id) {
            return TargetId(id);
        }
    };
    for op in ops {
        apply_op(&mut t, &mut b, op, &mut new_id);
    }
    (t, b)
}
