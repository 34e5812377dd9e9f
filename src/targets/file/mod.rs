//! Target `file`: the target-side directory as one JSON document
//! (`{"departments": [...], "users": [...]}`, the model's `TargetSnapshot`),
//! for the quickstart and for apps that import files. Operations change an
//! in-memory copy, read when the first operation comes (an idle run holds
//! the document once, in the plan's snapshot); `flush` writes it atomically
//! (temp file + rename), and only when something changed (an idle run
//! leaves the file alone).

mod client;
pub mod config;
mod mapping;

use super::{TResult, Target, TargetError};
use crate::model::{TargetId, TargetSnapshot, TargetUser};
use crate::reconcile::{Field, remove_department, set_user_field};
use rustc_hash::FxHashMap;
use std::path::PathBuf;
use std::sync::Mutex;

#[derive(Debug)]
pub struct FileTarget {
    path: PathBuf,
    state: Mutex<Doc>,
    /// Changed since it was read (or there is no file yet).
    dirty: std::sync::atomic::AtomicBool,
}

/// The in-memory copy of the document, once an operation needs it.
#[derive(Debug, Default)]
struct Doc {
    /// `snapshot` holds the document: false since `load` (what `load`
    /// read is the plan's) until an operation comes.
    read: bool,
    snapshot: TargetSnapshot,
    /// Where each user is in `snapshot.users` (built when first needed,
    /// dropped when users are removed).
    users: Option<FxHashMap<TargetId, usize>>,
}

impl Doc {
    fn user(&mut self, id: &TargetId) -> Option<&mut TargetUser> {
        let s = &mut self.snapshot;
        let at = self.users.get_or_insert_with(|| s.users.iter().enumerate().map(|(i, u)| (u.id.clone(), i)).collect());
        at.get(id).copied().and_then(|i| s.users.get_mut(i))
    }
}

impl FileTarget {
    pub fn new(path: PathBuf) -> Self {
        Self { path, state: Mutex::new(Doc { read: true, ..Doc::default() }), dirty: true.into() }
    }

    /// Change the in-memory copy (read from the file first if need be).
    fn with_doc<T>(&self, f: impl FnOnce(&mut Doc) -> T) -> Result<T, TargetError> {
        let mut d = self.state.lock().map_err(|_| TargetError::Unexpected("file target state poisoned".into()))?;
        if !d.read {
            *d = Doc { read: true, snapshot: client::read_now(&self.path)?.unwrap_or_default(), users: None };
        }
        self.dirty.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(f(&mut d))
    }

    /// Change the in-memory copy's lists (no user moves).
    fn with<T>(&self, f: impl FnOnce(&mut TargetSnapshot) -> T) -> Result<T, TargetError> {
        self.with_doc(|d| f(&mut d.snapshot))
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
            // Read again only if an operation comes: an idle run holds it once.
            *self.state.lock().map_err(|_| TargetError::Unexpected("file target state poisoned".into()))? = Doc::default();
            // As read: nothing to write unless an operation changes it (or there was no file).
            self.dirty.store(snap.is_none(), std::sync::atomic::Ordering::Relaxed);
            Ok(snap.unwrap_or_default())
        })
    }

    fn flush(&self) -> TResult<'_, Vec<super::Deferred>> {
        Box::pin(async move {
            if !self.dirty.swap(false, std::sync::atomic::Ordering::Relaxed) {
                return Ok(Vec::new());
            }
            let d = self.state.lock().map_err(|_| TargetError::Unexpected("file target state poisoned".into()))?;
            // Not read since the load: there was no file then and no change
            // came. An empty directory is written, never over a document
            // that appeared since.
            let appeared = !d.read && !matches!(std::fs::metadata(&self.path), Err(e) if e.kind() == std::io::ErrorKind::NotFound);
            if !appeared {
                client::write(&self.path, &d.snapshot)?;
            }
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
            self.with_doc(|d| {
                if let Some(at) = &mut d.users {
                    at.insert(id.clone(), d.snapshot.users.len());
                }
                d.snapshot.users.push(mapping::user(id.clone(), spec, departments, manager));
            })?;
            Ok(id)
        })
    }

    fn update_user<'a>(&'a self, op: super::UserUpdate<'a>) -> TResult<'a, ()> {
        let super::UserUpdate { id, spec, changes, old_departments: _old_departments, departments, manager } = op;
        Box::pin(async move {
            self.with_doc(|d| match d.user(id) {
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
            self.with_doc(|d| {
                if let Some(u) = d.user(id) {
                    u.active = false;
                }
            })
        })
    }

    // Membership lives on the user here: it goes with it.
    fn delete_user<'a>(&'a self, op: super::UserDelete<'a>) -> TResult<'a, ()> {
        let super::UserDelete { id, departments: _departments } = op;
        Box::pin(async move {
            self.with_doc(|d| {
                d.snapshot.users.retain(|u| &u.id != id);
                // The users after it moved: the index is built again when needed.
                d.users = None;
            })
        })
    }
}

#[cfg(test)]
mod tests;
