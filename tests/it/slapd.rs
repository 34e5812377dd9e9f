//! A private OpenLDAP `slapd` (Debian package) for tests and the fetch
//! benchmark: started on free loopback ports in its own directory with the
//! tree loaded offline (slapadd), stopped by pid on drop (pass or panic).
//!
//! It behaves like Active Directory where that matters to a client: a
//! non-root search that is not paged stops at 1,000 entries with
//! `sizeLimitExceeded`; paged searches may read everything. The root DN is
//! exempt from limits, so the code under test binds as [`READER_DN`].
//!
//! Self-contained (std only) so `benches/ldap_fetch.rs` includes it too.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SUFFIX: &str = "dc=example,dc=test";
pub const ROOT_DN: &str = "cn=admin,dc=example,dc=test";
pub const ROOT_PW: &str = "slapd-test-password";
/// A plain entry with a password: subject to the size limits.
pub const READER_DN: &str = "cn=reader,dc=example,dc=test";
pub const READER_PW: &str = "reader-test-password";
/// OUs of the generated tree, under [`SUFFIX`]; users are spread over them.
pub const OUS: [&str; 5] = ["ou=Corp", "ou=Sales,ou=Corp", "ou=Emea,ou=Sales,ou=Corp", "ou=Eng,ou=Corp", "ou=Platform,ou=Eng,ou=Corp"];
/// Groups under `ou=Groups`: (cn, parent group cn). Users go into them by
/// number, see [`tree`].
pub const GROUPS: [(&str, Option<&str>); 4] =
    [("Engineering", None), ("Backend", Some("Engineering")), ("Storage", Some("Backend")), ("Marketing", None)];

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn bin(dir: &str, name: &str) -> PathBuf {
    let p = Path::new(dir).join(name);
    assert!(p.exists(), "{} not found: run scripts/test.sh, which installs slapd and ldap-utils", p.display());
    p
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl (Debian package openssl)");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A throwaway CA and a server certificate it signed for `localhost` and
/// `127.0.0.1` / `127.0.0.2` (P-256, valid two days).
pub struct TestCa {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCa {
    pub fn new(dir: &Path, name: &str) -> TestCa {
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj"]);
        let subject = format!("/CN=orgsync test CA {name}");
        ca.push(&subject);
        openssl(&dir, &ca);
        let mut req = vec!["req"];
        req.extend(ec);
        req.extend(["-keyout", "key.pem", "-out", "req.csr", "-subj", "/CN=localhost"]);
        openssl(&dir, &req);
        std::fs::write(
            dir.join("ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:127.0.0.2\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "req.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "cert.pem",
                "-days",
                "2",
                "-extfile",
                "ext",
            ],
        );
        TestCa { ca: dir.join("ca.pem"), cert: dir.join("cert.pem"), key: dir.join("key.pem") }
    }
}

pub struct Slapd {
    child: Child,
    /// Its config dir and `-h` listeners, to start it again.
    conf: PathBuf,
    listen: String,
    /// `ldap://127.0.0.1:PORT`
    pub url: String,
    /// `ldaps://127.0.0.1:PORT` when started with TLS.
    pub ldaps_url: Option<String>,
    ca: Option<PathBuf>,
}

impl Slapd {
    /// A private slapd with `ldif` loaded offline, plain LDAP only.
    pub fn start(dir: &Path, ldif: &str) -> Slapd {
        Slapd::start_with(dir, ldif, None)
    }

    /// With `tls`: LDAPS on a second port, StartTLS on the first, and a
    /// simple bind refused unless the connection is encrypted.
    pub fn start_with(dir: &Path, ldif: &str, tls: Option<&TestCa>) -> Slapd {
        Slapd::start_full(dir, ldif, tls, &[])
    }

    /// Plain LDAP, with `hidden` attributes unreadable to the reader (an
    /// ACL, as a directory admin would set one for a sync account).
    pub fn start_hiding(dir: &Path, ldif: &str, hidden: &[&str]) -> Slapd {
        Slapd::start_full(dir, ldif, None, hidden)
    }

    fn start_full(dir: &Path, ldif: &str, tls: Option<&TestCa>, hidden: &[&str]) -> Slapd {
        let sbin = |n| bin("/usr/sbin", n);
        let dir = dir.join(format!("slapd-{}", free_port()));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::create_dir_all(dir.join("slapd.d")).unwrap();
        let hash = Command::new(sbin("slappasswd")).args(["-s", ROOT_PW]).output().unwrap();
        let hash = String::from_utf8(hash.stdout).unwrap();
        let tls_conf = tls.map_or(String::new(), |t| {
            format!(
                "TLSCACertificateFile {}\nTLSCertificateFile {}\nTLSCertificateKeyFile {}\nsecurity simple_bind=128\n",
                t.ca.display(),
                t.cert.display(),
                t.key.display()
            )
        });
        let conf = format!(
            "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\ninclude /etc/ldap/schema/nis.schema\n\
             modulepath /usr/lib/ldap\nmoduleload back_mdb.so\n\
             pidfile {d}/slapd.pid\n{tls_conf}\
             sizelimit size.soft=1000 size.hard=1000 size.pr=1000 size.prtotal=unlimited\n\
             database mdb\nmaxsize 1073741824\nsuffix \"{SUFFIX}\"\nrootdn \"{ROOT_DN}\"\nrootpw {hash}\n\
             directory {d}/data\ndbnosync\nindex entryUUID,member,uniqueMember eq\n\
             access to attrs=userPassword by anonymous auth by * none\n{hide}access to * by * read\n",
            d = dir.display(),
            hash = hash.trim(),
            hide = if hidden.is_empty() {
                String::new()
            } else {
                format!("access to attrs={} by dn.exact=\"{READER_DN}\" none by * read\n", hidden.join(","))
            }
        );
        std::fs::write(dir.join("slapd.conf"), conf).unwrap();
        // slaptest writes slapd.d, then exits 1 on the empty database: check the file instead.
        let _ = Command::new(sbin("slaptest")).arg("-f").arg(dir.join("slapd.conf")).arg("-F").arg(dir.join("slapd.d")).output().unwrap();
        assert!(dir.join("slapd.d/cn=config.ldif").exists(), "slaptest did not write slapd.d");
        let ldif = format!("{ldif}dn: {READER_DN}\nobjectClass: person\ncn: reader\nsn: reader\nuserPassword: {READER_PW}\n\n");
        std::fs::write(dir.join("data.ldif"), ldif).unwrap();
        let add = Command::new(sbin("slapadd"))
            .arg("-F")
            .arg(dir.join("slapd.d"))
            .args(["-q", "-l"])
            .arg(dir.join("data.ldif"))
            .output()
            .unwrap();
        assert!(add.status.success(), "slapadd: {}", String::from_utf8_lossy(&add.stderr));
        let url = format!("ldap://127.0.0.1:{}", free_port());
        let ldaps_url = tls.map(|_| format!("ldaps://127.0.0.1:{}", free_port()));
        let listen = match &ldaps_url {
            Some(s) => format!("{url}/ {s}/"),
            None => format!("{url}/"),
        };
        let conf = dir.join("slapd.d");
        let child = Self::spawn(&conf, &listen);
        let s = Slapd { child, conf, listen, url, ldaps_url, ca: tls.map(|t| t.ca.clone()) };
        s.wait_ready();
        s
    }

    fn spawn(conf: &Path, listen: &str) -> Child {
        Command::new(bin("/usr/sbin", "slapd"))
            .arg("-F")
            .arg(conf)
            .args(["-h", listen, "-d", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.ldap(&["ldapsearch", "-x", "-b", SUFFIX, "-s", "base"], "").status.success() {
            assert!(Instant::now() < deadline, "slapd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// kill -9, as a crashed or unplugged server.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Start it again on the same ports over the same data.
    pub fn restart(&mut self) {
        self.child = Self::spawn(&self.conf, &self.listen);
        self.wait_ready();
    }

    /// An ldap-utils command as the root DN (over LDAPS when there is TLS).
    pub fn ldap(&self, args: &[&str], input: &str) -> std::process::Output {
        self.ldap_as(ROOT_DN, ROOT_PW, args, input)
    }

    pub fn ldap_as(&self, dn: &str, pw: &str, args: &[&str], input: &str) -> std::process::Output {
        let mut c = Command::new(bin("/usr/bin", args[0]));
        let url = self.ldaps_url.as_ref().unwrap_or(&self.url);
        c.args(&args[1..]).args(["-H", url, "-D", dn, "-w", pw]);
        if let Some(ca) = &self.ca {
            c.env("LDAPTLS_CACERT", ca);
        }
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

/// The suffix, the nested [`OUS`] with `users` spread over them, and
/// `ou=Groups` holding [`GROUPS`] (groupOfNames; a child group is a member
/// of its parent). User `i` is a member of group `i % 5` when that is
/// below 4, so every fifth user is in no group.
pub fn tree(users: usize) -> String {
    let mut l = format!("dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n");
    for ou in OUS {
        let name = ou.split(',').next().unwrap().trim_start_matches("ou=");
        writeln!(l, "dn: {ou},{SUFFIX}\nobjectClass: organizationalUnit\nou: {name}\n").unwrap();
    }
    let user_dn = |i: usize| format!("uid=user{i},{},{SUFFIX}", OUS[i % OUS.len()]);
    for i in 0..users {
        writeln!(
            l,
            "dn: {}\nobjectClass: inetOrgPerson\nuid: user{i}\ncn: User {i}\nsn: {i}\n\
             mail: user{i}@example.test\nemployeeNumber: E{i}\n",
            user_dn(i)
        )
        .unwrap();
    }
    writeln!(l, "dn: ou=Groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: Groups\n").unwrap();
    for (g, (cn, _)) in GROUPS.iter().enumerate() {
        write!(l, "dn: cn={cn},ou=Groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: {cn}\n").unwrap();
        // groupOfNames needs a member: the group's own DN stands in when empty.
        writeln!(l, "member: cn={cn},ou=Groups,{SUFFIX}").unwrap();
        for (child, _) in GROUPS.iter().filter(|(_, p)| *p == Some(*cn)) {
            writeln!(l, "member: cn={child},ou=Groups,{SUFFIX}").unwrap();
        }
        for i in (g..users).step_by(5) {
            writeln!(l, "member: {}", user_dn(i)).unwrap();
        }
        l.push('\n');
    }
    l
}
