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

/// Outcomes are committed in batches: a kill loses up to a batch of
/// records, never an object. Five kills at growing points of a 20,000-user
/// sync to a fast in-memory SCIM server, then a run that finishes: no
/// duplicate user or group, and nothing left to do.
#[test]
fn five_kill_9s_during_a_20000_user_sync_leave_no_duplicates() {
    let env = Env::new();
    let server = crate::fast_scim::Server::start();
    std::fs::write(env.path("token"), "t\n").unwrap();
    std::fs::write(
        env.path("orgsync.toml"),
        format!(
            "state_dir = \"state\"\n[source]\nkind = \"file\"\npath = \"org.json\"\n[target]\nkind = \"scim\"\nbase_url = \"{}\"\ntoken_file = \"token\"\n",
            server.base
        ),
    )
    .unwrap();
    env.write_org(&org(200, 20_000));
    let count = |s: &crate::fast_scim::Server| s.store.lock().unwrap().users.iter().flatten().count();
    for k in 1..=5 {
        let mut child = env.command(&["sync"]).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while count(&server) < k * 3_000 && child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the sync made no progress");
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = child.kill(); // SIGKILL, if it has not finished
        child.wait().unwrap();
    }
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let runs = env.status_json()["runs"].as_array().unwrap().clone();
    let killed = runs.iter().filter(|r| r["message"].as_str().is_some_and(|m| m.contains("interrupted"))).count();
    assert!(killed >= 3, "only {killed} of the 5 runs were killed mid-way: {runs:#?}");
    let by_ext = |objects: Vec<serde_json::Value>| {
        let mut seen = HashSet::new();
        for o in &objects {
            assert!(seen.insert(o["externalId"].as_str().unwrap_or_default().to_owned()), "duplicate {o}");
        }
        seen.len()
    };
    assert_eq!(by_ext(server.users()), 20_000);
    assert_eq!(by_ext(server.groups()), 200);
    server.requests();
    assert_eq!(env.sync(&[]).code, 0);
    let writes: usize = server.requests().iter().filter(|(m, _)| **m != "GET").map(|(_, n)| n).sum();
    assert_eq!(writes, 0, "nothing left to do");
}

/// The target dies mid-run (slapd killed -9): the run ends `failed`,
/// saying the target is unreachable, after a few operations that could not
/// reach it rather than one try per object; once the server is back, the
/// next run finishes the job with no duplicate and then writes nothing.
#[test]
fn a_target_killed_mid_run_ends_the_run_failed_and_the_next_run_converges() {
    use crate::ldap_target::{assert_idle, config, last_run, ok, users};
    let env = Env::new();
    let mut slapd = crate::slapd::Slapd::start(env.dir.path(), &crate::ldap_target::base_ldif());
    config(&env, &slapd.url, "disable = \"delete\"\nunreachable_after = 3\n", "");
    env.write_org(&org(10, 1500));
    let mut child = env.command(&["sync"]).spawn().unwrap();
    let people = |s: &crate::slapd::Slapd| {
        let out = s.ldap(&["ldapsearch", "-x", "-LLL", "-b", crate::slapd::SUFFIX, "(objectClass=inetOrgPerson)", "1.1"], "");
        String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.starts_with("dn:")).count()
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    while people(&slapd) < 200 {
        assert!(Instant::now() < deadline, "the sync made no progress");
        assert!(child.try_wait().unwrap().is_none(), "the sync ended before the target could be killed");
        std::thread::sleep(Duration::from_millis(50));
    }
    slapd.kill();
    let killed = Instant::now();
    let status = child.wait().unwrap();
    eprintln!("the run ended {:?} after the target died", killed.elapsed());
    assert_eq!(status.code(), Some(1), "failed");
    let run = last_run(&env);
    assert_eq!(run["status"], "failed", "{run:#}");
    assert!(run["message"].as_str().unwrap().starts_with("target unreachable: 3 operations in a row"), "{run:#}");
    let id = run["id"].to_string();
    let shown: serde_json::Value = serde_json::from_str(&env.orgsync(&["runs", "show", &id, "--output", "json"]).stdout).unwrap();
    let items = shown["items"].as_array().unwrap();
    let tried = items.iter().filter(|i| i["outcome"] == "failed").count();
    let skipped = items.iter().filter(|i| i["outcome"] == "not_attempted").count();
    assert!(tried <= 3 + 8, "tries after the target died: {tried} (3 in a row, and those in flight)");
    assert!(skipped >= 1000, "the rest is not attempted: {skipped}");

    slapd.restart();
    ok(&env.sync(&[]));
    let all = users(&slapd);
    let uids: HashSet<&str> = all.iter().map(|e| e.get("uid").unwrap()).collect();
    assert_eq!((all.len(), uids.len()), (1500, 1500), "every user once");
    assert_idle(&env);
}
