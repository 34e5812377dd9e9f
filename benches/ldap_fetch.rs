//! LDAP fetch + reconcile of 10,000 users from a private slapd (the test
//! harness's, `tests/it/slapd.rs`), next to `ldapsearch -E pr=1000/noprompt`
//! reading the same entries with the same attributes in the same run.
//!
//!     cargo bench --bench ldap_fetch
//!
//! Goal (issue 4): orgsync at most 3x ldapsearch's time. Needs slapd and
//! ldap-utils (scripts/test.sh installs them).

#[path = "../tests/it/slapd.rs"]
mod slapd;
#[path = "support/timing.rs"]
mod timing;

use orgsync::model::{Bindings, TargetSnapshot};
use orgsync::reconcile::{Policy, RunOptions, plan};
use slapd::{READER_DN, READER_PW, SUFFIX, Slapd, tree};
use std::process::{Command, Stdio};
use timing::time;

const USERS: usize = 10_000;
const RUNS: usize = 7;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let server = Slapd::start(dir.path(), &tree(USERS));
    let base = format!("ou=Corp,{SUFFIX}");
    // What the openldap flavor asks for.
    let attrs = ["entryUUID", "uid", "cn", "mail", "mobile", "employeeNumber", "displayName", "title", "pwdAccountLockedTime"];

    println!("{USERS} users in 5 nested OUs, slapd on loopback, bound as a non-root reader");
    let ldapsearch = time("ldapsearch -E pr=1000/noprompt (users)", RUNS, "entries", || {
        let out = Command::new("/usr/bin/ldapsearch")
            .args(["-x", "-LLL", "-H", &server.url, "-D", READER_DN, "-w", READER_PW, "-E", "pr=1000/noprompt", "-b", &base])
            .arg("(objectClass=inetOrgPerson)")
            .args(attrs)
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout.split(|b| *b == b'\n').filter(|l| l.starts_with(b"dn: ")).count()
    });

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, READER_PW).unwrap();
    let mut ours = Vec::new();
    for page_size in [1000, 500] {
        let toml = format!(
            "state_dir = \"state\"\n[source]\nkind = \"ldap\"\nurl = \"{}\"\nbind_dn = \"{READER_DN}\"\n\
             bind_password_file = \"pw\"\nbase_dn = \"{base}\"\npage_size = {page_size}\n\
             [target]\nkind = \"file\"\npath = \"out.json\"\n",
            server.url
        );
        let path = dir.path().join("orgsync.toml");
        std::fs::write(&path, toml).unwrap();
        let config = orgsync::settings::load(&path).unwrap();
        let source = orgsync::sources::build(&config.source, &config.scope, &config.mapping);
        let (empty, bindings, policy) = (TargetSnapshot::default(), Bindings::default(), Policy::default());
        let label = format!("orgsync fetch + plan, page_size {page_size}");
        ours.push(time(&label, RUNS, "entries", || {
            let snapshot = runtime.block_on(source.fetch()).unwrap();
            assert_eq!(snapshot.users.len(), USERS);
            let p = plan(&snapshot, &empty, &bindings, &policy, RunOptions::default());
            assert!(p.ops.len() > USERS);
            snapshot.users.len()
        }));
    }
    for (page_size, t) in [1000, 500].iter().zip(&ours) {
        println!("ratio orgsync (page_size {page_size}) / ldapsearch: {:.2}x (goal <= 3x)", t.as_secs_f64() / ldapsearch.as_secs_f64());
    }
}
