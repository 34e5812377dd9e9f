//! Property tests over random directories and random edits, plus examples
//! for the policy table.

use super::*;
use crate::model::{Bindings, Department, Kind, Snapshot, SourceId, TargetId, TargetSnapshot, TargetUser, User};
use proptest::prelude::*;
use std::collections::HashMap;

fn dept(id: &str, parent: Option<&str>, name: &str) -> Department {
    Department { source_id: id.into(), parent_id: parent.map(SourceId::from), name: name.into(), order: 0, leader_ids: vec![] }
}

fn user(id: &str, email: Option<&str>, deps: &[&str]) -> User {
    User {
        source_id: id.into(),
        username: Some(format!("user{id}")),
        name: Some(format!("User {id}")),
        email: email.map(str::to_owned),
        department_ids: deps.iter().map(|d| SourceId::from(*d)).collect(),
        active: true,
        ..Default::default()
    }
}

fn arb_source() -> impl Strategy<Value = Snapshot> {
    (0usize..12, 0usize..30).prop_flat_map(|(nd, nu)| {
        let parents = proptest::collection::vec(proptest::option::of(0usize..12), nd);
        let names = proptest::collection::vec(0u8..4, nd);
        let users = proptest::collection::vec(
            (
                proptest::option::weighted(0.9, 0u8..40),    // email pool: collisions happen
                proptest::collection::vec(0usize..12, 0..3), // departments
                any::<bool>(),                               // title set
                proptest::bool::weighted(0.9),               // active
                proptest::option::weighted(0.5, 0usize..35), // manager: one of the users, or nobody the source has
            ),
            nu,
        );
        (parents, names, users).prop_map(move |(parents, names, users)| {
            let departments = (0..nd)
                .map(|i| {
                    // Parents only among earlier departments: a forest.
                    let parent = parents[i].filter(|&p| p < i).map(|p| format!("d{p}"));
                    dept(&format!("d{i}"), parent.as_deref(), &format!("Dept {}", names[i]))
                })
                .collect();
            let users = users
                .into_iter()
                .enumerate()
                .map(|(i, (email, deps, title, active, manager))| {
                    let deps: Vec<String> = deps.into_iter().filter(|&d| d < nd).map(|d| format!("d{d}")).collect();
                    let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
                    let mut u = user(&format!("u{i}"), email.map(|e| format!("p{e}@x.test")).as_deref(), &deps);
                    u.title = title.then(|| "Engineer".into());
                    u.active = active;
                    u.manager_id = manager.map(|m| SourceId(format!("u{m}")));
                    u
                })
                .collect();
            Snapshot { departments, users, ..Default::default() }
        })
    })
}

#[derive(Clone, Debug)]
enum Edit {
    RemoveUser(usize),
    ChangeEmail(usize, u8),
    RenameDept(usize),
    MoveDept(usize, usize),
    RemoveDept(usize),
    Deactivate(usize),
    AddTargetUser(u8),
    AddTargetDept,
}

fn arb_edits() -> impl Strategy<Value = Vec<Edit>> {
    proptest::collection::vec(
        prop_oneof![
            (0usize..30).prop_map(Edit::RemoveUser),
            (0usize..30, 0u8..40).prop_map(|(u, e)| Edit::ChangeEmail(u, e)),
            (0usize..12).prop_map(Edit::RenameDept),
            (0usize..12, 0usize..12).prop_map(|(a, b)| Edit::MoveDept(a, b)),
            (0usize..12).prop_map(Edit::RemoveDept),
            (0usize..30).prop_map(Edit::Deactivate),
            (0u8..40).prop_map(Edit::AddTargetUser),
            Just(Edit::AddTargetDept),
        ],
        0..8,
    )
}

fn apply_edits(src: &mut Snapshot, tgt: &mut TargetSnapshot, edits: &[Edit]) {
    for (n, e) in edits.iter().enumerate() {
        let nu = src.users.len();
        let nd = src.departments.len();
        match *e {
            Edit::RemoveUser(i) if i < nu => {
                src.users.remove(i);
            }
            Edit::ChangeEmail(i, m) if i < nu => src.users[i].email = Some(format!("p{m}@x.test")),
            Edit::RenameDept(i) if i < nd => src.departments[i].name.push_str(" (renamed)"),
            Edit::MoveDept(a, b) if a < nd && b < a => {
                // Only under an earlier department: the source stays a forest.
                src.departments[a].parent_id = Some(src.departments[b].source_id.clone());
            }
            Edit::RemoveDept(i) if i < nd => {
                let id = src.departments.remove(i).source_id;
                for d in &mut src.departments {
                    if d.parent_id.as_ref() == Some(&id) {
                        d.parent_id = None;
                    }
                }
                for u in &mut src.users {
                    u.department_ids.retain(|x| x != &id);
                }
            }
            Edit::Deactivate(i) if i < nu => src.users[i].active = false,
            Edit::AddTargetUser(m) => tgt.users.push(TargetUser {
                id: TargetId(format!("direct-{n}")),
                username: Some(format!("direct{n}")),
                email: Some(format!("p{m}@x.test")),
                active: true,
                ..Default::default()
            }),
            Edit::AddTargetDept => tgt.departments.push(crate::model::TargetDepartment {
                id: TargetId(format!("direct-dept-{n}")),
                external_id: None,
                name: format!("Direct {n}"),
                parent: None,
                leaders: None,
            }),
            _ => {}
        }
    }
}

fn arb_policy() -> impl Strategy<Value = Policy> {
    (
        prop_oneof![Just(TargetOnly::Ignore), Just(TargetOnly::Disable), Just(TargetOnly::Delete)],
        prop_oneof![Just(TargetOnly::Ignore), Just(TargetOnly::Delete)],
        prop_oneof![Just(SourceOnly::Ignore), Just(SourceOnly::CreateAndBind)],
        prop_oneof![
            Just(vec![MatchKey::Email]),
            Just(vec![MatchKey::Username, MatchKey::Email]),
            Just(vec![MatchKey::Email, MatchKey::Mobile])
        ],
        proptest::collection::vec(0u8..40, 0..3),
        any::<bool>(),
        any::<(bool, bool)>(),
    )
        .prop_map(|(ut, dt, so, match_by, protected, title, (create_without_match_keys, clear_when_empty))| {
            let mut fields = UserField::DEFAULTS.to_vec();
            if title {
                fields.push(UserField::Title);
            }
            Policy {
                users: UserPolicy {
                    target_only: ut,
                    source_only: so,
                    match_by,
                    protected: protected.into_iter().map(|m| format!("p{m}@x.test")).chain(["direct0".to_owned()]).collect(),
                    fields,
                    create_without_match_keys,
                    clear_when_empty,
                    delete_after: std::time::Duration::from_secs(86_400),
                    unique: Vec::new(),
                    attributes: Vec::new(),
                },
                departments: DepartmentPolicy {
                    target_only: dt,
                    source_only: SourceOnly::CreateAndBind,
                    protected: vec!["Direct 1".into()],
                    delete_after: std::time::Duration::ZERO,
                },
                guard: Guard::uniform(u64::MAX, 100),
                retry: Default::default(),
            }
        })
}

