//! The pure core: `plan_with(source, target, bindings, history, policy,
//! options) -> Planned` (and `plan`, with no history).
//!
//! No I/O happens here (no tokio, reqwest or rusqlite): the plan is plain data
//! that `orgsync sync --dry-run` prints and `sync::apply` carries out. The
//! users' diff runs in parts, one per core ([`in_parts`]), joined in order.
//! Policy semantics follow docs/design.md's table. The stages, each a
//! function that returns a value: `departments.rs` (with `tree.rs` for
//! depths) and `users.rs` match (`matching.rs` for what both kinds share),
//! diff and judge target-only objects; `plan.rs` orders the operations;
//! `guard.rs` holds back deletions; `unkept.rs` and `retry.rs` apply the
//! history.

pub mod compare;
mod departments;
mod guard;
mod managers;
mod matching;
pub mod only;
mod plan;
mod policy;
pub mod retry;
pub mod scope;
mod simulate;
mod tree;
pub mod unique;
pub mod unkept;
mod users;

pub use guard::{HELD_BY_GUARD, removals_digest};
pub use plan::{
    Change, DeptSpec, Field, FieldSet, History, Item, Op, Outcome, Plan, Planned, UserSpec, Verb, attributes_text, plan, plan_with,
    removal_label,
};
pub use policy::{DepartmentPolicy, Guard, MatchKey, Policy, Retry, SourceOnly, TargetOnly, UserField, UserPolicy};
pub use simulate::{remove_department, set_user_field, simulate};
pub use users::{normalized as normalized_key, target_user_key, user_key};

/// Per-run knobs that are not policy: the admin's one-time approval, and
/// what the target can hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// `--allow-deletes N`: let up to N held-back deletes/disables through once.
    pub allow_deletes: u64,
    /// The admin page's approval: the digest ([`guard::removals_digest`])
    /// of the removals it showed. All of them go through if the guard would
    /// hold back exactly those; otherwise none (beyond `allow_deletes`).
    pub approved: Option<u64>,
    /// How the target holds departments (the target says; see [`DepartmentShape`]).
    pub departments: DepartmentShape,
    /// User fields the target cannot hold: never compared (the target says).
    pub unheld: FieldSet,
    /// The target holds one department per user, its primary (the first):
    /// only that one is written and compared (the target says).
    pub primary_only: bool,
    /// Now, for grace periods (`disable_then_delete`); `None`: nothing falls due.
    pub now: Option<chrono::DateTime<chrono::Utc>>,
    /// On demand: user removals the on-demand and event runs since the
    /// last full run made; the guard counts them with this run's, so a
    /// stream of events removes no more than one full run could.
    pub prior_removals: u64,
}

/// How a target holds departments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DepartmentShape {
    /// As a tree: parents are written and compared (moves are updates).
    #[default]
    Tree,
    /// One object per department, no nesting: parents are neither written
    /// nor compared; names are matched across the whole target.
    Flat,
    /// No department objects: no department is created, updated or
    /// deleted, user memberships are not compared; a user's primary
    /// department's name is still an attribute.
    None,
}

/// The fewest items a part of [`in_parts`] takes: below it a thread's
/// start costs more than it saves. Tests split anything, to run the
/// parts' path on their small orgs.
const PART_MIN: usize = if cfg!(test) { 1 } else { 8_192 };

#[cfg(test)]
thread_local! {
    /// A test's number of parts, instead of the machine's cores.
    static PARTS: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// How many parts [`in_parts`] splits `n` items into: one per core, each at least [`PART_MIN`].
fn parts(n: usize) -> usize {
    #[cfg(test)]
    if let Some(k) = PARTS.get() {
        return k.clamp(1, n.max(1));
    }
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    cores.min(n / PART_MIN).max(1)
}

/// `f` over `0..n` split into consecutive ranges, each on a thread of its
/// own (the first on this one), the results in the ranges' order. A
/// thread that cannot start leaves its range to this one; a part's panic
/// is this one's.
fn in_parts<T: Send>(n: usize, f: impl Fn(std::ops::Range<usize>) -> T + Sync) -> Vec<T> {
    let k = parts(n);
    let size = n.div_ceil(k).max(1);
    let mut ranges = (0..k).map(|p| (p * size).min(n)..((p + 1) * size).min(n));
    let Some(first) = ranges.next() else { return Vec::new() };
    if k == 1 {
        return vec![f(first)];
    }
    let f = &f;
    std::thread::scope(|s| {
        let started: Vec<_> = ranges
            .map(|r| {
                plan_thread()
                    .spawn_scoped(s, {
                        let r = r.clone();
                        move || f(r)
                    })
                    .map_err(|_| r)
            })
            .collect();
        let mut out = vec![f(first)];
        for part in started {
            out.push(match part {
                Ok(h) => joined(h),
                Err(r) => f(r),
            });
        }
        out
    })
}

/// A thread of the plan's, for [`in_parts`] and [`both`].
fn plan_thread() -> std::thread::Builder {
    std::thread::Builder::new().name("orgsync-plan".into())
}

/// A plan thread's result; its panic is this thread's.
fn joined<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// `a` and `b` at once, `b` on a thread of its own when `n` items make
/// parts ([`parts`]): else, or when the thread cannot start, one after the other.
fn both<A, B: Send>(n: usize, a: impl FnOnce() -> A, b: impl Fn() -> B + Sync) -> (A, B) {
    if parts(n) < 2 {
        return (a(), b());
    }
    let b = &b;
    std::thread::scope(|s| match plan_thread().spawn_scoped(s, b) {
        Ok(h) => {
            let a = a();
            (a, joined(h))
        }
        Err(_) => (a(), b()),
    })
}

/// Normalise a mobile number for matching: keep digits and a leading `+`.
pub fn normalize_mobile(s: &str) -> String {
    let t = s.trim();
    let mut out = String::with_capacity(t.len());
    if t.starts_with('+') {
        out.push('+');
    }
    out.extend(t.chars().filter(char::is_ascii_digit));
    out
}

#[cfg(test)]
mod tests;
