//! Values the target does not keep. Some targets rewrite a value (a
//! `displayName` derived from the name parts), refuse an attribute (HTTP
//! 501 for one PATCH path), or answer 200 to a member they do not store
//! (a group added to a group where groups hold users only): sending it
//! again every run changes nothing and hides real changes. The mirror
//! remembers, per object and field, the value last created or updated and
//! what became of it; this step takes those changes out of a plan until the
//! source value changes, and says so in a `not_kept` item. `active` is
//! never taken out: a leaver is always deactivated. Memberships and parents
//! a target writes after the run's updates are forgotten again when that
//! write fails (see `Mirror::forget_sent_links`), so they are retried.

use super::plan::{Change, Field, Item, Op, Outcome, Plan, Verb};
use crate::model::{Kind, SourceId};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// What became of a value sent for one field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// Sent and taken; the next run shows whether it was kept.
    Sent,
    /// Sent and taken, yet the target still differs the same way.
    NotKept,
    /// The target refused the attribute.
    Refused,
}

impl Sent {
    pub fn as_str(self) -> &'static str {
        match self {
            Sent::Sent => "sent",
            Sent::NotKept => "not_kept",
            Sent::Refused => "refused",
        }
    }

    pub fn parse(s: &str) -> Option<Sent> {
        [Sent::Sent, Sent::NotKept, Sent::Refused].into_iter().find(|x| x.as_str() == s)
    }
}

/// One remembered value: its hash, the hash of what the target showed
/// when it was sent (none: remembered by an older release), what became
/// of it, and in which run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remembered {
    pub hash: String,
    pub from: Option<String>,
    pub state: Sent,
    pub run: i64,
}

/// One value a run sent, to remember: the field, the hashes of the value
/// and of what the target showed then, and what became of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentValue {
    pub field: Field,
    pub hash: String,
    pub from: String,
    pub state: Sent,
}

pub type Key = (Kind, SourceId, Field);

/// The mirror's memory of sent values.
pub type Memory = HashMap<Key, Remembered>;

/// A stable hash of a value (the mirror keeps no attribute values).
pub fn value_hash(v: &Option<String>) -> String {
    let d = Sha256::digest(v.as_deref().map_or(b"\0none".as_slice(), str::as_bytes));
    d.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// Whether a field's unkept values are remembered at all.
pub fn remembered(field: Field) -> bool {
    field != Field::Active
}

/// What the mirror should do after [`skip_unkept`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MemoryChanges {
    /// Sent values found not kept.
    pub not_kept: Vec<Key>,
    /// Entries with no change planned any more: the target agrees now.
    pub forget: Vec<Key>,
    /// Users whose manager has no account, with the manager's hash (said
    /// once); `true`: these are all of them (a full run), else add them.
    pub said: Option<(Vec<(SourceId, String)>, bool)>,
}

/// The `not_kept` item of an object: what it does not keep.
fn not_kept(kind: Kind, source_id: &SourceId, target_id: &crate::model::TargetId, what: String) -> Item {
    Item {
        kind,
        op: Verb::Update,
        source_id: Some(source_id.clone()),
        target_id: Some(target_id.clone()),
        outcome: Outcome::NotKept,
        message: format!("the target does not keep {what}: not sent again until the source value changes"),
    }
}