/// Sync `first` into an empty target, then edit both sides.
fn scenario(first: &Snapshot, edits: &[Edit], policy: &Policy) -> (Snapshot, TargetSnapshot, Bindings) {
    let empty = TargetSnapshot::default();
    let p = plan(first, &empty, &Bindings::default(), policy, RunOptions::default());
    let (mut tgt, b) = simulate(&empty, &Bindings::default(), &p.ops);
    let mut src = first.clone();
    apply_edits(&mut src, &mut tgt, edits);
    (src, tgt, b)
}

fn protected_ids(t: &TargetSnapshot, policy: &Policy) -> Vec<TargetId> {
    let prot = &policy.users.protected;
    let mut ids: Vec<TargetId> = t
        .users
        .iter()
        .filter(|u| {
            prot.iter().any(|p| {
                u.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(p))
                    || u.username.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(p))
            })
        })
        .map(|u| u.id.clone())
        .collect();
    ids.extend(t.departments.iter().filter(|d| policy.departments.protected.contains(&d.name)).map(|d| d.id.clone()));
    ids
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn applying_the_plan_then_planning_again_gives_no_operations(
        first in arb_source(), edits in arb_edits(), policy in arb_policy()
    ) {
        let (src, tgt, b) = scenario(&first, &edits, &policy);
        let p1 = plan(&src, &tgt, &b, &policy, RunOptions::default());
        let (tgt2, b2) = simulate(&tgt, &b, &p1.ops);
        let p2 = plan(&src, &tgt2, &b2, &policy, RunOptions::default());
        prop_assert!(p2.ops.is_empty(), "second plan not empty: {:#?}\nfirst: {:#?}", p2.ops, p1.ops);
    }

    /// After one run, a bound user whose manager is an active user with an
    /// account holds that account as its manager: a manager created in the
    /// same run included, cycles too.
    #[test]
    fn after_one_run_every_bound_user_holds_its_active_manager_s_account(
        first in arb_source(), edits in arb_edits(), policy in arb_policy()
    ) {
        // The first run into an empty target (everyone created in it), and a run after edits.
        for (src, tgt, b) in [(first.clone(), TargetSnapshot::default(), Bindings::default()), scenario(&first, &edits, &policy)] {
            let p1 = plan(&src, &tgt, &b, &policy, RunOptions::default());
            let (tgt2, b2) = simulate(&tgt, &b, &p1.ops);
            let protected = protected_ids(&tgt2, &policy);
            let active: HashMap<&SourceId, bool> = src.users.iter().map(|u| (&u.source_id, u.active)).collect();
            for u in &src.users {
                let (Some(t), Some(m)) = (b2.users.get(&u.source_id), &u.manager_id) else { continue };
                let (Some(true), Some(tm)) = (active.get(m).copied(), b2.users.get(m)) else { continue };
                if protected.contains(t) || !policy.users.fields.contains(&UserField::Manager) {
                    continue;
                }
                let held = tgt2.users.iter().find(|x| &x.id == t).and_then(|x| x.manager.as_ref());
                prop_assert_eq!(held, Some(tm), "user {} manager {}: {:#?}", u.source_id, m, p1.ops);
            }
        }
    }

    #[test]
    fn every_department_shape_converges_flat_writes_no_parent_and_none_no_department(
        first in arb_source(), edits in arb_edits(), policy in arb_policy(),
        shape in prop_oneof![Just(DepartmentShape::Tree), Just(DepartmentShape::Flat), Just(DepartmentShape::None)]
    ) {
        let (src, tgt, b) = scenario(&first, &edits, &policy);
        let options = RunOptions { departments: shape, ..RunOptions::default() };
        let p1 = plan(&src, &tgt, &b, &policy, options);
        for op in &p1.ops {
            match (shape, op) {
                (DepartmentShape::None, op) => prop_assert_eq!(op.kind(), crate::model::Kind::User, "{:?}", op),
                (DepartmentShape::Flat, Op::CreateDepartment { spec, .. }) => prop_assert!(spec.parent.is_none(), "{:?}", op),
                (DepartmentShape::Flat, Op::UpdateDepartment { changes, .. }) => {
                    prop_assert!(changes.iter().all(|c| c.field != Field::Parent), "{:?}", op)
                }
                _ => {}
            }
        }
        let (tgt2, b2) = simulate(&tgt, &b, &p1.ops);
        let p2 = plan(&src, &tgt2, &b2, &policy, options);
        prop_assert!(p2.ops.is_empty(), "second plan not empty: {:#?}\nfirst: {:#?}", p2.ops, p1.ops);
    }

    /// The users' diff split into parts on threads gives the plan of one
    /// pass: the same operations and items in the same order, managers
    /// without an account with their reports in the users' order.
    #[test]
    fn a_plan_in_parts_is_the_plan_of_one_pass(
        first in arb_source(), edits in arb_edits(), policy in arb_policy(), parts in 2usize..5
    ) {
        let (src, tgt, b) = scenario(&first, &edits, &policy);
        let in_parts = |k: usize| {
            super::PARTS.set(Some(k));
            let p = plan_with(&src, &tgt, &b, &History::default(), &policy, RunOptions::default());
            super::PARTS.set(None);
            format!("{:?}\n{:?}\n{:?}", p.plan.ops, p.plan.items, p.memory.said)
        };
        prop_assert_eq!(in_parts(parts), in_parts(1));
    }

    #[test]
    fn protected_objects_never_appear_in_a_plan(
        first in arb_source(), edits in arb_edits(), policy in arb_policy()
    ) {
        let (src, tgt, b) = scenario(&first, &edits, &policy);
        let protected = protected_ids(&tgt, &policy);
        let p = plan(&src, &tgt, &b, &policy, RunOptions::default());
        for op in &p.ops {
            if let Some(t) = op.target_id() {
                prop_assert!(!protected.contains(t), "protected {t} in {op:?}");
            }
        }
    }

    #[test]
    fn deletes_never_exceed_the_guard_without_approval(
        first in arb_source(), edits in arb_edits(), policy in arb_policy(),
        max_deletes in 0u64..6, pct in 0u64..60, allow in prop_oneof![Just(0u64), 0u64..5]
    ) {
        let policy = Policy { guard: Guard::uniform(max_deletes, pct), ..policy };
        let (src, tgt, b) = scenario(&first, &edits, &policy);
        let p = plan(&src, &tgt, &b, &policy, RunOptions { allow_deletes: allow, ..RunOptions::default() });
        // Each kind against its own limits and its own share of the target.
        for (kind, total) in [(Kind::User, tgt.users.len()), (Kind::Department, tgt.departments.len())] {
            let n = p.ops.iter().filter(|o| super::guard::counted(o) == Some(kind)).count() as u64;
            let within = n <= max_deletes && n * 100 <= pct * total as u64
                && !(src.users.is_empty() && src.departments.is_empty());
            prop_assert!(n == 0 || within || n <= allow, "{n} {kind} removals, guard {max_deletes}/{pct}% of {total}, allow {allow}");
        }
        let held = p.items.iter().any(|i| i.outcome == Outcome::HeldBack);
        prop_assert_eq!(held, p.guard.is_some());
    }

    #[test]
    fn parents_are_created_first_and_deleted_last(
        first in arb_source(), edits in arb_edits(), policy in arb_policy()
    ) {
        let (src, tgt, b) = scenario(&first, &edits, &policy);
        let p = plan(&src, &tgt, &b, &policy, RunOptions::default());
        let mut created: HashMap<&SourceId, usize> = HashMap::new();
        let mut deleted: HashMap<&TargetId, usize> = HashMap::new();
        for (i, op) in p.ops.iter().enumerate() {
            match op {
                Op::CreateDepartment { source_id, .. } => { created.insert(source_id, i); }
                Op::DeleteDepartment { target_id, .. } => { deleted.insert(target_id, i); }
                _ => {}
            }
        }
        for (i, op) in p.ops.iter().enumerate() {
            if let Op::CreateDepartment { spec, .. } = op
                && let Some(parent) = &spec.parent
                && let Some(&pi) = created.get(parent)
            {
                prop_assert!(pi < i, "child create {i} before parent create {pi}");
            }
        }
        for d in &tgt.departments {
            if let (Some(&ci), Some(parent)) = (deleted.get(&d.id), &d.parent)
                && let Some(&pi) = deleted.get(parent)
            {
                prop_assert!(ci < pi, "parent delete {pi} before child delete {ci}");
            }
        }
    }
}

