//! What departments and users match alike, in this order: the binding
//! kept in the mirror; then the target's externalId equal to the source id
//! (orgsync's own mark); then each kind's own keys (departments: the name
//! under the matched parent; users: the match keys). Also: the targets an
//! unreadable record keeps, and bindings read backwards.

use super::plan::Op;
use crate::model::{Kind, Snapshot, SourceId, TargetId, non_empty};
use rustc_hash::FxHashMap as HashMap;

/// The target objects of unreadable records that have an id are left as
/// they are: claimed, so neither matched to another source object nor
/// taken for target-only.
pub(super) fn claim_unreadable(
    source: &Snapshot,
    kind: Kind,
    bound: &HashMap<SourceId, TargetId>,
    tindex: &HashMap<&TargetId, usize>,
    by_ext: &ByExternalId<'_>,
    claimed: &mut [bool],
) {
    for id in source.unreadable.iter().filter(|r| r.kind == kind).filter_map(|r| r.source_id.as_ref()) {
        let via_binding = bound.get(id).and_then(|t| tindex.get(t)).copied();
        for t in via_binding.into_iter().chain(by_ext.get(id.as_str()).into_iter().flatten().copied()) {
            claimed[t] = true;
        }
    }
}

/// A snapshot read in part: the targets bound to source objects it does
/// not hold, and that were not named (a named one not read is gone), are
/// claimed, as a whole run's binding step would claim them.
pub(super) fn claim_unread(
    source: &Snapshot,
    kind: Kind,
    bound: &HashMap<SourceId, TargetId>,
    tindex: &HashMap<&TargetId, usize>,
    claimed: &mut [bool],
) {
    let Some((users, departments)) = &source.partial else { return };
    let (read, named): (std::collections::HashSet<&SourceId>, _) = match kind {
        Kind::User => (source.users.iter().map(|u| &u.source_id).collect(), users),
        Kind::Department => (source.departments.iter().map(|d| &d.source_id).collect(), departments),
    };
    for (s, t) in bound {
        if !read.contains(s)
            && !named.contains(s)
            && let Some(&i) = tindex.get(t)
        {
            claimed[i] = true;
        }
    }
}

pub(super) fn reverse(map: &HashMap<SourceId, TargetId>) -> HashMap<&TargetId, &SourceId> {
    map.iter().map(|(s, t)| (t, s)).collect()
}

/// Step 1, the binding: source `i` whose bound target still exists (and is
/// not claimed yet) is matched to it; a binding to a target that is gone is
/// dropped (an unbind, returned with the matches). The targets are looked
/// up in parts ([`super::in_parts`]), then claimed in the sources' order.
pub(super) fn by_binding(
    kind: Kind,
    sources: &[&SourceId],
    bound: &HashMap<SourceId, TargetId>,
    tindex: &HashMap<&TargetId, usize>,
    claimed: &mut [bool],
) -> (Vec<Option<usize>>, Vec<Op>) {
    let found = super::in_parts(sources.len(), |part| {
        sources[part].iter().map(|s| bound.get(*s).map(|tid| tindex.get(tid).copied().ok_or(tid))).collect::<Vec<_>>()
    });
    let mut unbinds = Vec::new();
    let matched = found
        .into_iter()
        .flatten()
        .zip(sources)
        .map(|(found, s)| match found? {
            Ok(t) if !claimed[t] => {
                claimed[t] = true;
                Some(t)
            }
            Ok(_) => None,
            Err(tid) => {
                unbinds.push(Op::Unbind {
                    kind,
                    source_id: (*s).clone(),
                    target_id: tid.clone(),
                    reason: format!("bound target {kind} no longer exists"),
                });
                None
            }
        })
        .collect();
    (matched, unbinds)
}

/// The reason of a bind by step 2.
pub(super) const BY_EXTERNAL_ID: &str = "matched by external id equals the source id";

/// Step 2's index: target positions by their (non-blank) externalId. Most
/// have one: kept in place, not in a list of its own (100,000 of them).
pub(super) type ByExternalId<'a> = HashMap<&'a str, smallvec::SmallVec<[usize; 1]>>;

/// [`ByExternalId`] of these positions and their ids.
pub(super) fn external_id_index<'a>(ids: impl Iterator<Item = (usize, &'a Option<String>)>) -> ByExternalId<'a> {
    let mut by_ext = ByExternalId::default();
    for (t, e) in ids {
        if let Some(e) = non_empty(e) {
            by_ext.entry(e).or_default().push(t);
        }
    }
    by_ext
}
