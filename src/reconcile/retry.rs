//! One failing object never fails every later run. An operation that
//! failed is tried again at the next run, then with backoff between runs
//! (1 h, 6 h, 24 h); after `policy.quarantine_after` failures in a row its
//! object is quarantined: left out of every run, shown in `status`,
//! `/status`, metrics and the run's items, until `orgsync retry` releases
//! it (or it succeeds once the admin fixed it). Pure: the mirror keeps the
//! failures, this decides.

use super::plan::{Item, Op, Outcome, Plan};
use crate::model::Kind;
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;

/// An object as failures are kept: its kind and its source id (its target
/// id for a target-only object).
pub type Key = (Kind, String);

/// An object's failures in a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub count: u32,
    /// The last error, as the run recorded it.
    pub error: String,
    /// Not tried again before this.
    pub next_at: DateTime<Utc>,
    pub quarantined: bool,
}

pub type Failures = HashMap<Key, Failure>;

/// The object an operation acts on (none for mirror-only operations,
/// which cannot fail against the target).
pub fn key(op: &Op) -> Option<Key> {
    if op.mirror_only() {
        return None;
    }
    let id = op.source_id().map(|s| s.to_string()).or_else(|| op.target_id().map(|t| t.to_string()))?;
    Some((op.kind(), id))
}

/// How long after its `count`th failure in a row an object waits: the
/// next run at once after the first, then 1 h, 6 h and 24 h.
pub fn backoff(count: u32) -> Duration {
    match count {
        0 | 1 => Duration::zero(),
        2 => Duration::hours(1),
        3 => Duration::hours(6),
        _ => Duration::hours(24),
    }
}

/// Take out of `plan` the operations of objects that are quarantined or
/// still waiting out their backoff, each said in an item (`quarantined` or
/// `retry_later`). Returns how many were taken out.
pub fn hold(plan: &mut Plan, failures: &Failures, now: DateTime<Utc>) -> usize {
    if failures.is_empty() {
        return 0;
    }
    let mut items = Vec::new();
    plan.ops.retain(|op| {
        let Some(f) = key(op).and_then(|k| failures.get(&k)) else { return true };
        let outcome = if f.quarantined {
            Outcome::Quarantined
        } else if f.next_at > now {
            Outcome::RetryLater
        } else {
            return true;
        };
        let when = match outcome {
            Outcome::Quarantined => format!("quarantined after {} failures in a row; `orgsync retry` releases it", f.count),
            _ => format!("failed {} time(s) in a row; tried again after {}", f.count, f.next_at.format("%Y-%m-%d %H:%M UTC")),
        };
        items.push(Item {
            kind: op.kind(),
            op: op.verb(),
            source_id: op.source_id().cloned(),
            target_id: op.target_id().cloned(),
            outcome,
            message: format!("{when}; last error: {}", f.error),
        });
        false
    });
    let n = items.len();
    plan.items.extend(items);
    n
}

/// What the mirror should keep after a run: the failures of this run's
/// failed objects (counted on from the last run's), and the objects whose
/// operations went through (their failures are over).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub failed: Vec<(Key, Failure)>,
    pub cleared: Vec<Key>,
    /// Objects quarantined by this run.
    pub quarantined: usize,
}