fn base_policy() -> Policy {
    Policy::default()
}

fn first_sync(src: &Snapshot, policy: &Policy) -> (TargetSnapshot, Bindings) {
    let p = plan(src, &TargetSnapshot::default(), &Bindings::default(), policy, RunOptions::default());
    simulate(&TargetSnapshot::default(), &Bindings::default(), &p.ops)
}

#[test]
fn a_shared_email_in_the_target_binds_nothing_and_names_both_candidates() {
    let src = Snapshot { departments: vec![], users: vec![user("u1", Some("a@x"), &[])], ..Default::default() };
    let mk = |id: &str| TargetUser { id: id.into(), email: Some("A@x".into()), active: true, ..Default::default() };
    let tgt = TargetSnapshot { departments: vec![], users: vec![mk("t1"), mk("t2")] };
    let mut policy = base_policy();
    policy.users.target_only = TargetOnly::Delete;
    let p = plan(&src, &tgt, &Bindings::default(), &policy, RunOptions::default());
    assert!(p.ops.is_empty(), "{:?}", p.ops);
    assert_eq!(p.items.len(), 1);
    assert_eq!(p.items[0].outcome, Outcome::Conflict);
    assert!(p.items[0].message.contains("t1") && p.items[0].message.contains("t2"), "{}", p.items[0].message);
}

#[test]
fn two_source_users_sharing_an_email_are_both_conflicts_not_creates() {
    let src =
        Snapshot { departments: vec![], users: vec![user("u1", Some("a@x"), &[]), user("u2", Some("A@X"), &[])], ..Default::default() };
    let p = plan(&src, &TargetSnapshot::default(), &Bindings::default(), &base_policy(), RunOptions::default());
    assert!(p.ops.is_empty());
    assert_eq!(p.items.iter().filter(|i| i.outcome == Outcome::Conflict).count(), 2);
}

#[test]
fn a_user_with_every_match_key_empty_is_created_once_and_said_so() {
    let src = Snapshot { departments: vec![], users: vec![user("u1", None, &[])], ..Default::default() };
    let policy = base_policy();
    let p = plan(&src, &TargetSnapshot::default(), &Bindings::default(), &policy, RunOptions::default());
    assert!(p.items.is_empty(), "{:?}", p.items);
    match p.ops.as_slice() {
        [Op::CreateUser { note: Some(note), .. }] => assert!(note.contains("without a match key"), "{note}"),
        other => panic!("expected one create with a note: {other:?}"),
    }
    // Its externalId binds it in the next run (even with the mirror lost): no second create.
    let (tgt, _) = simulate(&TargetSnapshot::default(), &Bindings::default(), &p.ops);
    let again = plan(&src, &tgt, &Bindings::default(), &policy, RunOptions::default());
    assert!(again.ops.iter().all(|o| !matches!(o, Op::CreateUser { .. })), "{:?}", again.ops);
}

#[test]
fn a_user_with_every_match_key_empty_is_skipped_when_the_policy_says_so() {
    let src = Snapshot { departments: vec![], users: vec![user("u1", None, &[])], ..Default::default() };
    let mut policy = base_policy();
    policy.users.create_without_match_keys = false;
    let p = plan(&src, &TargetSnapshot::default(), &Bindings::default(), &policy, RunOptions::default());
    assert!(p.ops.is_empty());
    assert_eq!(p.items[0].outcome, Outcome::Unmatchable);
}

#[test]
fn clear_when_empty_false_also_keeps_memberships_when_the_source_sends_no_departments() {
    let src = fifty_departments();
    let mut policy = base_policy();
    let (tgt, b) = first_sync(&src, &policy);
    let mut emptied = src.clone();
    emptied.users[0].department_ids.clear();
    let touches = |p: &Plan| p.ops.iter().any(|o| o.changes().iter().any(|c| matches!(c.field, Field::Departments | Field::Department)));
    assert!(touches(&plan(&emptied, &tgt, &b, &policy, RunOptions::default())), "by default an empty list clears");
    policy.users.clear_when_empty = false;
    let p = plan(&emptied, &tgt, &b, &policy, RunOptions::default());
    assert!(!touches(&p), "kept: {:?}", p.ops);
}

