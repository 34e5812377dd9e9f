//! Pure reconcile over a generated directory: 100,000 users in 10,000
//! departments. Prints the initial plan (empty target) and the no-change
//! plan (target already in step, all bound), best and median of several runs.
//!
//!     cargo bench --bench reconcile
//!
//! Goal (issue 2): under 300 ms each on one core. The plan is single-threaded.

use orgsync::model::{Bindings, Department, Snapshot, SourceId, TargetSnapshot, User};
use orgsync::reconcile::{Policy, RunOptions, plan, simulate};

#[path = "support/timing.rs"]
mod timing;
use timing::time;

fn directory(users: usize, depts: usize) -> Snapshot {
    let departments = (0..depts)
        .map(|i| Department {
            source_id: SourceId(format!("d{i}")),
            parent_id: (i > 0).then(|| SourceId(format!("d{}", (i - 1) / 10))),
            name: format!("Department {i}"),
            order: i as i64,
            leader_ids: vec![],
        })
        .collect();
    let users = (0..users)
        .map(|i| User {
            source_id: SourceId(format!("u{i}")),
            username: Some(format!("user{i}")),
            name: Some(format!("User Number {i}")),
            email: Some(format!("user{i}@example.com")),
            mobile: Some(format!("+86 138 {:08}", i)),
            employee_no: Some(format!("E{i:06}")),
            nickname: None,
            title: Some("Engineer".into()),
            department_ids: vec![SourceId(format!("d{}", i % depts)), SourceId(format!("d{}", (i * 7) % depts))],
            active: i % 50 != 0,
            manager_id: (i > 0).then(|| SourceId(format!("u{}", (i - 1) / 8))),
            attributes: Default::default(),
            absent: vec![],
        })
        .collect();
    Snapshot { departments, users, ..Default::default() }
}

fn main() {
    let (users, depts, runs) = (100_000, 10_000, 7);
    let source = directory(users, depts);
    let policy = Policy::default();
    let empty = TargetSnapshot::default();
    let bindings = Bindings::default();
    println!("reconcile::plan over {users} users in {depts} departments");
    // The yardstick, in the same run: parsing the same snapshot from JSON.
    let json = serde_json::to_vec(&source).unwrap();
    let parse =
        time("parse the snapshot from JSON (yardstick)", runs, "users", || serde_json::from_slice::<Snapshot>(&json).unwrap().users.len());
    let initial_t = time("initial plan (empty target)", runs, "operations", || {
        plan(&source, &empty, &bindings, &policy, RunOptions::default()).ops.len()
    });
    let initial = plan(&source, &empty, &bindings, &policy, RunOptions::default());
    let (target, bound) = simulate(&empty, &bindings, &initial.ops);
    let idle_t = time("no-change plan", runs, "operations", || {
        let p = plan(&source, &target, &bound, &policy, RunOptions::default());
        assert!(p.ops.is_empty(), "no-change plan has {} ops", p.ops.len());
        p.ops.len()
    });
    let ratio = |t: std::time::Duration| t.as_secs_f64() / parse.as_secs_f64();
    println!("reconcile: initial {:.2}x, no_change {:.2}x the JSON parse of the same snapshot", ratio(initial_t), ratio(idle_t));
}
