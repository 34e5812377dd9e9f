//! A private 389 Directory Server (Debian `389-ds-base`) for tests.
//!
//! `dscreate` assumes a system install (systemd, /etc, /var, a `dirsrv`
//! user), so the instance gets its own prefix: a copy of the package's
//! `defaults.inf` with every writable path under the test's directory,
//! systemd off, and the `dse.ldif` template listening on 127.0.0.1 only,
//! before the first start. The harness starts `ns-slapd` in the foreground
//! and stops it by pid on drop (pass or panic).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const SUFFIX: &str = "dc=example,dc=test";
pub const ROOT_DN: &str = "cn=Directory Manager";
pub const ROOT_PW: &str = "ds389-test-password";

pub struct Ds389 {
    child: Child,
    /// `ldap://127.0.0.1:PORT`
    pub url: String,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

impl Ds389 {
    pub fn start(dir: &Path) -> Ds389 {
        assert!(Path::new("/usr/sbin/dscreate").exists(), "dscreate not found: run scripts/test.sh, which installs 389-ds-base");
        let port = crate::slapd::free_port();
        let p: PathBuf = dir.join(format!("389ds-{port}"));
        let prefix = p.display().to_string();
        for d in ["share/dirsrv/inf", "etc/default", "var", "run", "lock", "tmpfiles", "shm", "lib"] {
            std::fs::create_dir_all(p.join(d)).unwrap();
        }
        copy_dir(Path::new("/etc/dirsrv/config"), &p.join("etc/dirsrv/config"));
        copy_dir(Path::new("/etc/dirsrv/schema"), &p.join("etc/dirsrv/schema"));
        copy_dir(Path::new("/usr/share/dirsrv/data"), &p.join("share/dirsrv/data"));
        // Loopback only from the first start on.
        let dse = p.join("share/dirsrv/data/template-dse.ldif");
        let text = std::fs::read_to_string(&dse).unwrap();
        assert!(text.contains("nsslapd-port: %ds_port%\n"), "template-dse.ldif changed shape");
        std::fs::write(&dse, text.replace("nsslapd-port: %ds_port%\n", "nsslapd-port: %ds_port%\nnsslapd-listenhost: 127.0.0.1\n"))
            .unwrap();
        let defaults = std::fs::read_to_string("/usr/share/dirsrv/inf/defaults.inf").unwrap();
        let mut out = String::new();
        for line in defaults.lines() {
            let Some((k, v)) = line.split_once(" = ") else {
                out.push_str(line);
                out.push('\n');
                continue;
            };
            let v = match k {
                "with_systemd" => "0".to_owned(),
                "user" | "group" => "root".to_owned(),
                "data_dir" => format!("{prefix}/share"),
                "sysconf_dir" => format!("{prefix}/etc"),
                "initconfig_dir" => format!("{prefix}/etc/default"),
                "local_state_dir" => format!("{prefix}/var"),
                "run_dir" => format!("{prefix}/run"),
                "inst_dir" => format!("{prefix}/lib/slapd-{{instance_name}}"),
                "tmpfiles_d" => format!("{prefix}/tmpfiles"),
                "db_home_dir" => format!("{prefix}/shm/slapd-{{instance_name}}"),
                "ldapi" => format!("{prefix}/run/slapd.socket"),
                "pid_file" => format!("{prefix}/run/slapd-{{instance_name}}.pid"),
                "lock_dir" => format!("{prefix}/lock/slapd-{{instance_name}}"),
                _ => [("/etc/dirsrv/", "etc/dirsrv/"), ("/var/log/dirsrv", "var/log"), ("/var/lib/dirsrv", "var/lib")]
                    .iter()
                    .find(|(from, _)| v.starts_with(from))
                    .map_or_else(|| v.to_owned(), |(from, to)| format!("{prefix}/{to}{}", &v[from.len()..])),
            };
            out.push_str(&format!("{k} = {v}\n"));
        }
        std::fs::write(p.join("share/dirsrv/inf/defaults.inf"), out).unwrap();
        let inf = format!(
            "[general]\nfull_machine_name = localhost\nstrict_host_checking = False\nselinux = False\nsystemd = False\n\
             start = False\n[slapd]\ninstance_name = t{port}\nport = {port}\nsecure_port = {tls}\nself_sign_cert = False\n\
             root_password = {ROOT_PW}\nuser = root\ngroup = root\nldapi = {prefix}/run/slapd.socket\n\
             [backend-userroot]\nsuffix = {SUFFIX}\ncreate_suffix_entry = True\nsample_entries = no\n",
            tls = crate::slapd::free_port()
        );
        std::fs::write(p.join("instance.inf"), inf).unwrap();
        let out = Command::new("/usr/sbin/dscreate").args(["from-file"]).arg(p.join("instance.inf")).env("PREFIX", &p).output().unwrap();
        assert!(out.status.success(), "dscreate: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let config = p.join(format!("etc/dirsrv/slapd-t{port}"));
        let child = Command::new("/usr/sbin/ns-slapd")
            .arg("-D")
            .arg(&config)
            .arg("-i")
            .arg(p.join("run/ns-slapd.pid"))
            .args(["-d", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let ds = Ds389 { child, url: format!("ldap://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ds.ldap(&["ldapsearch", "-x", "-b", SUFFIX, "-s", "base"], "").status.success() {
            assert!(Instant::now() < deadline, "ns-slapd did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        ds
    }

    /// An ldap-utils command as the Directory Manager.
    pub fn ldap(&self, args: &[&str], input: &str) -> Output {
        let mut c = Command::new(Path::new("/usr/bin").join(args[0]));
        c.args(&args[1..]).args(["-H", &self.url, "-D", ROOT_DN, "-w", ROOT_PW]);
        c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    pub fn add(&self, ldif: &str) {
        let out = self.ldap(&["ldapadd", "-x"], ldif);
        assert!(out.status.success(), "ldapadd: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Ds389 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