#[test]
fn an_inactive_source_user_is_pushed_inactive_and_reactivated_on_rehire() {
    let mut src = Snapshot { departments: vec![], users: vec![user("u1", Some("a@x"), &[])], ..Default::default() };
    // One user of one: within the guard only when it allows all.
    let policy = Policy { guard: Guard::uniform(1, 100), ..base_policy() };
    let (tgt, b) = first_sync(&src, &policy);
    src.users[0].active = false;
    let p = plan(&src, &tgt, &b, &policy, RunOptions::default());
    assert!(matches!(&p.ops[..], [Op::UpdateUser { changes, .. }] if changes.len() == 1 && changes[0].field == Field::Active));
    let (tgt, b) = simulate(&tgt, &b, &p.ops);
    assert!(!tgt.users[0].active);
    src.users[0].active = true;
    let p = plan(&src, &tgt, &b, &policy, RunOptions::default());
    let (tgt2, _) = simulate(&tgt, &b, &p.ops);
    assert_eq!(tgt2.users.len(), 1, "re-hire reuses the binding");
    assert!(tgt2.users[0].active);
}

#[test]
fn a_parent_change_is_a_move_not_delete_and_create() {
    let mut src = Snapshot {
        departments: vec![dept("a", None, "A"), dept("b", None, "B"), dept("c", Some("a"), "C")],
        users: vec![],
        ..Default::default()
    };
    let mut policy = base_policy();
    policy.departments.target_only = TargetOnly::Delete;
    let (tgt, b) = first_sync(&src, &policy);
    src.departments[2].parent_id = Some("b".into());
    let p = plan(&src, &tgt, &b, &policy, RunOptions::default());
    assert_eq!(p.ops.len(), 1, "{:?}", p.ops);
    assert!(matches!(&p.ops[0], Op::UpdateDepartment { changes, .. } if changes[0].field == Field::Parent));
}

#[test]
fn a_cycle_is_an_item_error_for_its_members_and_the_rest_goes_on() {
    let src = Snapshot {
        departments: vec![dept("a", Some("b"), "A"), dept("b", Some("a"), "B"), dept("c", None, "C"), dept("d", Some("zz"), "D")],
        users: vec![],
        ..Default::default()
    };
    let p = plan(&src, &TargetSnapshot::default(), &Bindings::default(), &base_policy(), RunOptions::default());
    assert_eq!(p.ops.len(), 1);
    let invalid: Vec<&str> = p.items.iter().map(|i| i.source_id.as_ref().unwrap().as_str()).collect();
    assert_eq!(invalid.len(), 3, "{:?}", p.items);
    assert!(p.items.iter().any(|i| i.message.contains("cycle")));
    assert!(p.items.iter().any(|i| i.message.contains("parent department zz is not in the source")));
}

/// 50 departments of 10 users each.
fn fifty_departments() -> Snapshot {
    let departments = (0..50).map(|i| dept(&format!("d{i}"), None, &format!("Dept {i}"))).collect();
    let users = (0..500).map(|i| user(&format!("u{i}"), Some(&format!("u{i}@x")), &[&format!("d{}", i % 50)])).collect();
    Snapshot { departments, users, ..Default::default() }
}

#[test]
fn an_emptied_department_list_is_held_back_by_the_departments_own_guard_with_the_memberships_leaving_them() {
    let src = fifty_departments();
    let mut policy = base_policy();
    policy.departments.target_only = TargetOnly::Delete;
    let (tgt, b) = first_sync(&src, &policy);
    let emptied = Snapshot { departments: vec![], ..src.clone() };
    let p = plan(&emptied, &tgt, &b, &policy, RunOptions::default());
    // 50 of 550 objects is under 20 %; 50 of 50 departments is not.
    assert!(!p.ops.iter().any(|o| matches!(o, Op::DeleteDepartment { .. })), "{:?}", p.ops);
    assert!(p.guard.as_deref().unwrap().contains("max_department_delete_percent"), "{:?}", p.guard);
    assert!(!p.ops.iter().any(|o| o.changes().iter().any(|c| c.field == Field::Departments)), "memberships left held departments");
    let held = |op: &str| p.items.iter().filter(|i| i.outcome == Outcome::HeldBack && i.op.as_str() == op).count();
    assert_eq!((held("delete"), held("update")), (50, 500));
    // Approved once: the departments go, and the users leave them.
    let p = plan(&emptied, &tgt, &b, &policy, RunOptions { allow_deletes: 50, ..RunOptions::default() });
    assert_eq!(p.ops.iter().filter(|o| matches!(o, Op::DeleteDepartment { .. })).count(), 50);
    assert_eq!(p.ops.iter().filter(|o| o.changes().iter().any(|c| c.field == Field::Departments)).count(), 500);
}

#[test]
fn a_source_marking_everyone_inactive_counts_against_the_guard_like_disables() {
    let mut src = fifty_departments();
    let mut policy = base_policy();
    policy.users.target_only = TargetOnly::Disable;
    policy.guard.max_deletes = 1;
    let (tgt, b) = first_sync(&src, &policy);
    for u in &mut src.users {
        u.active = false;
        u.name = Some("Left".into());
    }
    let p = plan(&src, &tgt, &b, &policy, RunOptions::default());
    assert!(p.guard.as_deref().unwrap().contains("500 user removals"), "{:?}", p.guard);
    assert!(!p.ops.iter().any(|o| o.changes().iter().any(|c| c.field == Field::Active)), "an account was turned off");
    assert_eq!(p.ops.iter().filter(|o| o.changes().iter().any(|c| c.field == Field::Name)).count(), 500, "the rest still goes");
    assert_eq!(p.items.iter().filter(|i| i.outcome == Outcome::HeldBack).count(), 500);
    // A few leavers are within the limits and go through.
    let mut few = fifty_departments();
    few.users[0].active = false;
    let (tgt, b) = first_sync(&fifty_departments(), &policy);
    let p = plan(&few, &tgt, &b, &policy, RunOptions::default());
    assert!(p.guard.is_none(), "{:?}", p.guard);
    assert!(p.ops.iter().any(|o| o.changes().iter().any(|c| c.field == Field::Active && c.to.as_deref() == Some("false"))));
}

