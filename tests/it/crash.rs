//! A crash in the middle of an initial sync leaves the mirror consistent, and
//! the next run finishes the job without duplicates.

use crate::harness::{Env, Scim, org};
use std::collections::HashSet;
use std::time::{Duration, Instant};

#[test]
fn sigkill_mid_sync_then_rerun_finishes_without_duplicates() {
    let env = Env::new();
    let scim = Scim::start(env.dir.path());
    env.scim_config(&scim, "");
    env.write_org(&org(20, 2000));

    let mut child = env.command(&["sync"]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while scim.writes().iter().filter(|(m, p, _)| m == "POST" && p.ends_with("/Users")).count() < 300 {
        assert!(Instant::now() < deadline, "the sync made no progress");
        assert!(child.try_wait().unwrap().is_none(), "the sync ended before it could be killed");
        std::thread::sleep(Duration::from_millis(20));
    }
    // While it runs, a second process on the same state dir is refused.
    let second = env.sync(&[]);
    assert_eq!(second.code, 1, "{}", second.stderr);
    assert!(second.stderr.contains("another orgsync process holds the lock"), "{}", second.stderr);

    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let partial = scim.users().len();
    assert!(partial < 2000, "killed too late: {partial} users already there");

    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let users = scim.users();
    assert_eq!(users.len(), 2000);
    let mut seen = HashSet::new();
    for u in &users {
        assert!(seen.insert(u["externalId"].as_str().unwrap().to_owned()), "duplicate {u}");
    }
    let s = env.status_json();
    assert_eq!(s["runs"][0]["status"], "succeeded");
    assert_eq!(s["runs"][1]["status"], "failed");
    assert!(s["runs"][1]["message"].as_str().unwrap().contains("interrupted"));
    // Nothing left to do.
    let before = scim.writes().len();
    assert_eq!(env.sync(&[]).code, 0);
    assert_eq!(scim.writes().len(), before);
}
