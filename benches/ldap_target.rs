//! Target `ldap`: an initial sync of 10,000 users in 1,000 departments
//! (OUs nested like the tree) into a private slapd, and an idle resync,
//! through the binary; next to `ldapadd` adding the same entries from an
//! LDIF, on the same kind of fresh server, in the same run.
//!
//!     cargo bench --bench ldap_target
//!
//! Needs slapd and ldap-utils (scripts/test.sh installs them).

#[path = "../tests/it/slapd.rs"]
mod slapd;
#[path = "support/timing.rs"]
mod timing;

use slapd::{ROOT_DN, ROOT_PW, SUFFIX, Slapd};
use std::fmt::Write as _;
use std::process::Command;
use timing::time;

const USERS: usize = 10_000;
const DEPTS: usize = 1_000;
const RUNS: usize = 3;

fn base() -> String {
    let mut l = format!("dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n");
    for ou in ["People", "Departments"] {
        writeln!(l, "dn: ou={ou},{SUFFIX}\nobjectClass: organizationalUnit\nou: {ou}\n").unwrap();
    }
    l
}

/// Department `i`'s parent: a 10-ary tree, four levels deep.
fn parent(i: usize) -> Option<usize> {
    (i > 0).then(|| (i - 1) / 10)
}

fn dept_dn(i: usize) -> String {
    let mut dn = format!("ou=Dept {i}");
    let mut p = parent(i);
    while let Some(j) = p {
        write!(dn, ",ou=Dept {j}").unwrap();
        p = parent(j);
    }
    format!("{dn},ou=Departments,{SUFFIX}")
}

fn org() -> serde_json::Value {
    let departments: Vec<_> = (0..DEPTS)
        .map(|i| serde_json::json!({"id": format!("d{i}"), "parent_id": parent(i).map(|p| format!("d{p}")), "name": format!("Dept {i}")}))
        .collect();
    let users: Vec<_> = (0..USERS)
        .map(|i| {
            serde_json::json!({"id": format!("u{i}"), "username": format!("user{i}"), "name": format!("User {i}"),
                "email": format!("user{i}@example.test"), "mobile": format!("+86 138{i:08}"), "employee_no": format!("E{i}"),
                "department_ids": [format!("d{}", i % DEPTS)]})
        })
        .collect();
    serde_json::json!({"departments": departments, "users": users})
}

/// The same entries as LDIF, parents first.
fn ldif() -> String {
    let mut l = String::new();
    for i in 0..DEPTS {
        writeln!(l, "dn: {}\nobjectClass: organizationalUnit\nou: Dept {i}\n", dept_dn(i)).unwrap();
    }
    for i in 0..USERS {
        writeln!(
            l,
            "dn: uid=user{i},{}\nobjectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\n\
             objectClass: inetOrgPerson\nuid: user{i}\ncn: User {i}\nsn: User {i}\nmail: user{i}@example.test\n\
             mobile: +86 138{i:08}\nemployeeNumber: E{i}\n",
            dept_dn(i % DEPTS)
        )
        .unwrap();
    }
    l
}

fn orgsync(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_orgsync")).arg("--config").arg(dir.join("orgsync.toml")).args(args).output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("org.json"), serde_json::to_vec(&org()).unwrap()).unwrap();
    std::fs::write(dir.path().join("pw"), ROOT_PW).unwrap();
    let ldif_path = dir.path().join("entries.ldif");
    std::fs::write(&ldif_path, ldif()).unwrap();
    println!("{USERS} users in {DEPTS} departments (a 10-ary tree, 4 levels), slapd on loopback, 2 cores");

    let ldapadd = time("ldapadd of the same entries (one connection)", RUNS, "entries", || {
        let server = Slapd::start(dir.path(), &base());
        let out = Command::new("/usr/bin/ldapadd")
            .args(["-x", "-H", &server.url, "-D", ROOT_DN, "-w", ROOT_PW, "-f"])
            .arg(&ldif_path)
            .stdout(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        DEPTS + USERS
    });

    let mut idle = Vec::new();
    let initial = time("orgsync sync, initial (file source -> ldap)", RUNS, "entries", || {
        let server = Slapd::start(dir.path(), &base());
        let _ = std::fs::remove_dir_all(dir.path().join("state"));
        let toml = format!(
            "state_dir = \"state\"\n[source]\nkind = \"file\"\npath = \"org.json\"\n[target]\nkind = \"ldap\"\nurl = \"{}\"\n\
             bind_dn = \"{ROOT_DN}\"\nbind_password_file = \"pw\"\nusers_dn = \"ou=People,{SUFFIX}\"\n\
             departments_dn = \"ou=Departments,{SUFFIX}\"\ndisable = \"delete\"\n",
            server.url
        );
        std::fs::write(dir.path().join("orgsync.toml"), toml).unwrap();
        orgsync(dir.path(), &["sync"]);
        let out =
            server.ldap(&["ldapsearch", "-x", "-LLL", "-E", "pr=1000/noprompt", "-b", SUFFIX, "(objectClass=inetOrgPerson)", "1.1"], "");
        let found = out.stdout.split(|b| *b == b'\n').filter(|l| l.starts_with(b"dn: ")).count();
        assert_eq!(found, USERS, "every user written");
        let t = std::time::Instant::now();
        orgsync(dir.path(), &["sync"]);
        idle.push(t.elapsed());
        DEPTS + USERS
    });
    idle.sort();
    let idle = idle[idle.len() / 2];
    println!("{:<44} median {:>7.1} ms", "orgsync sync, idle resync", idle.as_secs_f64() * 1e3);
    println!(
        "ldap_target: initial {:.2}x ldapadd ({:.1} s vs {:.1} s), idle {:.2} s",
        initial.as_secs_f64() / ldapadd.as_secs_f64(),
        initial.as_secs_f64(),
        ldapadd.as_secs_f64(),
        idle.as_secs_f64()
    );
}