#[test]
fn an_empty_source_never_deletes_without_approval() {
    let src = Snapshot { departments: vec![], users: vec![user("u1", Some("a@x"), &[])], ..Default::default() };
    let mut policy = base_policy();
    policy.users.target_only = TargetOnly::Delete;
    policy.guard = Guard::uniform(1000, 100);
    let (tgt, b) = first_sync(&src, &policy);
    let empty = Snapshot::default();
    let p = plan(&empty, &tgt, &b, &policy, RunOptions::default());
    assert!(p.ops.is_empty());
    assert_eq!(p.items[0].outcome, Outcome::HeldBack);
    assert!(p.guard.as_deref().unwrap().contains("no users"));
    let p = plan(&empty, &tgt, &b, &policy, RunOptions { allow_deletes: 1, ..RunOptions::default() });
    assert!(matches!(&p.ops[..], [Op::DeleteUser { .. }]));
}

#[test]
fn normalised_mobiles_match() {
    assert_eq!(normalize_mobile(" +86 138-0000 (0000) "), "+8613800000000");
}

/// Synced once with email and mobile, then read again without them.
fn synced_then_read_without_contact(mark_absent: bool, policy: &Policy) -> Plan {
    let mut src =
        Snapshot { departments: vec![], users: vec![user("u1", Some("a@x"), &[]), user("u2", Some("b@x"), &[])], ..Default::default() };
    for u in &mut src.users {
        u.mobile = Some("+86 138".into());
    }
    let (tgt, b) = first_sync(&src, policy);
    for u in &mut src.users {
        (u.email, u.mobile) = (None, None);
        if mark_absent {
            u.withhold(UserField::Email);
            u.withhold(UserField::Mobile);
        }
    }
    plan(&src, &tgt, &b, policy, RunOptions::default())
}

#[test]
fn a_field_the_target_cannot_hold_is_never_a_change() {
    let mut src = Snapshot { departments: vec![], users: vec![user("u1", Some("a@x"), &[])], ..Default::default() };
    let policy = base_policy();
    let (mut tgt, b) = first_sync(&src, &policy);
    src.users[0].employee_no = Some("E7".into());
    src.users[0].nickname = Some("Al".into());
    tgt.users[0].employee_no = None;
    let unheld = FieldSet::default().with(Field::EmployeeNo);
    let p = plan(&src, &tgt, &b, &policy, RunOptions { unheld, ..RunOptions::default() });
    let [Op::UpdateUser { changes, .. }] = p.ops.as_slice() else { panic!("{:?}", p.ops) };
    assert_eq!(changes.iter().map(|c| c.field).collect::<Vec<_>>(), [Field::Nickname], "the nickname, not the employee number");
}

#[test]
fn a_field_the_source_withheld_never_changes_the_target() {
    let p = synced_then_read_without_contact(true, &base_policy());
    assert!(p.ops.is_empty(), "{:?}", p.ops);
}

#[test]
fn a_field_the_source_emptied_clears_the_target_unless_the_policy_keeps_it() {
    let p = synced_then_read_without_contact(false, &base_policy());
    let cleared: Vec<Field> = p
        .ops
        .iter()
        .flat_map(|o| match o {
            Op::UpdateUser { changes, .. } => changes.iter().map(|c| c.field).collect(),
            _ => vec![],
        })
        .collect();
    assert_eq!(cleared, [Field::Email, Field::Mobile, Field::Email, Field::Mobile]);
    let mut keep = base_policy();
    keep.users.clear_when_empty = false;
    assert!(synced_then_read_without_contact(false, &keep).ops.is_empty());
}

#[test]
fn withheld_departments_keep_the_target_memberships() {
    let d = vec![dept("d1", None, "One")];
    let mut src = Snapshot { departments: d, users: vec![user("u1", Some("a@x"), &["d1"])], ..Default::default() };
    let (tgt, b) = first_sync(&src, &base_policy());
    src.users[0].department_ids.clear();
    src.users[0].withhold(UserField::DepartmentIds);
    assert!(plan(&src, &tgt, &b, &base_policy(), RunOptions::default()).ops.is_empty());
}

#[test]
fn a_department_missing_from_a_file_is_a_data_error_and_outside_a_scoped_fetch_is_said_so() {
    let mut src =
        Snapshot { departments: vec![dept("d1", None, "One")], users: vec![user("u1", Some("a@x"), &["d1", "d9"])], ..Default::default() };
    let p = plan(&src, &TargetSnapshot::default(), &Bindings::default(), &base_policy(), RunOptions::default());
    assert_eq!(p.items.len(), 1, "{:?}", p.items);
    assert_eq!(p.items[0].outcome, Outcome::Invalid);
    assert!(p.items[0].message.contains("d9"), "{}", p.items[0].message);
    match &p.ops[..] {
        [_, Op::CreateUser { spec, .. }] => assert_eq!(spec.departments.as_deref(), Some(&[SourceId::from("d1")][..])),
        other => panic!("{other:?}"),
    }
    src.scoped = true;
    let p = plan(&src, &TargetSnapshot::default(), &Bindings::default(), &base_policy(), RunOptions::default());
    assert_eq!(p.items[0].outcome, Outcome::OutOfScope);
    assert!(p.items[0].message.contains("outside the sync scope"), "{}", p.items[0].message);
}

#[test]
fn duplicate_groups_with_our_external_id_converge_to_one_and_one_in_use_is_a_conflict() {
    let src = Snapshot {
        departments: vec![dept("d1", None, "One"), dept("d2", None, "Two")],
        users: vec![user("u1", Some("a@x"), &["d2"])],
        ..Default::default()
    };
    let td = |id: &str, ext: &str, name: &str| crate::model::TargetDepartment {
        id: id.into(),
        external_id: Some(ext.into()),
        name: name.into(),
        parent: None,
        leaders: None,
    };
    // d1 was created three times (lost answers); d2 twice, and the second copy holds a member.
    let tgt = TargetSnapshot {
        departments: vec![
            td("g1", "d1", "One"),
            td("g2", "d1", "One"),
            td("g3", "d1", "One"),
            td("g4", "d2", "Two"),
            td("g5", "d2", "Two"),
        ],
        users: vec![TargetUser {
            id: "t1".into(),
            external_id: Some("u1".into()),
            email: Some("a@x".into()),
            username: Some("useru1".into()),
            name: Some("User u1".into()),
            departments: vec!["g5".into()],
            active: true,
            ..Default::default()
        }],
    };
    let p = plan(&src, &tgt, &Bindings::default(), &base_policy(), RunOptions::default());
    let deleted: Vec<&str> = p
        .ops
        .iter()
        .filter_map(|o| match o {
            Op::DeleteDepartment { target_id, .. } => Some(target_id.as_str()),
            _ => None,
        })
        .collect();
    // d2's member is in g5: g5 is the one bound; the empty g4 goes.
    assert_eq!(deleted, ["g2", "g3", "g4"], "{:#?}", p.ops);
    let (after, b) = simulate(&tgt, &Bindings::default(), &p.ops);
    assert_eq!(b.departments.get(&SourceId::from("d2")), Some(&TargetId::from("g5")), "{:#?}", p.ops);
    let again = plan(&src, &after, &b, &base_policy(), RunOptions::default());
    assert!(again.ops.iter().all(|o| !matches!(o, Op::CreateDepartment { .. } | Op::DeleteDepartment { .. })), "{:#?}", again.ops);

    // Of two copies in use one is bound; the other is reported, not deleted.
    let mut busy = tgt.clone();
    busy.users.push(TargetUser { id: "t9".into(), departments: vec!["g1".into(), "g3".into()], active: true, ..Default::default() });
    let p = plan(&src, &busy, &Bindings::default(), &base_policy(), RunOptions::default());
    assert!(
        p.items.iter().any(|i| i.outcome == Outcome::Conflict && i.target_id.as_ref().is_some_and(|t| t.as_str() == "g3")),
        "{:#?}",
        p.items
    );
}

