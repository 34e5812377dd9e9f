//! Managers: a user's manager, by source id, resolved to the target id of
//! the account it is bound or matched to; one created in the same run is
//! set after the creates (an `Op::SetManager`). A manager outside the
//! scope, or in the source without an account, leaves the field as it is
//! and is reported once per run; one who left (inactive, or gone from the
//! source) empties it, cleared under `clear_when_empty`.

use super::plan::{Item, Outcome, Verb};
use crate::model::{Bindings, Kind, Snapshot, SourceId, TargetId, User};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::collections::BTreeMap;

/// What a user's manager field should become.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Want<'a> {
    /// The manager's account.
    Set(&'a TargetId),
    /// The manager's account is created in this run: set afterwards.
    Later,
    /// No manager (none given, or the manager left).
    Empty,
    /// The manager has no account orgsync knows: left as it is.
    Unknown,
}

/// A distinct source user's account in this plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Account<'a> {
    /// Inactive: one who left.
    Left,
    /// Matched (or bound) to this target account.
    Has(&'a TargetId),
    /// Created by this plan.
    Created,
    /// Neither matched nor created.
    Missing,
}

/// Everything needed to resolve managers, built once per plan.
pub(super) struct Managers<'a> {
    /// Each distinct source user's position in `account`.
    position: &'a HashMap<&'a SourceId, usize>,
    account: Vec<Account<'a>>,
    source: &'a Snapshot,
    out_of_scope: HashSet<&'a SourceId>,
    /// Users whose record could not be read: their accounts stand.
    unreadable: HashSet<&'a SourceId>,
    bindings: &'a Bindings,
}

