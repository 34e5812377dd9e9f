//! Group memberships, batched: the operations of a run add to and remove
//! from a per-group delta; the target's flush sends one PATCH per group
//! carrying all its adds and removes (chunked to `batch` members per
//! request), groups side by side, never two requests on one group at once.
//!
//! Removal has two dialects: RFC 7644's `members[value eq "id"]` path, and
//! the value list that Azure AD popularised and several servers only take
//! (`"path": "members", "value": [{"value": "id"}]`). The first is tried;
//! when a server refuses it (400/501) the chunk is sent again in the
//! second, which is then used for the rest of the run.

use super::mapping::Member;
use crate::model::TargetId;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// What one group is to gain and lose.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Delta {
    pub add: BTreeMap<TargetId, Member>,
    pub remove: BTreeSet<TargetId>,
}

/// The deltas of a run, by group.
#[derive(Debug, Default)]
pub struct Pending {
    groups: Mutex<BTreeMap<TargetId, Delta>>,
    /// The server takes removals only as a value list.
    pub remove_by_value: AtomicBool,
}

impl Pending {
    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<TargetId, Delta>) -> T) -> T {
        let mut g = self.groups.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut g)
    }

    pub fn add(&self, group: &TargetId, member: &TargetId, kind: Member) {
        self.with(|g| {
            let d = g.entry(group.clone()).or_default();
            d.remove.remove(member);
            d.add.insert(member.clone(), kind);
        });
    }

    pub fn remove(&self, group: &TargetId, member: &TargetId) {
        self.with(|g| {
            let d = g.entry(group.clone()).or_default();
            if d.add.remove(member).is_none() {
                d.remove.insert(member.clone());
            }
        });
    }

    /// A deleted group: nothing left to send to it.
    pub fn forget(&self, group: &TargetId) {
        self.with(|g| g.remove(group));
    }

    /// One group's delta, taken out of the buffer.
    pub fn take_one(&self, group: &TargetId) -> Option<Delta> {
        self.with(|g| g.remove(group)).filter(|d| !d.add.is_empty() || !d.remove.is_empty())
    }

    /// Put back a delta [`Pending::take_one`] took (not sent after all).
    pub fn put_back(&self, group: &TargetId, delta: Delta) {
        for m in delta.remove {
            self.remove(group, &m);
        }
        for (m, kind) in delta.add {
            self.add(group, &m, kind);
        }
    }

    /// Every non-empty delta, emptying the buffer.
    pub fn take(&self) -> Vec<(TargetId, Delta)> {
        self.with(std::mem::take).into_iter().filter(|(_, d)| !d.add.is_empty() || !d.remove.is_empty()).collect()
    }

    pub fn by_value(&self) -> bool {
        self.remove_by_value.load(Ordering::Relaxed)
    }
}

/// One request's operations.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub add: Vec<(TargetId, Member)>,
    pub remove: Vec<TargetId>,
}

impl Chunk {
    /// The PATCH operations, removals in the given dialect.
    pub fn ops(&self, remove_by_value: bool) -> Vec<Value> {
        let mut ops = Vec::new();
        if !self.remove.is_empty() {
            if remove_by_value {
                let values: Vec<Value> = self.remove.iter().map(|m| json!({"value": m.as_str()})).collect();
                ops.push(json!({"op": "remove", "path": "members", "value": values}));
            } else {
                for m in &self.remove {
                    ops.push(json!({"op": "remove", "path": format!("members[value eq {}]", super::quoted(m.as_str()))}));
                }
            }
        }
        if !self.add.is_empty() {
            let values: Vec<Value> = self
                .add
                .iter()
                .map(|(m, kind)| json!({"value": m.as_str(), "type": if *kind == Member::Group { "Group" } else { "User" }}))
                .collect();
            ops.push(json!({"op": "add", "path": "members", "value": values}));
        }
        ops
    }
}

/// A delta in requests of at most `batch` members each: removals first.
pub fn chunks(delta: &Delta, batch: usize) -> Vec<Chunk> {
    let batch = batch.max(1);
    let removes: Vec<TargetId> = delta.remove.iter().cloned().collect();
    let adds: Vec<(TargetId, Member)> = delta.add.iter().map(|(m, k)| (m.clone(), *k)).collect();
    let mut out = Vec::new();
    let (mut r, mut a) = (removes.as_slice(), adds.as_slice());
    while !r.is_empty() || !a.is_empty() {
        let take_r = r.len().min(batch);
        let take_a = a.len().min(batch - take_r);
        out.push(Chunk { remove: r[..take_r].to_vec(), add: a[..take_a].to_vec() });
        r = &r[take_r..];
        a = &a[take_a..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(i: u32) -> TargetId {
        TargetId(i.to_string())
    }

    #[test]
    fn an_add_then_a_remove_cancel_and_a_group_is_one_delta() {
        let p = Pending::default();
        p.add(&id(1), &id(10), Member::User);
        p.add(&id(1), &id(11), Member::User);
        p.remove(&id(1), &id(10));
        p.remove(&id(1), &id(12));
        p.add(&id(2), &id(3), Member::Group);
        p.add(&id(9), &id(1), Member::User);
        p.forget(&id(9));
        let taken = p.take();
        assert_eq!(taken.len(), 2);
        assert_eq!(taken[0].1.add.keys().collect::<Vec<_>>(), [&id(11)]);
        assert_eq!(taken[0].1.remove.iter().collect::<Vec<_>>(), [&id(12)]);
        assert!(p.take().is_empty(), "taken once");
    }

    #[test]
    fn removals_go_in_either_dialect_and_members_say_their_type() {
        let c = Chunk { add: vec![(id(3), Member::Group), (id(4), Member::User)], remove: vec![id(5)] };
        let rfc = c.ops(false);
        assert_eq!(rfc[0], json!({"op": "remove", "path": "members[value eq \"5\"]"}));
        assert_eq!(rfc[1]["value"], json!([{"value": "3", "type": "Group"}, {"value": "4", "type": "User"}]));
        assert_eq!(c.ops(true)[0], json!({"op": "remove", "path": "members", "value": [{"value": "5"}]}));
    }

    proptest! {
        #[test]
        fn chunks_carry_every_member_once_within_the_batch(adds in 0u32..40, removes in 0u32..40, batch in 1usize..12) {
            let delta = Delta {
                add: (0..adds).map(|i| (id(i), Member::User)).collect(),
                remove: (100..100 + removes).map(id).collect(),
            };
            let cs = chunks(&delta, batch);
            prop_assert!(cs.iter().all(|c| !c.add.is_empty() || !c.remove.is_empty()));
            prop_assert!(cs.iter().all(|c| c.add.len() + c.remove.len() <= batch));
            let added: Vec<TargetId> = cs.iter().flat_map(|c| c.add.iter().map(|(m, _)| m.clone())).collect();
            let removed: Vec<TargetId> = cs.iter().flat_map(|c| c.remove.clone()).collect();
            prop_assert_eq!(added, delta.add.keys().cloned().collect::<Vec<_>>());
            prop_assert_eq!(removed, delta.remove.iter().cloned().collect::<Vec<_>>());
            prop_assert_eq!(cs.len(), (adds + removes).div_ceil(batch as u32) as usize);
        }
    }
}
