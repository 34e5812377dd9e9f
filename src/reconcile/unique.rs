//! `[mapping.users] unique`: a username (or email) two source users would
//! share is made unique with a number, `zhangsan`, `zhangsan2`, before the
//! plan is made. Pure.
//!
//! What a user holds is kept with its binding: a bound user whose target
//! account already has its value, or its value with a number, keeps it, so
//! the numbers do not move when the source lists users in another order.
//! An account bound to a user the snapshot does not have (a leaver, or
//! anyone an on-demand run did not read) holds its value while it exists
//! in the target: nobody else is given it. The rest, by source id, take
//! the first free of `value`, `value2`, `value3`, …; each such choice is an
//! item of the run (`made_unique`).

use super::plan::{Item, Outcome, Verb};
use super::policy::MatchKey;
use super::users::{target_user_key, user_key, user_key_mut};
use crate::model::{Bindings, Kind, Snapshot, SourceId, TargetId, TargetSnapshot, TargetUser, User};
use std::collections::{HashMap, HashSet};

fn value(u: &User, key: MatchKey) -> Option<&str> {
    user_key(u, key).as_deref().filter(|v| !v.trim().is_empty())
}

fn target_value(u: &TargetUser, key: MatchKey) -> Option<&str> {
    target_user_key(u, key).as_deref()
}

fn set(u: &mut User, key: MatchKey, v: String) {
    *user_key_mut(u, key) = Some(v);
}

/// `value` with number `n` (1: itself); an email takes it before the `@`.
pub fn numbered(value: &str, key: MatchKey, n: usize) -> String {
    if n == 1 {
        return value.to_owned();
    }
    match (key, value.rsplit_once('@')) {
        (MatchKey::Email, Some((local, domain))) => format!("{local}{n}@{domain}"),
        _ => format!("{value}{n}"),
    }
}

/// `held` is `value` or `value` with a number (compared ignoring case).
fn is_numbered(held: &str, value: &str, key: MatchKey) -> bool {
    let split = |s: &str| -> (String, String) {
        let s = s.to_lowercase();
        match (key, s.rsplit_once('@')) {
            (MatchKey::Email, Some((local, domain))) => (local.to_owned(), domain.to_owned()),
            _ => (s, String::new()),
        }
    };
    let ((h, held_domain), (v, domain)) = (split(held), split(value));
    let number = |n: &str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && !n.starts_with('0') && n != "1";
    held_domain == domain && (h == v || h.strip_prefix(v.as_str()).is_some_and(number))
}