/// Take the changes the target does not keep out of `plan`'s updates (an
/// update left with no change is dropped), each reported as a `not_kept`
/// item naming the fields.
pub fn skip_unkept(plan: &mut Plan, memory: &Memory) -> MemoryChanges {
    let mut out = MemoryChanges::default();
    let mut planned: std::collections::HashSet<Key> = std::collections::HashSet::new();
    let mut items = Vec::new();
    // A manager or leaders set after the creates, on an object that exists:
    // the same value sent before, while the target still shows what it
    // showed then, is not kept.
    plan.ops.retain(|op| {
        let (kind, source_id, target_id) = match op {
            Op::SetManager { source_id, target_id: Some(t), .. } => (Kind::User, source_id, t),
            Op::SetLeaders { source_id, target_id: Some(t), .. } => (Kind::Department, source_id, t),
            _ => return true,
        };
        let Some(c) = op.changes().pop() else { return true };
        let key = (kind, source_id.clone(), c.field);
        planned.insert(key.clone());
        let Some(m) = memory.get(&key).filter(|m| m.hash == value_hash(&c.to) && m.from.as_ref().is_none_or(|f| *f == value_hash(&c.from)))
        else {
            return true;
        };
        if m.state == Sent::Sent {
            out.not_kept.push(key);
        }
        items.push(not_kept(kind, source_id, target_id, format!("{} (sent in run {})", c.field, m.run)));
        false
    });
    plan.ops.retain_mut(|op| {
        let (kind, source_id, target_id, changes) = match op {
            Op::UpdateUser { source_id, target_id, changes, .. } => (Kind::User, source_id, target_id, changes),
            Op::UpdateDepartment { source_id, target_id, changes, .. } => (Kind::Department, source_id, target_id, changes),
            _ => return true,
        };
        let mut skipped: Vec<(Change, &Remembered, Sent)> = Vec::new();
        changes.retain(|c| {
            let key = (kind, source_id.clone(), c.field);
            planned.insert(key.clone());
            // Not kept: the same value sent; for memberships and parents
            // (who may reach what), also the target still showing what it
            // showed then: one changed since, by someone's hand, is a
            // difference to correct. (An attribute the target derives, a
            // name from its parts, may show otherwise after another change.)
            let links = matches!(c.field, Field::Departments | Field::Parent);
            let Some(m) = memory.get(&key).filter(|m| {
                remembered(c.field) && m.hash == value_hash(&c.to) && (!links || m.from.as_ref().is_none_or(|f| *f == value_hash(&c.from)))
            }) else {
                return true;
            };
            let now = if m.state == Sent::Sent { Sent::NotKept } else { m.state };
            if m.state == Sent::Sent {
                out.not_kept.push(key);
            }
            skipped.push((c.clone(), m, now));
            false
        });
        if !skipped.is_empty() {
            let why: Vec<String> = skipped
                .iter()
                .map(|(c, m, now)| match now {
                    Sent::Refused => format!("{} (refused in run {})", c.field, m.run),
                    _ => format!("{} (sent in run {}, the target still differs)", c.field, m.run),
                })
                .collect();
            items.push(not_kept(kind, source_id, target_id, why.join(", ")));
        }
        !changes.is_empty()
    });
    plan.items.extend(items);
    out.forget = memory.keys().filter(|k| !planned.contains(*k)).cloned().collect();
    out.forget.sort_by(|a, b| (a.1.as_str(), a.2.as_str()).cmp(&(b.1.as_str(), b.2.as_str())));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TargetId;
    use crate::reconcile::UserSpec;

    fn update(id: &str, changes: &[(Field, &str)]) -> Op {
        Op::UpdateUser {
            source_id: SourceId::from(id),
            target_id: TargetId::from(id),
            spec: Box::default(),
            old_departments: vec![],
            changes: changes.iter().map(|(f, v)| Change { field: *f, from: None, to: Some((*v).to_owned()) }).collect(),
        }
    }

    fn memory(entries: &[(&str, Field, &str, Sent)]) -> Memory {
        entries
            .iter()
            .map(|(id, f, v, s)| {
                ((Kind::User, SourceId::from(*id), *f), Remembered { hash: value_hash(&Some((*v).into())), from: None, state: *s, run: 4 })
            })
            .collect()
    }

    #[test]
    fn a_value_sent_before_and_still_different_is_not_sent_again() {
        let mut plan = Plan { ops: vec![update("u1", &[(Field::Name, "Ann Lee"), (Field::Title, "CTO")])], ..Plan::default() };
        let mem = memory(&[("u1", Field::Name, "Ann Lee", Sent::Sent), ("u2", Field::Title, "x", Sent::Sent)]);
        let changes = skip_unkept(&mut plan, &mem);
        let Op::UpdateUser { changes: left, .. } = &plan.ops[0] else { panic!() };
        assert_eq!(left.iter().map(|c| c.field).collect::<Vec<_>>(), [Field::Title], "title still goes");
        assert_eq!(plan.items.len(), 1);
        assert_eq!(plan.items[0].outcome, Outcome::NotKept);
        assert!(plan.items[0].message.contains("name (sent in run 4"), "{}", plan.items[0].message);
        assert_eq!(changes.not_kept, [(Kind::User, SourceId::from("u1"), Field::Name)]);
        assert_eq!(changes.forget, [(Kind::User, SourceId::from("u2"), Field::Title)], "u2 has no change planned: the target agrees");
    }

    /// A manager set after the creates that the target did not keep (the
    /// same value, the target showing the same as then): not sent again.
    #[test]
    fn a_manager_the_target_did_not_keep_is_not_set_again_until_it_changes() {
        let set = |m: &str| Op::SetManager {
            source_id: SourceId::from("u1"),
            target_id: Some(TargetId::from("t1")),
            spec: Box::new(UserSpec { manager: Some(SourceId::from(m)), ..UserSpec::default() }),
            from: None,
        };
        let mut mem = memory(&[("u1", Field::Manager, "u0", Sent::Sent)]);
        mem.values_mut().for_each(|r| r.from = Some(value_hash(&None)));
        let mut plan = Plan { ops: vec![set("u0")], ..Plan::default() };
        let changes = skip_unkept(&mut plan, &mem);
        assert!(plan.ops.is_empty(), "{:?}", plan.ops);
        assert_eq!(plan.items[0].outcome, Outcome::NotKept);
        assert_eq!(changes.not_kept, [(Kind::User, SourceId::from("u1"), Field::Manager)]);
        assert!(changes.forget.is_empty(), "still planned: remembered");
        let mut plan = Plan { ops: vec![set("u9")], ..Plan::default() };
        skip_unkept(&mut plan, &mem);
        assert_eq!(plan.ops.len(), 1, "another manager is sent");
    }

    #[test]
    fn a_changed_source_value_is_sent_and_active_always_is() {
        let mut plan = Plan { ops: vec![update("u1", &[(Field::Name, "Ann Smith"), (Field::Active, "false")])], ..Plan::default() };
        let mem = memory(&[("u1", Field::Name, "Ann Lee", Sent::NotKept), ("u1", Field::Active, "false", Sent::Refused)]);
        skip_unkept(&mut plan, &mem);
        let Op::UpdateUser { changes, .. } = &plan.ops[0] else { panic!() };
        assert_eq!(changes.len(), 2);
        assert!(plan.items.is_empty());
    }

    /// A membership sent, then undone by hand in the target before the
    /// next run: not "not kept" (the target shows something else than when
    /// it was sent), so it is sent again; while the target shows what it
    /// showed then, it is not kept.
    #[test]
    fn a_value_undone_in_the_target_since_it_was_sent_is_sent_again() {
        let update = |from: &str| Op::UpdateUser {
            source_id: SourceId::from("u1"),
            target_id: TargetId::from("u1"),
            spec: Box::default(),
            old_departments: vec![],
            changes: vec![Change { field: Field::Departments, from: Some(from.into()), to: Some("Sales".into()) }],
        };
        let remembered = Remembered {
            hash: value_hash(&Some("Sales".into())),
            from: Some(value_hash(&Some("Sales,Admins".into()))),
            state: Sent::Sent,
            run: 4,
        };
        let mem: Memory = [((Kind::User, SourceId::from("u1"), Field::Departments), remembered)].into();
        let mut plan = Plan { ops: vec![update("Sales,Admins")], ..Plan::default() };
        skip_unkept(&mut plan, &mem);
        assert!(plan.ops.is_empty(), "still what it showed: not kept");
        let mut plan = Plan { ops: vec![update("Sales,Admins,Finance")], ..Plan::default() };
        skip_unkept(&mut plan, &mem);
        assert_eq!(plan.ops.len(), 1, "changed by hand since: sent again");
    }

    #[test]
    fn an_update_left_with_nothing_is_dropped_and_refusals_are_named() {
        let mut plan = Plan { ops: vec![update("u1", &[(Field::Title, "CTO")])], ..Plan::default() };
        let changes = skip_unkept(&mut plan, &memory(&[("u1", Field::Title, "CTO", Sent::Refused)]));
        assert!(plan.ops.is_empty());
        assert!(plan.items[0].message.contains("title (refused in run 4)"), "{}", plan.items[0].message);
        assert_eq!(changes, MemoryChanges::default());
    }
}
