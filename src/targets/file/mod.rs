//! Target `file`: the target-side directory as one JSON document
//! (`{"departments": [...], "users": [...]}`, the model's `TargetSnapshot`),
//! for the quickstart and for apps that import files. Operations change an
//! in-memory copy; `flush` writes it atomically (temp file + rename), and
//! only when something changed (an idle run leaves the file alone).

mod client;
pub mod config;
mod mapping;

use super::{TResult, Target, TargetError};
use crate::model::{TargetId, TargetSnapshot};
use crate::reconcile::{Field, remove_department, set_user_field};
use std::path::PathBuf;
use std::sync::Mutex;

#[derive(Debug)]
pub struct FileTarget {
    path: PathBuf,
    state: Mutex<TargetSnapshot>,
    /// Changed since it was read (or there is no file yet).
    dirty: std::sync::atomic::AtomicBool,
}

impl FileTarget {
    pub fn new(path: PathBuf) -> Self {
        Self { path, state: Mutex::new(TargetSnapshot::default()), dirty: true.into() }
    }

    /// Change the in-memory copy.
    fn with<T>(&self, f: impl FnOnce(&mut TargetSnapshot) -> T) -> Result<T, TargetError> {
        let mut s = self.state.lock().map_err(|_| TargetError::Unexpected("file target state poisoned".into()))?;
        self.dirty.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(f(&mut s))
    }
}

impl Target for FileTarget {
    /// The document keeps no department leaders.
    fn unheld(&self) -> crate::reconcile::FieldSet {
        crate::reconcile::FieldSet::default().with(Field::Leaders)
    }

    fn check(&self) -> TResult<'_, Vec<(&'static str, String)>> {
        Box::pin(async move {
            let state = match tokio::fs::metadata(&self.path).await {
                Ok(_) => "exists",
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => "not yet written (the first run writes it)",
                Err(e) => return Err(TargetError::Io { path: self.path.clone(), source: e }),
            };
            Ok(vec![("path", self.path.display().to_string()), ("state", state.to_owned())])
        })
    }

    fn load(&self) -> TResult<'_, TargetSnapshot> {
        Box::pin(async move {
            let snap = client::read(&self.path).await?;
            self.with(|s| *s = snap.clone())?;
            // As read: nothing to write unless an operation changes it (or there was no file).
            self.dirty.store(!tokio::fs::try_exists(&self.path).await.unwrap_or(false), std::sync::atomic::Ordering::Relaxed);
            Ok(snap)
        })
    }

    fn flush(&self) -> TResult<'_, Vec<super::Deferred>> {
        Box::pin(async move {
            if !self.dirty.swap(false, std::sync::atomic::Ordering::Relaxed) {
                return Ok(Vec::new());
            }
            self.with(|s| client::write(&self.path, s))??;
            Ok(Vec::new())
        })
    }

    fn write<'a>(&'a self, w: super::Write<'a>) -> TResult<'a, Option<TargetId>> {
        super::dispatch(self, w)
    }
}

impl super::Operations for FileTarget {
    fn create_department<'a>(&'a self, op: super::DepartmentCreate<'a>) -> TResult<'a, TargetId> {
        let super::DepartmentCreate { spec, parent } = op;
        Box::pin(async move {
            let id = mapping::new_id("d-");
            self.with(|s| s.departments.push(mapping::department(id.clone(), spec, parent)))?;
            Ok(id)
        })
    }

    fn update_department<'a>(&'a self, op: super::DepartmentUpdate<'a>) -> TResult<'a, ()> {
        let super::DepartmentUpdate { id, spec, changes, old_parent: _old_parent, parent, .. } = op;
        Box::pin(async move {
            self.with(|s| match s.departments.iter_mut().find(|d| &d.id == id) {
                Some(d) => {
                    for c in changes {
                        match c.field {
                            Field::Name => d.name = spec.name.clone(),
                            Field::ExternalId => d.external_id = Some(spec.external_id.clone()),
                            Field::Parent => d.parent = parent.cloned(),
                            _ => {}
                        }
                    }
                    Ok(())
                }
                None => Err(TargetError::Missing(format!("department {id} not found"))),
            })?
        })
    }

    fn delete_department<'a>(&'a self, id: &'a TargetId) -> TResult<'a, ()> {
        Box::pin(async move { self.with(|s| remove_department(s, id)) })
    }

    fn create_user<'a>(&'a self, op: super::UserCreate<'a>) -> TResult<'a, TargetId> {
        let super::UserCreate { spec, departments, manager } = op;
        Box::pin(async move {
            let id = mapping::new_id("u-");
            self.with(|s| s.users.push(mapping::user(id.clone(), spec, departments, manager)))?;
            Ok(id)
        })
    }

    fn update_user<'a>(&'a self, op: super::UserUpdate<'a>) -> TResult<'a, ()> {
        let super::UserUpdate { id, spec, changes, old_departments: _old_departments, departments, manager } = op;
        Box::pin(async move {
            self.with(|s| match s.users.iter_mut().find(|u| &u.id == id) {
                Some(u) => {
                    for c in changes {
                        set_user_field(u, spec, c.field, departments, manager);
                    }
                    Ok(())
                }
                None => Err(TargetError::Missing(format!("user {id} not found"))),
            })?
        })
    }

    fn disable_user<'a>(&'a self, id: &'a TargetId) -> TResult<'a, ()> {
        Box::pin(async move {
            self.with(|s| {
                if let Some(u) = s.users.iter_mut().find(|u| &u.id == id) {
                    u.active = false;
                }
            })
        })
    }

    // Membership lives on the user here: it goes with it.
    fn delete_user<'a>(&'a self, op: super::UserDelete<'a>) -> TResult<'a, ()> {
        let super::UserDelete { id, departments: _departments } = op;
        Box::pin(async move { self.with(|s| s.users.retain(|u| &u.id != id)) })
    }
}

#[cfg(test)]
mod tests;