/// The snapshot with `keys` made unique (`None` when nothing changes),
/// and an item for each value chosen.
pub fn resolve(source: &Snapshot, target: &TargetSnapshot, bindings: &Bindings, keys: &[MatchKey]) -> Option<(Snapshot, Vec<Item>)> {
    if keys.is_empty() || source.users.is_empty() {
        return None;
    }
    let accounts: HashMap<&TargetId, &TargetUser> = target.users.iter().map(|u| (&u.id, u)).collect();
    let in_source: HashSet<&SourceId> = source.users.iter().map(|u| &u.source_id).collect();
    let mut out = source.clone();
    let mut items = Vec::new();
    // Accounts bound to users of this snapshot: those users' values are decided here.
    let own: HashSet<&TargetId> = bindings.users.iter().filter(|(s, _)| in_source.contains(s)).map(|(_, t)| t).collect();
    let bound: HashSet<&TargetId> = bindings.users.values().collect();
    for &key in keys {
        let lower = |v: &str| v.to_lowercase();
        // Every other account holds its value: a leaver's, anyone's an
        // on-demand run did not read, one nobody is bound to.
        let mut taken: HashSet<String> =
            target.users.iter().filter(|a| !own.contains(&a.id)).filter_map(|a| target_value(a, key)).map(lower).collect();
        // A value an account nobody is bound to holds is left to matching:
        // one claimant takes that account over, several are a conflict.
        let unbound: HashSet<String> =
            target.users.iter().filter(|a| !bound.contains(&a.id)).filter_map(|a| target_value(a, key)).map(lower).collect();
        // What some user wants as it is: never given to another as a number.
        let wanted: HashSet<String> = out.users.iter().filter_map(|u| value(u, key)).map(lower).collect();
        // Bound users keep what their account holds, first by source id.
        let mut order: Vec<usize> = (0..out.users.len()).filter(|&i| value(&out.users[i], key).is_some()).collect();
        order.sort_by(|&a, &b| out.users[a].source_id.cmp(&out.users[b].source_id));
        let mut open = Vec::new();
        for i in order {
            let u = &out.users[i];
            let want = value(u, key).unwrap_or_default();
            let held = bindings.users.get(&u.source_id).and_then(|t| accounts.get(t)).and_then(|a| target_value(a, key));
            match held {
                Some(h) if is_numbered(h, want, key) && !taken.contains(&lower(h)) => {
                    taken.insert(lower(h));
                    let h = h.to_owned();
                    set(&mut out.users[i], key, h);
                }
                _ if unbound.contains(&lower(want)) => {}
                _ => open.push(i),
            }
        }
        // Then each value as it is to its first claimant: bound users (a
        // target that does not show the value) before new ones.
        open.sort_by_key(|&i| !bindings.users.contains_key(&out.users[i].source_id));
        let mut rest = Vec::new();
        for i in open {
            let want = lower(value(&out.users[i], key).unwrap_or_default());
            if taken.insert(want) {
                continue;
            }
            rest.push(i);
        }
        // The others take the first number nobody holds or wants.
        for i in rest {
            let want = value(&out.users[i], key).unwrap_or_default().to_owned();
            let mut n = 2;
            while taken.contains(&lower(&numbered(&want, key, n))) || wanted.contains(&lower(&numbered(&want, key, n))) {
                n += 1;
            }
            let got = numbered(&want, key, n);
            taken.insert(lower(&got));
            let u = &out.users[i];
            let verb = if bindings.users.contains_key(&u.source_id) { Verb::Update } else { Verb::Create };
            items.push(Item {
                kind: Kind::User,
                op: verb,
                source_id: Some(u.source_id.clone()),
                target_id: bindings.users.get(&u.source_id).cloned(),
                outcome: Outcome::MadeUnique,
                message: format!("{key} {want:?} is another user's: this user's is {got:?} ([mapping.users] unique)"),
            });
            set(&mut out.users[i], key, got);
        }
    }
    Some((out, items))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TargetId;

    fn user(id: &str, username: &str) -> User {
        User { source_id: id.into(), username: Some(username.into()), name: Some(id.into()), active: true, ..User::default() }
    }

    fn account(id: &str, username: &str) -> TargetUser {
        TargetUser {
            id: TargetId(id.into()),
            external_id: None,
            username: Some(username.into()),
            name: None,
            email: None,
            mobile: None,
            employee_no: None,
            nickname: None,
            title: None,
            department: None,
            departments: vec![],
            active: true,
            ..TargetUser::default()
        }
    }

    fn names(s: &Snapshot) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = s.users.iter().map(|u| (u.source_id.0.clone(), u.username.clone().unwrap())).collect();
        v.sort();
        v
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
    }

    #[test]
    fn two_users_wanting_one_name_get_a_number_by_source_id() {
        let s = Snapshot { users: vec![user("b", "zhangsan"), user("a", "zhangsan"), user("c", "lisi")], ..Snapshot::default() };
        let (got, items) = resolve(&s, &TargetSnapshot::default(), &Bindings::default(), &[MatchKey::Username]).unwrap();
        assert_eq!(names(&got), pairs(&[("a", "zhangsan"), ("b", "zhangsan2"), ("c", "lisi")]));
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].source_id, Some("b".into()));
        assert_eq!(items[0].outcome, Outcome::MadeUnique);
    }

    #[test]
    fn a_bound_user_keeps_its_number_whatever_the_order_and_a_leavers_name_is_not_given_away() {
        // b holds zhangsan, a holds zhangsan2 (b came first).
        let mut bindings = Bindings::default();
        bindings.users.insert("b".into(), TargetId("t-b".into()));
        bindings.users.insert("a".into(), TargetId("t-a".into()));
        let target = TargetSnapshot { users: vec![account("t-b", "zhangsan"), account("t-a", "zhangsan2")], ..TargetSnapshot::default() };
        let s = Snapshot { users: vec![user("a", "zhangsan"), user("b", "zhangsan")], ..Snapshot::default() };
        let (got, items) = resolve(&s, &target, &bindings, &[MatchKey::Username]).unwrap();
        assert_eq!(names(&got), pairs(&[("a", "zhangsan2"), ("b", "zhangsan")]));
        assert!(items.is_empty(), "nothing chosen anew: {items:?}");
        // b leaves (its account stays, disabled); a newcomer c is not given zhangsan.
        let s = Snapshot { users: vec![user("a", "zhangsan"), user("c", "zhangsan")], ..Snapshot::default() };
        let (got, items) = resolve(&s, &target, &bindings, &[MatchKey::Username]).unwrap();
        assert_eq!(names(&got), pairs(&[("a", "zhangsan2"), ("c", "zhangsan3")]));
        assert_eq!(items.len(), 1);
        // Once b's account is gone from the target, its name is free again.
        let target = TargetSnapshot { users: vec![account("t-a", "zhangsan2")], ..TargetSnapshot::default() };
        let (got, _) = resolve(&s, &target, &bindings, &[MatchKey::Username]).unwrap();
        assert_eq!(names(&got), pairs(&[("a", "zhangsan2"), ("c", "zhangsan")]));
    }

    #[test]
    fn a_value_an_unbound_account_holds_is_left_to_matching_and_numbers_skip_held_and_wanted_values() {
        // An account nobody is bound to holds zhangsan: both claimants keep
        // zhangsan (matching reports the conflict); zhangsan2, held by
        // another unbound account, is never given as a number.
        let target = TargetSnapshot { users: vec![account("t1", "zhangsan"), account("t2", "lisi2")], ..TargetSnapshot::default() };
        let s = Snapshot {
            users: vec![user("a", "zhangsan"), user("b", "zhangsan"), user("c", "lisi"), user("d", "lisi"), user("e", "lisi3")],
            ..Snapshot::default()
        };
        let (got, items) = resolve(&s, &target, &Bindings::default(), &[MatchKey::Username]).unwrap();
        assert_eq!(
            names(&got),
            pairs(&[("a", "zhangsan"), ("b", "zhangsan"), ("c", "lisi"), ("d", "lisi4"), ("e", "lisi3")]),
            "lisi2 is held, lisi3 is wanted as it is"
        );
        assert_eq!(items.len(), 1);
    }

    #[test]
    fn case_is_ignored_and_emails_take_the_number_before_the_at() {
        let mut a = user("a", "x");
        a.email = Some("Li@x.cn".into());
        let mut b = user("b", "y");
        b.email = Some("li@x.cn".into());
        let s = Snapshot { users: vec![a, b], ..Snapshot::default() };
        let (got, _) = resolve(&s, &TargetSnapshot::default(), &Bindings::default(), &[MatchKey::Email]).unwrap();
        assert_eq!(got.users[1].email.as_deref(), Some("li2@x.cn"));
        assert!(is_numbered("zhangsan12", "zhangsan", MatchKey::Username));
        assert!(!is_numbered("zhangsan1", "zhangsan", MatchKey::Username));
        assert!(!is_numbered("zhangsanfeng", "zhangsan", MatchKey::Username));
        assert!(is_numbered("Li3@x.cn", "li@x.cn", MatchKey::Email));
    }

    proptest::proptest! {
        /// Whatever the names, their case, the order and who is bound:
        /// no two users end with one value, and each keeps its own with a number.
        #[test]
        fn values_end_unique(wanted in proptest::collection::vec((0..3usize, proptest::bool::ANY, proptest::bool::ANY), 0..12)) {
            let mut bindings = Bindings::default();
            let mut target = TargetSnapshot::default();
            let mut users = Vec::new();
            for (i, (n, upper, bound)) in wanted.iter().enumerate() {
                let base = ["zhang", "li", "zhang2"][*n];
                let name = if *upper { base.to_uppercase() } else { base.to_owned() };
                users.push(user(&format!("u{i:02}"), &name));
                if *bound {
                    let t = format!("t{i}");
                    bindings.users.insert(format!("u{i:02}").as_str().into(), TargetId(t.clone()));
                    target.users.push(account(&t, &numbered(&name, MatchKey::Username, 1 + i % 3)));
                }
            }
            let s = Snapshot { users, ..Snapshot::default() };
            let (got, _) = resolve(&s, &target, &bindings, &[MatchKey::Username]).unwrap_or((s.clone(), vec![]));
            let mut seen = HashSet::new();
            for (before, after) in s.users.iter().zip(&got.users) {
                let (b, a) = (before.username.clone().unwrap(), after.username.clone().unwrap());
                proptest::prop_assert!(seen.insert(a.to_lowercase()), "{a} twice: {:?}", names(&got));
                proptest::prop_assert!(is_numbered(&a, &b, MatchKey::Username), "{b} became {a}");
            }
        }
    }

    #[test]
    fn nothing_configured_changes_nothing() {
        let s = Snapshot { users: vec![user("a", "x")], ..Snapshot::default() };
        assert!(resolve(&s, &TargetSnapshot::default(), &Bindings::default(), &[]).is_none());
    }
}