/// Managers without an account, and their reports (for one item each),
/// gathered by [`Managers::want`]: one per part of the users diffed at
/// once, joined in the users' order by [`Unaccounted::join`].
#[derive(Default)]
pub(super) struct Unaccounted(BTreeMap<SourceId, (&'static str, Vec<SourceId>)>);

impl Unaccounted {
    /// `later`'s managers after this one's: each manager's reports stay in the users' order.
    pub(super) fn join(&mut self, later: Unaccounted) {
        for (m, (why, reports)) in later.0 {
            self.0.entry(m).or_insert_with(|| (why, Vec::new())).1.extend(reports);
        }
    }

    /// The managers without an account, with their reports.
    pub(super) fn unresolved(self) -> Vec<Unresolved> {
        self.0.into_iter().map(|(manager, (why, reports))| Unresolved { manager, why, reports }).collect()
    }
}

impl<'a> Managers<'a> {
    /// `account[position[id]]`: the account of the distinct source user `id`.
    pub(super) fn new(
        source: &'a Snapshot,
        bindings: &'a Bindings,
        position: &'a HashMap<&'a SourceId, usize>,
        account: Vec<Account<'a>>,
    ) -> Self {
        Managers {
            position,
            account,
            source,
            out_of_scope: source.out_of_scope.iter().collect(),
            unreadable: source.unreadable.iter().filter(|r| r.kind == Kind::User).filter_map(|r| r.source_id.as_ref()).collect(),
            bindings,
        }
    }

    /// What `u`'s manager should be; one without an account is noted in `unknown`.
    pub(super) fn want(&self, u: &User, unknown: &mut Unaccounted) -> Want<'_> {
        let Some(m) = &u.manager_id else { return Want::Empty };
        let (want, why) = self.resolve(m);
        if let Some(why) = why {
            unknown.0.entry(m.clone()).or_insert_with(|| (why, Vec::new())).1.push(u.source_id.clone());
        }
        want
    }

    /// What user `m`'s account is, and why it is unknown when it is one to say.
    pub(super) fn resolve(&self, m: &SourceId) -> (Want<'_>, Option<&'static str>) {
        let unknown = |why: &'static str| (Want::Unknown, Some(why));
        match self.position.get(m).map(|&i| self.account[i]) {
            // One who left: the field empties.
            Some(Account::Left) => (Want::Empty, None),
            Some(Account::Has(t)) => (Want::Set(t), None),
            Some(Account::Created) => (Want::Later, None),
            Some(Account::Missing) => unknown("has no account in the target (not created or not matched)"),
            None if self.out_of_scope.contains(m) => unknown("is outside the sync scope"),
            // Its record could not be read this run: nothing is known of it.
            None if self.unreadable.contains(m) => (Want::Unknown, None),
            None => {
                let unread = self.source.partial.as_ref().is_some_and(|(users, _)| !users.contains(m));
                match self.bindings.users.get(m) {
                    // Not read by an on-demand run: its account stands.
                    Some(t) if unread => (Want::Set(t), None),
                    // Bound, and gone from the source: a leaver.
                    Some(_) => (Want::Empty, None),
                    None if unread => unknown("was not read by this run and has no account"),
                    None => unknown("is not in the source"),
                }
            }
        }
    }
}

/// A manager without an account, and the users whose manager it is.
#[derive(Debug)]
pub(super) struct Unresolved {
    manager: SourceId,
    why: &'static str,
    reports: Vec<SourceId>,
}

/// One item per manager without an account, naming the reports not said
/// before (`said`: each report's manager when last said, hashed); and
/// every report with its manager, to remember.
pub(super) fn report(
    unresolved: Vec<Unresolved>,
    said: &std::collections::HashMap<SourceId, String>,
) -> (Vec<Item>, Vec<(SourceId, String)>) {
    let mut items = Vec::new();
    let mut now = Vec::new();
    for Unresolved { manager: m, why, reports } in unresolved {
        let hash = super::unkept::value_hash(&Some(m.to_string()));
        let new: Vec<&SourceId> = reports.iter().filter(|r| said.get(*r) != Some(&hash)).collect();
        if !new.is_empty() {
            let shown: Vec<&str> = new.iter().take(5).map(|r| r.as_str()).collect();
            let more = if new.len() > shown.len() { format!(" and {} more", new.len() - shown.len()) } else { String::new() };
            items.push(Item {
                kind: Kind::User,
                op: Verb::Update,
                source_id: Some(m.clone()),
                target_id: None,
                outcome: Outcome::OutOfScope,
                message: format!("manager {m} {why}: the manager of {}{more} is left as the target holds it (said once)", shown.join(", ")),
            });
        }
        now.extend(reports.into_iter().map(|r| (r, hash.clone())));
    }
    (items, now)
}

/// The departments' leaders, where the target holds them: each leader's
/// account (one created in this run included), set after the run's user
/// creates and department updates (`Op::SetLeaders`). A leader without an
/// account is left out; when no department of the source names a leader,
/// the source gives none and nothing is changed.
pub(super) fn leaders(
    dept: &super::departments::DeptState<'_>,
    target: &crate::model::TargetSnapshot,
    managers: &Managers<'_>,
    clear_when_empty: bool,
) -> Vec<super::plan::Op> {
    use super::departments::DeptRes;
    use super::plan::{DeptSpec, Op};
    if dept.unheld.contains(super::plan::Field::Leaders) || dept.src.iter().all(|d| d.leader_ids.is_empty()) {
        return Vec::new();
    }
    let mut ops = Vec::new();
    for (i, d) in dept.src.iter().enumerate() {
        let (target_id, have) = match dept.res[i] {
            DeptRes::Matched(t) => match &target.departments[t].leaders {
                Some(have) => (Some(target.departments[t].id.clone()), have.clone()),
                None => continue,
            },
            DeptRes::Created if !d.leader_ids.is_empty() => (None, Vec::new()),
            _ => continue,
        };
        let mut later = false;
        let mut unknown = false;
        let mut want: Vec<SourceId> = Vec::new();
        let mut want_t: Vec<&TargetId> = Vec::new();
        let mut accounts: Vec<Option<TargetId>> = Vec::new();
        for l in &d.leader_ids {
            if want.contains(l) {
                continue;
            }
            // As for a manager: a leader who left is no leader; one whose
            // account orgsync does not know leaves the department as it is.
            let t = match managers.resolve(l).0 {
                Want::Set(t) => t,
                Want::Later => {
                    later = true;
                    accounts.push(None);
                    want.push(l.clone());
                    continue;
                }
                Want::Empty => continue,
                Want::Unknown => {
                    unknown = true;
                    break;
                }
            };
            want_t.push(t);
            accounts.push(Some(t.clone()));
            want.push(l.clone());
        }
        if unknown {
            continue;
        }
        let mut have_sorted: Vec<&TargetId> = have.iter().collect();
        have_sorted.sort();
        have_sorted.dedup();
        want_t.sort();
        let same = !later && want_t == have_sorted;
        if same || (want.is_empty() && !clear_when_empty) {
            continue;
        }
        let spec = DeptSpec {
            external_id: d.source_id.to_string(),
            name: d.name.clone(),
            parent: dept.parent(i).cloned(),
            leaders: want,
            leader_accounts: accounts,
        };
        let from = (!have.is_empty()).then(|| have.iter().map(TargetId::as_str).collect::<Vec<_>>().join(","));
        ops.push(Op::SetLeaders { source_id: d.source_id.clone(), target_id, spec: Box::new(spec), from });
    }
    ops
}