#[test]
fn unreadable_records_are_invalid_items_and_keep_their_accounts() {
    let first = Snapshot {
        departments: vec![],
        users: vec![user("u1", Some("a@x"), &[]), user("u2", Some("b@x"), &[]), user("u3", Some("c@x"), &[])],
        ..Default::default()
    };
    let mut policy = base_policy();
    policy.users.target_only = TargetOnly::Delete;
    policy.guard = Guard::uniform(u64::MAX, 100);
    let (tgt, b) = first_sync(&first, &policy);
    let unreadable = |id: Option<&str>| crate::model::Unreadable {
        kind: crate::model::Kind::User,
        source_id: id.map(SourceId::from),
        message: "bad".into(),
    };
    // u2 is there but unreadable; u3 left.
    let mut src = Snapshot { users: vec![first.users[0].clone()], unreadable: vec![unreadable(Some("u2"))], ..Default::default() };
    let p = plan(&src, &tgt, &b, &policy, RunOptions::default());
    let deleted: Vec<&TargetId> = p
        .ops
        .iter()
        .filter_map(|o| match o {
            Op::DeleteUser { target_id, .. } => Some(target_id),
            _ => None,
        })
        .collect();
    assert_eq!(deleted, [&b.users[&SourceId::from("u3")]], "u2's account is kept, u3's goes: {:#?}", p.ops);
    assert!(p.items.iter().any(|i| i.outcome == Outcome::Invalid && i.source_id == Some("u2".into())));
    // A record with no id at all: nobody can be judged gone.
    src.unreadable.push(unreadable(None));
    let p = plan(&src, &tgt, &b, &policy, RunOptions::default());
    assert!(p.ops.iter().all(|o| !o.is_destructive()), "{:#?}", p.ops);
    assert!(p.items.iter().any(|i| i.outcome == Outcome::HeldBack && i.message.contains("had no id")), "{:#?}", p.items);
}

#[test]
fn a_leaver_is_disabled_then_deleted_after_the_grace_period_and_a_returner_is_reenabled_on_the_same_account() {
    let mut policy = base_policy();
    policy.users.target_only = TargetOnly::DisableThenDelete;
    policy.users.delete_after = std::time::Duration::from_secs(30 * 86_400);
    policy.users.protected = vec!["p@x".into()];
    policy.guard = Guard::uniform(100, 100);
    let full = Snapshot {
        departments: vec![],
        users: vec![user("u1", Some("a@x"), &[]), user("u2", Some("b@x"), &[]), user("u3", Some("p@x"), &[])],
        ..Default::default()
    };
    let (tgt, mut b) = first_sync(&full, &policy);
    let gone = Snapshot { users: vec![user("u1", Some("a@x"), &[])], ..Default::default() };
    let t0 = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let at = |days: i64| RunOptions { now: Some(t0 + chrono::Duration::days(days)), ..RunOptions::default() };
    // Day 0: u2 leaves and is disabled, starting its grace period; the protected u3 is never scheduled.
    let p = plan(&gone, &tgt, &b, &policy, at(0));
    let [Op::DisableUser { target_id, grace: true, reason, .. }] = p.ops.as_slice() else { panic!("{:?}", p.ops) };
    assert!(reason.contains("left the source") && reason.contains("30days"), "{reason}");
    let u2 = target_id.clone();
    let (tgt, _) = simulate(&tgt, &b, &p.ops);
    b.disabled.insert(u2.clone(), t0);
    // Day 10: nothing to do, said as scheduled.
    let p = plan(&gone, &tgt, &b, &policy, at(10));
    assert!(p.ops.is_empty(), "{:?}", p.ops);
    assert_eq!(p.items.iter().filter(|i| i.outcome == Outcome::Scheduled).count(), 1);
    assert!(p.items[0].message.contains("2027-"), "the due date: {}", p.items[0].message);
    // u2 returns within the grace period: re-enabled on the same account, not re-created.
    let p = plan(&full, &tgt, &b, &policy, at(20));
    let [Op::UpdateUser { target_id, changes, .. }] = p.ops.as_slice() else { panic!("{:?}", p.ops) };
    assert_eq!(target_id, &u2);
    assert!(changes.iter().any(|c| c.field == Field::Active && c.to.as_deref() == Some("true")));
    // Still gone after 30 days: deleted.
    let p = plan(&gone, &tgt, &b, &policy, at(31));
    let [Op::DeleteUser { target_id, reason, .. }] = p.ops.as_slice() else { panic!("{:?}", p.ops) };
    assert_eq!(target_id, &u2);
    assert!(reason.contains("grace period over"), "{reason}");
    // Without a clock nothing falls due.
    assert!(plan(&gone, &tgt, &b, &policy, RunOptions::default()).ops.is_empty());
}

