//! Source `ldap` with `flavor = "active_directory"` against a real Samba AD
//! domain controller (Debian `samba`): a throwaway domain provisioned per
//! test run on its own loopback address (AD's ports are fixed), stopped by
//! pid on drop. Objects are created over LDAPS with ldap-utils.

use crate::harness::{Env, Scim};
use crate::slapd::TestCa;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ADDR: &str = "127.0.0.2";
const BASE: &str = "DC=example,DC=test";
const ADMIN: &str = "Administrator@example.test";
const ADMIN_PW: &str = "Passw0rd!Passw0rd";

pub struct Samba {
    child: Child,
    dir: PathBuf,
    pub url: String,
}

impl Samba {
    /// Provision `EXAMPLE.TEST` in `dir` and start the DC; with `cert`, the
    /// DC serves that certificate instead of the one it generates itself.
    pub fn start(dir: &Path, cert: Option<&TestCa>) -> Samba {
        assert!(
            std::net::TcpStream::connect((ADDR, 636)).is_err(),
            "something already listens on {ADDR}:636 (a leftover samba?); AD's ports are fixed, so stop it first"
        );
        let dir = dir.join(format!("samba-{}", if cert.is_some() { "cert" } else { "own" }));
        for d in ["log", "run"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let opt = |o: String| format!("--option={o}");
        let d = dir.display();
        let mut args = vec![
            "domain".to_owned(),
            "provision".to_owned(),
            format!("--targetdir={d}"),
            "--realm=EXAMPLE.TEST".to_owned(),
            "--domain=EXAMPLE".to_owned(),
            "--server-role=dc".to_owned(),
            "--dns-backend=NONE".to_owned(),
            "--use-rfc2307".to_owned(),
            "--host-name=dc1".to_owned(),
            format!("--host-ip={ADDR}"),
            format!("--adminpass={ADMIN_PW}"),
        ];
        // An address no interface carries is only accepted with a netmask.
        for o in [
            format!("interfaces = {ADDR}/8"),
            "bind interfaces only = yes".to_owned(),
            "server services = ldap, cldap, kdc".to_owned(),
            "krb5 port = 10088".to_owned(),
            "kpasswd port = 10464".to_owned(),
            "cldap port = 10389".to_owned(),
            format!("log file = {d}/log/log.%m"),
            format!("pid directory = {d}/run"),
        ] {
            args.push(opt(o));
        }
        let tool = Path::new("/usr/bin/samba-tool");
        assert!(tool.exists(), "samba-tool not found: run scripts/test.sh, which installs samba");
        let out = Command::new(tool).args(&args).output().unwrap();
        assert!(out.status.success(), "provision: {}", String::from_utf8_lossy(&out.stderr));
        if let Some(c) = cert {
            let conf = dir.join("etc/smb.conf");
            let text = std::fs::read_to_string(&conf).unwrap();
            // Samba refuses a key file others can read.
            let key = dir.join("tls-key.pem");
            std::fs::copy(&c.key, &key).unwrap();
            std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
            let tls = format!(
                "[global]\n\ttls enabled = yes\n\ttls keyfile = {}\n\ttls certfile = {}\n\ttls cafile = {}\n",
                key.display(),
                c.cert.display(),
                c.ca.display()
            );
            std::fs::write(&conf, text.replacen("[global]\n", &tls, 1)).unwrap();
        }
        let child = Command::new("/usr/sbin/samba")
            .args(["-F", "--no-process-group", "--debug-stdout", "-d", "1", "-M", "single", "-s"])
            .arg(dir.join("etc/smb.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let s = Samba { child, dir, url: format!("ldaps://{ADDR}") };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !s.ldap(&["ldapsearch", "-b", BASE, "-s", "base", "dn"], "").status.success() {
            assert!(Instant::now() < deadline, "samba did not answer on {} within 30 s", s.url);
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }

    /// The CA Samba generated for its own certificate.
    pub fn own_ca(&self) -> PathBuf {
        self.dir.join("private/tls/ca.pem")
    }

    /// An ldap-utils command as Administrator over LDAPS. The harness's own
    /// tools skip the certificate check; the code under test never does.
    pub fn ldap(&self, args: &[&str], input: &str) -> std::process::Output {
        let mut c = Command::new(Path::new("/usr/bin").join(args[0]));
        c.args(&args[1..]).args(["-x", "-H", &self.url, "-D", ADMIN, "-w", ADMIN_PW]).env("LDAPTLS_REQCERT", "never");
        c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    pub fn modify(&self, ldif: &str) {
        let out = self.ldap(&["ldapmodify"], ldif);
        assert!(out.status.success(), "ldapmodify: {}\n{ldif}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Samba {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// OUs under `OU=Corp` and users (UAC 544: enabled, no password required;
/// 514: disabled).
fn populate(dc: &Samba) {
    let mut l = String::new();
    for ou in ["OU=Corp", "OU=Sales,OU=Corp", "OU=Eng,OU=Corp"] {
        l.push_str(&format!("dn: {ou},{BASE}\nchangetype: add\nobjectClass: organizationalUnit\n\n"));
    }
    let users = [
        ("ann", "OU=Sales", 544),
        ("bob", "OU=Sales", 544),
        ("cid", "OU=Eng", 544),
        ("dora", "OU=Eng", 544),
        ("eve", "", 544),
        ("fay", "OU=Eng", 514),
    ];
    for (name, ou, uac) in users {
        let ou = if ou.is_empty() { "OU=Corp".to_owned() } else { format!("{ou},OU=Corp") };
        l.push_str(&format!(
            "dn: CN={name},{ou},{BASE}\nchangetype: add\nobjectClass: user\nsAMAccountName: {name}\n\
             userPrincipalName: {name}@example.test\ndisplayName: {name} Example\nmail: {name}@example.test\n\
             employeeID: E-{name}\nuserAccountControl: {uac}\n\n"
        ));
    }
    dc.modify(&l);
}

fn ad_config(env: &Env, scim: &Scim, dc: &Samba, ca: &Path) {
    std::fs::write(env.path("bind-pw"), format!("{ADMIN_PW}\n")).unwrap();
    let source = format!(
        "kind = \"ldap\"\nflavor = \"active_directory\"\nurl = \"{}\"\nca_file = \"{}\"\n\
         bind_dn = \"EXAMPLE\\\\Administrator\"\nbind_password_file = \"bind-pw\"\nbase_dn = \"OU=Corp,{BASE}\"\n",
        dc.url,
        ca.display()
    );
    env.scim_config_with_source(scim, &source, "");
}

/// One test: every DC listens on the same fixed ports of the same address.
#[test]
fn active_directory_on_samba_disabled_users_inactive_moves_keep_the_object_guid_binding() {
    let env = Env::new();
    let scim = Scim::start(env.dir.path());

    // Samba's self-generated certificate names no host in subjectAltName, so
    // no modern TLS client (rustls, browsers) accepts it even with its CA:
    // the run fails, says why, and writes nothing.
    let dc = Samba::start(env.dir.path(), None);
    populate(&dc);
    ad_config(&env, &scim, &dc, &dc.own_ca());
    let r = env.sync(&[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let msg = env.status_json()["runs"][0]["message"].as_str().unwrap().to_owned();
    assert!(msg.contains("does not list this host in its subjectAltName"), "{msg}");
    assert!(scim.writes().is_empty());
    drop(dc);

    // The same domain with a certificate from the organisation's CA.
    let ca = TestCa::new(env.dir.path(), "ad");
    let dc = Samba::start(env.dir.path(), Some(&ca));
    populate(&dc);
    ad_config(&env, &scim, &dc, &ca.ca);

    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let users = scim.users();
    let by_name: HashMap<String, serde_json::Value> =
        users.iter().map(|u| (u["userName"].as_str().unwrap().to_owned(), u.clone())).collect();
    assert_eq!(by_name.len(), 5, "fay (UAC 514) is disabled, so no account is created: {by_name:?}");
    assert_eq!(by_name["ann"]["emails"][0]["value"], "ann@example.test");
    assert_eq!(by_name["ann"]["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["employeeNumber"], "E-ann");
    assert_eq!(by_name["ann"]["active"], true);
    let guid = by_name["cid"]["externalId"].as_str().unwrap().to_owned();
    assert_eq!(guid.len(), 36, "objectGUID in text form: {guid}");
    // The text form is the one AD tools show: search the DC by it.
    let shown = dc.ldap(&["ldapsearch", "-b", &format!("<GUID={guid}>"), "-s", "base", "sAMAccountName"], "");
    assert!(String::from_utf8_lossy(&shown.stdout).contains("sAMAccountName: cid"), "{}", String::from_utf8_lossy(&shown.stdout));
    let groups: Vec<String> = scim.groups().iter().map(|g| g["displayName"].as_str().unwrap().to_owned()).collect();
    assert_eq!(groups.len(), 3, "{groups:?}");

    // Disable dora (UAC 514) and move cid from Eng to Sales: the same
    // accounts, updated, not recreated.
    dc.modify(&format!("dn: CN=dora,OU=Eng,OU=Corp,{BASE}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 514\n"));
    dc.modify(&format!(
        "dn: CN=cid,OU=Eng,OU=Corp,{BASE}\nchangetype: modrdn\nnewrdn: CN=cid\ndeleteoldrdn: 1\nnewsuperior: OU=Sales,OU=Corp,{BASE}\n"
    ));
    let writes = scim.writes().len();
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let new_writes = &scim.writes()[writes..];
    assert!(!new_writes.iter().any(|(m, _, _)| m == "POST"), "nothing recreated: {new_writes:?}");
    let cid = scim.user_by_name("cid").unwrap();
    assert_eq!(cid["id"], by_name["cid"]["id"]);
    assert_eq!(cid["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"], "Sales", "{cid}");
    assert_eq!(scim.user_by_name("dora").unwrap()["active"], false, "UAC 514 is pushed as inactive");
    assert!(env.sync(&["--dry-run"]).stdout.contains("Nothing to do"));

    // From the domain root a subtree search also returns continuation
    // references (DomainDnsZones, …): they are ignored, not an error.
    let text = std::fs::read_to_string(env.path("orgsync.toml")).unwrap();
    std::fs::write(env.path("orgsync.toml"), text.replace(&format!("base_dn = \"OU=Corp,{BASE}\""), &format!("base_dn = \"{BASE}\"")))
        .unwrap();
    let r = env.sync(&["--dry-run"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("Domain Controllers"), "the whole domain is read: {}", r.stdout);
}