/// Judge this run's outcomes: `(object, None)` for an operation that went
/// through, `(object, Some(error))` for one that failed.
pub fn after(failures: &Failures, outcomes: Vec<(Key, Option<String>)>, now: DateTime<Utc>, quarantine_after: u32) -> Changes {
    let mut out = Changes::default();
    let mut failed: HashMap<Key, String> = HashMap::new();
    let mut went: Vec<Key> = Vec::new();
    for (k, error) in outcomes {
        match error {
            Some(e) => {
                failed.insert(k, e);
            }
            None => went.push(k),
        }
    }
    for k in went {
        if !failed.contains_key(&k) && failures.contains_key(&k) {
            out.cleared.push(k);
        }
    }
    let mut failed: Vec<(Key, String)> = failed.into_iter().collect();
    failed.sort();
    for (k, error) in failed {
        let count = failures.get(&k).map_or(0, |f| f.count) + 1;
        let quarantined = count >= quarantine_after.max(1);
        if quarantined && !failures.get(&k).is_some_and(|f| f.quarantined) {
            out.quarantined += 1;
        }
        out.failed.push((k, Failure { count, error, next_at: now + backoff(count), quarantined }));
    }
    out.cleared.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::{DeptSpec, Plan};

    fn at(hours: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + hours * 3600, 0).unwrap()
    }

    fn create(id: &str) -> Op {
        Op::CreateDepartment {
            source_id: id.into(),
            spec: Box::new(DeptSpec { external_id: id.into(), name: id.into(), parent: None, leaders: vec![], leader_accounts: vec![] }),
            depth: 0,
        }
    }

    /// Run `runs` runs at the given hours in which `d1` always fails.
    fn history(hours: &[i64], quarantine_after: u32) -> (Failures, Vec<(i64, bool)>) {
        let mut failures = Failures::new();
        let mut tried = Vec::new();
        for &h in hours {
            let mut plan = Plan { ops: vec![create("d1"), create("d2")], ..Plan::default() };
            hold(&mut plan, &failures, at(h));
            let tries_d1 = plan.ops.iter().any(|o| o.source_id().is_some_and(|s| s.as_str() == "d1"));
            tried.push((h, tries_d1));
            let outcomes: Vec<(Key, Option<String>)> = plan
                .ops
                .iter()
                .map(|o| (key(o).unwrap(), (o.source_id().unwrap().as_str() == "d1").then(|| "HTTP 400".to_owned())))
                .collect();
            let c = after(&failures, outcomes, at(h), quarantine_after);
            for (k, f) in c.failed {
                failures.insert(k, f);
            }
            for k in c.cleared {
                failures.remove(&k);
            }
        }
        (failures, tried)
    }

    #[test]
    fn a_failing_object_is_retried_next_run_then_with_backoff_then_quarantined() {
        // Hourly runs for two days.
        let hours: Vec<i64> = (0..48).collect();
        let (failures, tried) = history(&hours, 5);
        let when: Vec<i64> = tried.iter().filter(|(_, t)| *t).map(|(h, _)| *h).collect();
        // Fails at 0; again at 1 (next run); then 1 h, 6 h, 24 h apart; the 5th failure quarantines.
        assert_eq!(when, [0, 1, 2, 8, 32]);
        let f = &failures[&(Kind::Department, "d1".to_owned())];
        assert!(f.quarantined && f.count == 5, "{f:?}");
        assert!(!failures.contains_key(&(Kind::Department, "d2".to_owned())), "the object that went through keeps no failure");
        // Quarantined: never tried again, and said.
        let mut plan = Plan { ops: vec![create("d1")], ..Plan::default() };
        assert_eq!(hold(&mut plan, &failures, at(1000)), 1);
        assert!(plan.ops.is_empty());
        assert_eq!(plan.items[0].outcome, Outcome::Quarantined);
        assert!(plan.items[0].message.contains("orgsync retry") && plan.items[0].message.contains("HTTP 400"));
    }

    #[test]
    fn a_success_clears_the_failures_and_a_release_lets_it_be_tried() {
        let (mut failures, _) = history(&[0, 1], 5);
        let k = (Kind::Department, "d1".to_owned());
        assert_eq!(failures[&k].count, 2);
        let c = after(&failures, vec![(k.clone(), None)], at(3), 5);
        assert_eq!(c.cleared, std::slice::from_ref(&k));
        failures.remove(&k);
        let mut plan = Plan { ops: vec![create("d1")], ..Plan::default() };
        assert_eq!(hold(&mut plan, &failures, at(3)), 0, "released: tried again");
    }
}
