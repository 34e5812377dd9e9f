//! The model as the document's records: a department or a user made from
//! what the plan sends, under a new id.

use crate::model::{TargetDepartment, TargetId, TargetUser};
use crate::reconcile::{DeptSpec, Field, UserSpec, set_user_field};

/// A new id: a prefix (`d-`, `u-`) and 16 random hex digits.
pub(super) fn new_id(prefix: &str) -> TargetId {
    TargetId(format!("{prefix}{:016x}", rand::random::<u64>()))
}

/// A department as created: its externalId, name and parent.
pub(super) fn department(id: TargetId, spec: &DeptSpec, parent: Option<&TargetId>) -> TargetDepartment {
    TargetDepartment { id, external_id: Some(spec.external_id.clone()), name: spec.name.clone(), parent: parent.cloned(), leaders: None }
}

/// A user as created: every field the plan sends.
pub(super) fn user(id: TargetId, spec: &UserSpec, departments: &[TargetId], manager: Option<&TargetId>) -> TargetUser {
    let mut u = TargetUser { id, ..TargetUser::default() };
    for &f in Field::USER {
        set_user_field(&mut u, spec, f, departments, manager);
    }
    u
}
