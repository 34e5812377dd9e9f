//! Reading objects one by one (`IdentitySource::fetch_objects`): the
//! departments above a user, walked up by each vendor's one-department
//! call, and one record as the vendor sent it beside its typed form.

use super::wire::Item;
use crate::model::{Department, Kind, Snapshot, SourceId, Unreadable, User};
use crate::reconcile::only::Only;
use crate::sources::{Objects, SourceError};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::future::Future;

/// The departments read by id: mapped, or unreadable, and as sent.
#[derive(Debug, Default)]
pub struct Chain {
    /// Parents before their children.
    pub departments: Vec<Department>,
    pub unreadable: Vec<Unreadable>,
    pub raw: BTreeMap<SourceId, Value>,
    /// Each department's parent as the vendor sent it (none at the top).
    pub parents: BTreeMap<SourceId, Option<SourceId>>,
}

/// The departments `start` names and every one above them, each read once
/// with `read` (its record as sent, mapped, and its parent as sent), up to a department
/// `is_top` says is above what is synced (a root, the tenant's top).
pub async fn chain<F, Fut>(
    start: impl IntoIterator<Item = SourceId>,
    is_top: impl Fn(&SourceId) -> bool,
    read: F,
) -> Result<Chain, SourceError>
where
    F: Fn(SourceId) -> Fut,
    Fut: Future<Output = Result<(Value, Result<Department, Unreadable>, Option<SourceId>), SourceError>>,
{
    let mut out = Chain::default();
    let mut seen: HashSet<SourceId> = HashSet::new();
    let mut wanted: Vec<SourceId> = start.into_iter().collect();
    while let Some(id) = wanted.pop() {
        if is_top(&id) || !seen.insert(id.clone()) {
            continue;
        }
        let (raw, mapped, parent) = read(id.clone()).await?;
        out.raw.insert(id.clone(), raw);
        wanted.extend(parent.clone());
        out.parents.insert(id, parent);
        match mapped {
            Ok(d) => out.departments.push(d),
            Err(u) => out.unreadable.push(u),
        }
    }
    // Read children first (walking up): listed parents first.
    out.departments.reverse();
    Ok(out)
}

/// What a department the vendor says it does not have (read while walking
/// up, or named) maps to: left out of the snapshot, not reported.
pub fn gone(id: &SourceId) -> Result<Department, Unreadable> {
    Err(Unreadable { kind: Kind::Department, source_id: Some(id.clone()), message: GONE.to_owned() })
}

const GONE: &str = "gone from the source";

impl Chain {
    /// Only what a whole read under `roots` would list (none: the whole
    /// tenant is read): the departments below a root, and the users'
    /// memberships in those; a user with memberships, none of them there,
    /// is not listed.
    pub fn confine(&mut self, users: &mut Vec<User>, roots: Option<&HashSet<SourceId>>) {
        let Some(roots) = roots else { return };
        let under = |id: &SourceId| {
            let mut at = id.clone();
            for _ in 0..=self.parents.len() {
                match self.parents.get(&at).cloned().flatten() {
                    Some(p) if roots.contains(&p) => return true,
                    Some(p) => at = p,
                    None => return false,
                }
            }
            false
        };
        let outside: HashSet<SourceId> = self.parents.keys().filter(|d| !under(d)).cloned().collect();
        self.departments.retain(|d| !outside.contains(&d.source_id));
        self.raw.retain(|d, _| !outside.contains(d));
        users.retain_mut(|u| {
            let had = !u.department_ids.is_empty();
            u.department_ids.retain(|d| !outside.contains(d));
            !had || !u.department_ids.is_empty()
        });
    }

    /// What was read by id: the users (and the records that did not map),
    /// these departments, and the records as sent of the objects named.
    pub fn objects(
        self,
        only: &Only,
        users: Vec<User>,
        mut unreadable: Vec<Unreadable>,
        mut raw: BTreeMap<(Kind, SourceId), Value>,
        requests: u64,
    ) -> Objects {
        unreadable.extend(self.unreadable.into_iter().filter(|u| u.message != GONE));
        raw.extend(self.raw.into_iter().filter(|(d, _)| only.departments.contains(d)).map(|(d, r)| ((Kind::Department, d), r)));
        let snapshot = Snapshot { departments: self.departments, users, scoped: true, unreadable, ..Snapshot::default() };
        Objects { snapshot, raw, requests: Some(requests), by_id: true }
    }
}

/// An id as one segment of a URL path (percent-encoded: an id is data).
pub fn segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

/// `answer`'s record at `pointer` (a JSON pointer), as sent and typed.
pub fn record<T: DeserializeOwned>(answer: &Value, pointer: &str) -> (Value, Item<T>) {
    let raw = answer.pointer(pointer).cloned().unwrap_or(Value::Null);
    let item = serde_json::from_value::<Item<T>>(raw.clone())
        .unwrap_or_else(|e| Item::Bad(super::wire::Bad { problem: e.to_string(), scalars: Vec::new() }));
    (raw, item)
}