#[test]
fn a_gone_department_is_deleted_only_after_its_grace_period_and_forgotten_when_it_returns() {
    let mut policy = base_policy();
    policy.departments.target_only = TargetOnly::Delete;
    policy.departments.delete_after = std::time::Duration::from_secs(7 * 86_400);
    policy.guard = Guard::uniform(100, 100);
    let full = Snapshot { departments: vec![dept("d1", None, "One"), dept("d2", None, "Two")], ..Default::default() };
    let (tgt, mut b) = first_sync(&full, &policy);
    let gone = Snapshot { departments: vec![dept("d1", None, "One")], ..Default::default() };
    let t0 = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let at = |days: i64| RunOptions { now: Some(t0 + chrono::Duration::days(days)), ..RunOptions::default() };
    let p = plan(&gone, &tgt, &b, &policy, at(0));
    let [Op::Schedule { target_id, .. }] = p.ops.as_slice() else { panic!("{:?}", p.ops) };
    let d2 = target_id.clone();
    assert_eq!(p.writes(), 0, "a schedule writes nothing to the target");
    b.disabled.insert(d2.clone(), t0);
    let p = plan(&gone, &tgt, &b, &policy, at(3));
    assert!(p.ops.is_empty() && p.items.iter().any(|i| i.outcome == Outcome::Scheduled), "{p:?}");
    assert!(p.unscheduled.is_empty());
    let p = plan(&gone, &tgt, &b, &policy, at(8));
    assert!(matches!(p.ops.as_slice(), [Op::DeleteDepartment { target_id, .. }] if *target_id == d2), "{:?}", p.ops);
    // Back before that: forgotten, nothing deleted.
    let p = plan(&full, &tgt, &b, &policy, at(3));
    assert!(p.ops.is_empty(), "{:?}", p.ops);
    assert_eq!(p.unscheduled, [d2]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn under_disable_then_delete_nothing_is_deleted_early_and_returners_are_never_recreated(
        first in arb_source(), leave in proptest::collection::vec(any::<bool>(), 30), day in 0i64..60
    ) {
        let mut policy = base_policy();
        policy.users.target_only = TargetOnly::DisableThenDelete;
        policy.users.delete_after = std::time::Duration::from_secs(30 * 86_400);
        policy.guard = Guard::uniform(u64::MAX, 100);
        let (tgt, mut b) = first_sync(&first, &policy);
        let mut gone = first.clone();
        gone.users = first.users.iter().enumerate().filter(|(i, _)| !leave[*i % 30]).map(|(_, u)| u.clone()).collect();
        let t0 = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let at = |d: i64| RunOptions { now: Some(t0 + chrono::Duration::days(d)), ..RunOptions::default() };
        let p = plan(&gone, &tgt, &b, &policy, at(0));
        prop_assert!(!p.ops.iter().any(|o| matches!(o, Op::DeleteUser { .. })), "deleted at once: {:?}", p.ops);
        for op in &p.ops {
            if let Op::DisableUser { target_id, grace: true, .. } = op {
                b.disabled.insert(target_id.clone(), t0);
            }
        }
        let (tgt, b2) = simulate(&tgt, &b, &p.ops);
        let b = Bindings { disabled: b.disabled.clone(), ..b2 };
        // Still gone on `day`: deleted only from day 30.
        let later = plan(&gone, &tgt, &b, &policy, at(day));
        let deletes = later.ops.iter().filter(|o| matches!(o, Op::DeleteUser { .. })).count();
        prop_assert!(day >= 30 || deletes == 0, "deleted on day {day}: {:?}", later.ops);
        // Back on `day` (within the grace period or not yet deleted): re-enabled, never re-created.
        let back = plan(&first, &tgt, &b, &policy, at(day));
        let recreated = back.ops.iter().any(|o| matches!(o, Op::CreateUser { source_id, .. } if b.users.contains_key(source_id)));
        prop_assert!(!recreated, "a bound user re-created: {:?}", back.ops);
        prop_assert!(!back.ops.iter().any(|o| matches!(o, Op::DeleteUser { .. })), "{:?}", back.ops);
    }
}

#[test]
fn a_target_holding_the_primary_department_only_compares_only_that_one() {
    let mut src = Snapshot {
        departments: vec![dept("a", None, "A"), dept("b", None, "B"), dept("c", None, "C")],
        users: vec![user("u1", Some("a@x"), &["a", "b"])],
        ..Default::default()
    };
    let policy = base_policy();
    let primary = RunOptions { primary_only: true, ..RunOptions::default() };
    let p = plan(&src, &TargetSnapshot::default(), &Bindings::default(), &policy, primary);
    let (tgt, b) = simulate(&TargetSnapshot::default(), &Bindings::default(), &p.ops);
    let held = &tgt.users[0].departments;
    assert_eq!(held.len(), 1, "only the primary is written: {held:?}");
    assert!(plan(&src, &tgt, &b, &policy, primary).ops.is_empty(), "the second department is never a change");
    // A second department added: still nothing; the primary changes: a move.
    src.users[0].department_ids.push("c".into());
    assert!(plan(&src, &tgt, &b, &policy, primary).ops.is_empty());
    src.users[0].department_ids.remove(0);
    let p = plan(&src, &tgt, &b, &policy, primary);
    assert!(matches!(&p.ops[..], [Op::UpdateUser { changes, .. }] if changes.iter().any(|c| c.field == Field::Departments)), "{:?}", p.ops);
    // Disabled on both sides: parked, its department is not compared.
    src.users[0].active = false;
    let mut parked = tgt.clone();
    parked.users[0].active = false;
    parked.users[0].departments.clear();
    assert!(plan(&src, &parked, &b, &policy, primary).ops.is_empty());
    // Without the option every department counts.
    src.users[0].active = true;
    assert!(!plan(&src, &tgt, &b, &policy, RunOptions::default()).ops.is_empty());
}

#[test]
fn a_user_the_scope_leaves_out_is_removed_for_leaving_the_scope_and_the_label_stays_bounded() {
    let mut src = Snapshot {
        departments: vec![dept("a", None, "A"), dept("b", None, "B")],
        users: vec![user("u1", Some("a@x"), &["a"]), user("u2", Some("b@x"), &["b"]), user("u3", Some("c@x"), &["a"])],
        ..Default::default()
    };
    let mut policy = base_policy();
    policy.users.target_only = TargetOnly::Disable;
    policy.guard.max_deletes = 100;
    policy.guard.max_delete_percent = 100;
    let (tgt, b) = first_sync(&src, &policy);
    // u2 leaves the scope (its department is not included), u3 leaves the source.
    src.users.remove(2);
    let scope = crate::reconcile::scope::Scope { include_departments: vec!["a".into()], ..Default::default() };
    scope.apply(&mut src);
    assert_eq!(src.out_of_scope, vec![SourceId::from("u2")]);
    let p = plan(&src, &tgt, &b, &policy, RunOptions::default());
    let reasons: Vec<(&str, &str)> = p
        .ops
        .iter()
        .filter_map(|o| match o {
            Op::DisableUser { username, reason, .. } => Some((username.as_deref().unwrap(), reason.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(reasons.len(), 2, "{:?}", p.ops);
    for (who, why) in reasons {
        let label = crate::reconcile::removal_label(why);
        match who {
            "useru2" => assert_eq!(label, "left_scope", "{why}"),
            "useru3" => assert_eq!(label, "left_source", "{why}"),
            other => panic!("{other}"),
        }
    }
    assert_eq!(crate::reconcile::removal_label("something new"), "other");
}

/// `orgsync plan`: a policy change, a mapping change and a scope change,
/// each with the difference it makes and the reason it is put down to.
#[test]
fn two_configs_plans_differ_object_by_object_with_the_reason() {
    use compare::{Changed, Reason, compare};
    let src = Snapshot {
        departments: vec![dept("d1", None, "Sales"), dept("d2", None, "Support")],
        users: vec![user("u1", Some("a@x"), &["d1"]), user("u2", Some("b@x"), &["d2"])],
        ..Default::default()
    };
    // A guard that lets every removal through: each case removes a third or more.
    let current = Policy { guard: Guard::uniform(100, 100), ..base_policy() };
    let (mut tgt, b) = first_sync(&src, &current);
    // Someone only the target has, and a title the source now sends.
    tgt.users.push(TargetUser { id: "t9".into(), username: Some("old".into()), active: true, ..Default::default() });
    let mut titled = src.clone();
    titled.users[0].title = Some("CTO".into());
    let now = plan(&titled, &tgt, &b, &current, RunOptions::default());
    assert!(now.ops.iter().all(|o| o.mirror_only()), "in step under the current config: {:?}", now.ops);

    // Policy: target-only users disabled.
    let mut disabling = current.clone();
    disabling.users.target_only = TargetOnly::Disable;
    let next = plan(&titled, &tgt, &b, &disabling, RunOptions::default());
    let d = compare(&now, &next, Changed { policy: true, ..Changed::default() });
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!((d[0].id.as_str(), d[0].current, d[0].proposed, d[0].reason), ("t9", None, Some(Verb::Disable), Reason::Policy));

    // Mapping: the title synced too.
    let mut titles = current.clone();
    titles.users.fields.push(UserField::Title);
    let next = plan(&titled, &tgt, &b, &titles, RunOptions::default());
    let d = compare(&now, &next, Changed { mapping: true, ..Changed::default() });
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!((d[0].id.as_str(), d[0].proposed, d[0].reason), ("u1", Some(Verb::Update), Reason::Mapping));
    assert!(d[0].detail.contains("title"), "{}", d[0].detail);

    // Scope: Support left out (its user then leaves the target under a deleting policy).
    let mut scoped = titled.clone();
    scoped.departments.retain(|d| d.source_id.as_str() != "d2");
    scoped.users.retain(|u| u.source_id.as_str() != "u2");
    let mut deleting = current.clone();
    deleting.users.target_only = TargetOnly::Delete;
    let (now, next) =
        (plan(&titled, &tgt, &b, &deleting, RunOptions::default()), plan(&scoped, &tgt, &b, &deleting, RunOptions::default()));
    let d = compare(&now, &next, Changed { scope: true, ..Changed::default() });
    let u2 = d.iter().find(|x| x.id == "u2").expect("u2 differs");
    assert_eq!((u2.current, u2.proposed, u2.reason), (None, Some(Verb::Delete), Reason::Scope), "{d:?}");
    assert!(d.iter().all(|x| x.id != "t9"), "deleted under both: no difference: {d:?}");
}

/// A manager whose account is protected (matched by its keys, never bound)
/// is still its reports' manager: the plan carries the account it found.
#[test]
fn a_protected_manager_matched_by_its_keys_is_carried_to_the_apply() {
    let mut boss = user("boss", Some("ceo@x.test"), &[]);
    boss.active = true;
    let mut report = user("r1", Some("r1@x.test"), &[]);
    report.manager_id = Some(SourceId::from("boss"));
    let src = Snapshot { users: vec![boss, report], ..Default::default() };
    let ceo = TargetUser { id: TargetId::from("t-ceo"), email: Some("ceo@x.test".into()), active: true, ..Default::default() };
    let tgt = TargetSnapshot { users: vec![ceo], ..Default::default() };
    let mut policy = Policy::default();
    policy.users.protected = vec!["ceo@x.test".into()];
    let p = plan(&src, &tgt, &Bindings::default(), &policy, RunOptions::default());
    let create = p.ops.iter().find_map(|o| match o {
        Op::CreateUser { source_id, spec, .. } if source_id.as_str() == "r1" => Some(spec),
        _ => None,
    });
    let spec = create.unwrap_or_else(|| panic!("{:#?}", p.ops));
    assert_eq!(spec.manager_account, Some(TargetId::from("t-ceo")), "{:#?}", p.ops);
    assert!(!p.ops.iter().any(|o| o.target_id() == Some(&TargetId::from("t-ceo"))), "the protected account is not touched");
}

/// The admin page approves the removals it showed (their digest): exactly
/// those go; if the source changed since and others are held, none goes.
#[test]
fn an_approval_of_the_removals_shown_applies_exactly_them_or_none() {
    let src = fifty_departments();
    let mut policy = base_policy();
    policy.users.target_only = TargetOnly::Delete;
    policy.guard.max_deletes = 1;
    let (tgt, b) = first_sync(&src, &policy);
    let mut fewer = src.clone();
    fewer.users.truncate(src.users.len() - 5);
    let held = plan(&fewer, &tgt, &b, &policy, RunOptions::default());
    let shown: Vec<&crate::reconcile::Item> = held.items.iter().filter(|i| i.outcome == Outcome::HeldBack).collect();
    assert_eq!(shown.len(), 5);
    let digest = super::removals_digest(shown.iter().map(|i| (i.kind, i.op, i.target_id.as_ref().map(crate::model::TargetId::as_str))));
    let approved = RunOptions { approved: Some(digest), ..RunOptions::default() };
    let p = plan(&fewer, &tgt, &b, &policy, approved);
    assert!(p.guard.is_none(), "{:?}", p.guard);
    assert_eq!(p.ops.iter().filter(|o| matches!(o, Op::DeleteUser { .. })).count(), 5);
    // One more left since the page was shown: nothing goes, and the guard says why.
    fewer.users.pop();
    let p = plan(&fewer, &tgt, &b, &policy, approved);
    assert!(!p.ops.iter().any(|o| matches!(o, Op::DeleteUser { .. })), "{:?}", p.ops);
    assert!(p.guard.as_deref().unwrap().contains("approved on the admin page are not these"), "{:?}", p.guard);
    assert_eq!(p.items.iter().filter(|i| i.outcome == Outcome::HeldBack).count(), 6);
}
