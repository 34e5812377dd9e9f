//! Source `ldap` against a real OpenLDAP `slapd` (Debian package), started
//! per test on a free loopback port in its own temp dir and stopped by pid.

use crate::harness::{free_port, Env, Scim};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SUFFIX: &str = "dc=example,dc=test";
const ROOT_DN: &str = "cn=admin,dc=example,dc=test";
const ROOT_PW: &str = "slapd-test-password";

fn sbin(name: &str) -> PathBuf {
    let p = PathBuf::from("/usr/sbin").join(name);
    assert!(p.exists(), "{} not found: run scripts/test.sh, which installs slapd and ldap-utils", p.display());
    p
}

pub struct Slapd {
    child: Child,
    pub url: String,
}

impl Slapd {
    /// A private slapd with `ldif` loaded offline.
    pub fn start(dir: &Path, ldif: &str) -> Slapd {
        let dir = dir.join(format!("slapd-{}", free_port()));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::create_dir_all(dir.join("slapd.d")).unwrap();
        let hash = Command::new(sbin("slappasswd")).args(["-s", ROOT_PW]).output().unwrap();
        let hash = String::from_utf8(hash.stdout).unwrap();
        let conf = format!(
            "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\ninclude /etc/ldap/schema/nis.schema\n\
             modulepath /usr/lib/ldap\nmoduleload back_mdb.so\n\
             pidfile {d}/slapd.pid\nsizelimit unlimited\n\
             database mdb\nmaxsize 1073741824\nsuffix \"{SUFFIX}\"\nrootdn \"{ROOT_DN}\"\nrootpw {hash}\n\
             directory {d}/data\ndbnosync\nindex entryUUID eq\n",
            d = dir.display(),
            hash = hash.trim()
        );
        std::fs::write(dir.join("slapd.conf"), conf).unwrap();
        // slaptest writes slapd.d, then exits 1 on the empty database: check the file instead.
        let _ = Command::new(sbin("slaptest")).arg("-f").arg(dir.join("slapd.conf")).arg("-F").arg(dir.join("slapd.d")).output().unwrap();
        assert!(dir.join("slapd.d/cn=config.ldif").exists(), "slaptest did not write slapd.d");
        std::fs::write(dir.join("data.ldif"), ldif).unwrap();
        let add = Command::new(sbin("slapadd")).arg("-F").arg(dir.join("slapd.d")).args(["-q", "-l"]).arg(dir.join("data.ldif")).output().unwrap();
        assert!(add.status.success(), "slapadd: {}", String::from_utf8_lossy(&add.stderr));
        let port = free_port();
        let url = format!("ldap://127.0.0.1:{port}");
        let child = Command::new(sbin("slapd"))
            .arg("-F")
            .arg(dir.join("slapd.d"))
            .args(["-h", &format!("{url}/"), "-d", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let s = Slapd { child, url };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !s.ldap(&["ldapsearch", "-x", "-b", SUFFIX, "-s", "base"], "").status.success() {
            assert!(Instant::now() < deadline, "slapd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    fn ldap(&self, args: &[&str], input: &str) -> std::process::Output {
        let mut c = Command::new(format!("/usr/bin/{}", args[0]));
        c.args(&args[1..]).args(["-H", &self.url, "-D", ROOT_DN, "-w", ROOT_PW]);
        c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    pub fn modify(&self, ldif: &str) {
        let out = self.ldap(&["ldapmodify", "-x"], ldif);
        assert!(out.status.success(), "ldapmodify: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The suffix, `ou=Corp` with `levels` nested OUs per branch, and users
/// spread over the OUs.
fn tree(users: usize) -> String {
    let mut l = format!("dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n");
    let ous = ["ou=Corp", "ou=Sales,ou=Corp", "ou=Emea,ou=Sales,ou=Corp", "ou=Eng,ou=Corp", "ou=Platform,ou=Eng,ou=Corp"];
    for ou in ous {
        let name = ou.split(',').next().unwrap().trim_start_matches("ou=");
        writeln!(l, "dn: {ou},{SUFFIX}\nobjectClass: organizationalUnit\nou: {name}\n").unwrap();
    }
    for i in 0..users {
        let ou = ous[i % ous.len()];
        writeln!(
            l,
            "dn: uid=user{i},{ou},{SUFFIX}\nobjectClass: inetOrgPerson\nuid: user{i}\ncn: User {i}\nsn: {i}\n\
             mail: user{i}@example.test\nemployeeNumber: E{i}\n"
        )
        .unwrap();
    }
    l
}

fn config(env: &Env, scim: &Scim, slapd: &Slapd, password: &str) {
    std::fs::write(env.path("bind-pw"), format!("{password}\n")).unwrap();
    env.scim_config(scim, "");
    let text = std::fs::read_to_string(env.path("orgsync.toml")).unwrap().replace(
        "[source]\nkind = \"file\"\npath = \"org.json\"\n",
        &format!(
            "[source]\nkind = \"ldap\"\nurl = \"{}\"\nbind_dn = \"{ROOT_DN}\"\nbind_password_file = \"bind-pw\"\n\
             base_dn = \"ou=Corp,{SUFFIX}\"\npage_size = 7\n",
            slapd.url
        ),
    );
    std::fs::write(env.path("orgsync.toml"), text).unwrap();
}

#[test]
fn openldap_full_sync_then_renames_and_moves_keep_their_bindings() {
    let env = Env::new();
    let scim = Scim::start(env.dir.path());
    let slapd = Slapd::start(env.dir.path(), &tree(40));
    config(&env, &scim, &slapd, ROOT_PW);

    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let users = scim.users();
    assert_eq!(users.len(), 40, "every page of 7 was read");
    assert_eq!(scim.groups().len(), 5);
    let before: HashSet<String> = users.iter().map(|u| u["id"].as_str().unwrap().to_owned()).collect();

    // Rename an OU and move a user to another OU: ids (entryUUID) stay.
    slapd.modify(&format!("dn: ou=Emea,ou=Sales,ou=Corp,{SUFFIX}\nchangetype: modrdn\nnewrdn: ou=Europe\ndeleteoldrdn: 1\n"));
    slapd.modify(&format!(
        "dn: uid=user0,ou=Corp,{SUFFIX}\nchangetype: modrdn\nnewrdn: uid=user0\ndeleteoldrdn: 1\nnewsuperior: ou=Platform,ou=Eng,ou=Corp,{SUFFIX}\n"
    ));
    let writes = scim.writes().len();
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let new_writes = &scim.writes()[writes..];
    assert!(!new_writes.iter().any(|(m, _, _)| m == "POST"), "nothing recreated: {new_writes:?}");
    assert!(new_writes.iter().any(|(m, _, _)| m == "PATCH" || m == "PUT"), "the rename was pushed: {new_writes:?}");
    let names: Vec<String> = scim.groups().iter().map(|g| g["displayName"].as_str().unwrap().to_owned()).collect();
    assert!(names.contains(&"Europe".to_owned()) && !names.contains(&"Emea".to_owned()), "{names:?}");
    let after: HashSet<String> = scim.users().iter().map(|u| u["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(before, after, "the same accounts, none recreated");
    let dry = env.sync(&["--dry-run"]);
    assert!(dry.stdout.contains("Nothing to do"), "the moved user's department was pushed too:\n{}", dry.stdout);
}

#[test]
fn a_wrong_bind_password_fails_the_run_with_zero_writes() {
    let env = Env::new();
    let scim = Scim::start(env.dir.path());
    let slapd = Slapd::start(env.dir.path(), &tree(3));
    config(&env, &scim, &slapd, "not-the-password");
    let r = env.sync(&[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(scim.writes().is_empty(), "{:?}", scim.writes());
    let s = env.status_json();
    assert_eq!(s["runs"][0]["status"], "failed");
    let message = s["runs"][0]["message"].as_str().unwrap();
    assert!(message.contains("LDAP result 49") && message.contains("check bind_dn and bind_password"), "{message}");
    assert!(!message.contains("not-the-password") && !r.stderr.contains("not-the-password"), "the password leaked");
}
