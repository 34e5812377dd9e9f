//! The files ops install: the systemd unit passes `systemd-analyze verify`,
//! the alert rules pass `promtool check rules`, the packaged config is valid
//! once its credential exists, the dashboard is JSON.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tool(var: &str, default: &str) -> PathBuf {
    let p = std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(p.exists(), "{} not found and ${var} is not set: run scripts/test.sh, which installs it", p.display());
    p
}

#[test]
fn the_systemd_unit_verifies_cleanly() {
    // verify wants ExecStart to exist: point it at the binary under test.
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(root().join("systemd/orgsync.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/orgsync run --config /etc/orgsync/orgsync.toml"));
    for key in [
        "Type=notify",
        "WatchdogSec=",
        // The config is checked before the signal: a reload the service would reject fails.
        "ExecReload=/usr/bin/orgsync check-config --config /etc/orgsync/orgsync.toml\nExecReload=/bin/kill -HUP $MAINPID",
        // A config error (exit 2) is not restarted every 10 s forever.
        "RestartPreventExitStatus=2\n",
        "StateDirectory=orgsync",
        "LoadCredential=",
        "CapabilityBoundingSet=\n",
    ] {
        assert!(unit.contains(key), "the unit lacks {key}");
    }
    // The stop timeout outlasts the default grace period (30 s): a run in flight is recorded.
    let stop: u64 = unit.lines().find_map(|l| l.strip_prefix("TimeoutStopSec=")).and_then(|v| v.strip_suffix('s')?.parse().ok()).unwrap();
    assert!(stop > 30, "TimeoutStopSec={stop}s");
    let path = dir.path().join("orgsync.service");
    std::fs::write(&path, unit.replace("/usr/bin/orgsync", env!("CARGO_BIN_EXE_orgsync"))).unwrap();
    let out = Command::new(tool("SYSTEMD_ANALYZE", "/usr/bin/systemd-analyze")).args(["verify", "--man=no"]).arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "systemd-analyze verify:\n{stderr}");
}

#[test]
fn the_alert_rules_pass_promtool() {
    let out = Command::new(tool("PROMTOOL", "/usr/bin/promtool"))
        .args(["check", "rules"])
        .arg(root().join("packaging/prometheus/orgsync-alerts.yml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCESS: 6 rules found"));
    // Every rule has scenarios that fire it and keep it silent: never succeeded,
    // a long partial streak, held-back deletes, a failed run, a rejected reload, a stuck run.
    let tests = root().join("packaging/prometheus/orgsync-alerts.test.yml");
    let text = std::fs::read_to_string(&tests).unwrap();
    let rules = std::fs::read_to_string(root().join("packaging/prometheus/orgsync-alerts.yml")).unwrap();
    for rule in rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")) {
        assert!(text.contains(&format!("alertname: {rule}\n        exp_alerts:\n          - exp_labels")), "no test fires {rule}");
    }
    let out = Command::new(tool("PROMTOOL", "/usr/bin/promtool")).args(["test", "rules"]).arg(&tests).output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_packaged_config_is_valid_once_its_credential_exists() {
    // As systemd runs it: the credential in $CREDENTIALS_DIRECTORY.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("scim_token"), "t\n").unwrap();
    std::fs::write(dir.path().join("org.json"), "{}").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_orgsync"))
        .arg("--config")
        .arg(root().join("packaging/orgsync.toml"))
        .arg("check-config")
        .env("CREDENTIALS_DIRECTORY", dir.path())
        .env("ORGSYNC__SOURCE__PATH", dir.path().join("org.json"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Without it, the file is looked for next to the config; the error names the key and the file.
    let out = Command::new(env!("CARGO_BIN_EXE_orgsync"))
        .arg("--config")
        .arg(root().join("packaging/orgsync.toml"))
        .arg("check-config")
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("target.token_file: cannot read ") && err.contains("packaging/scim_token"), "{err}");
}

#[test]
fn the_grafana_dashboard_is_json_with_panels() {
    let text = std::fs::read_to_string(root().join("packaging/grafana/orgsync-dashboard.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(v["panels"].as_array().unwrap().len() >= 10);
    // Imported by the UI and provisioned from a file alike: no `__inputs`
    // placeholder (provisioning does not fill it), a data source variable.
    assert!(v.get("__inputs").is_none() && !text.contains("${DS_"), "a placeholder only the UI import fills");
    let vars = v["templating"]["list"].as_array().unwrap();
    assert!(vars.iter().any(|t| t["type"] == "datasource" && t["query"] == "prometheus"), "{vars:?}");
    assert!(text.matches("\"uid\": \"${datasource}\"").count() >= 10);
}

fn package(var: &str) -> PathBuf {
    let p = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("${var} is not set: run scripts/test.sh, which builds the packages"));
    assert!(p.is_file(), "{} is missing", p.display());
    p
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_rpm_is_an_rpm_holding_the_binary_unit_and_config() {
    let rpm = std::fs::read(package("ORGSYNC_RPM")).unwrap();
    assert_eq!(&rpm[..4], b"\xed\xab\xee\xdb", "not an RPM lead");
    let text = String::from_utf8_lossy(&rpm);
    for f in
        ["/usr/bin/orgsync", "/usr/lib/systemd/system/orgsync.service", "/etc/orgsync/orgsync.toml", "/usr/lib/sysusers.d/orgsync.conf"]
    {
        // The header lists base names and directories apart.
        let (dir, name) = f.rsplit_once('/').unwrap();
        assert!(text.contains(&format!("{dir}/")) && text.contains(name), "the rpm lacks {f}");
    }
    // The systemd scriptlets: stop on erase, restart a running service on upgrade; and the examples.
    assert!(text.contains("disable --now orgsync.service"), "no preun scriptlet");
    assert!(text.contains("try-restart orgsync.service"), "no postun scriptlet");
    assert!(text.contains("/usr/share/doc/orgsync/examples/") && text.contains("example.toml"), "no examples");
}

#[test]
fn the_deb_installs_a_verified_unit_a_system_user_and_a_guarded_config_then_purges() {
    let deb = package("ORGSYNC_DEB");
    run(Command::new("dpkg").arg("-i").arg(&deb));
    // Purge whatever happens below, so no later run finds it installed.
    struct Purge;
    impl Drop for Purge {
        fn drop(&mut self) {
            let _ = Command::new("dpkg").args(["--purge", "orgsync"]).output();
        }
    }
    let _purge = Purge;

    let version = run(Command::new("/usr/bin/orgsync").arg("--version"));
    assert_eq!(version.trim(), format!("orgsync {}", env!("CARGO_PKG_VERSION")));
    let out = Command::new(tool("SYSTEMD_ANALYZE", "/usr/bin/systemd-analyze"))
        .args(["verify", "--man=no", "/usr/lib/systemd/system/orgsync.service"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "systemd-analyze verify of the installed unit:\n{stderr}");
    let user = run(Command::new("getent").args(["passwd", "orgsync"]));
    assert!(user.starts_with("orgsync:"), "{user}");
    let stat = run(Command::new("stat").args(["-c", "%a %U %G", "/etc/orgsync/orgsync.toml"]));
    assert_eq!(stat.trim(), "640 root orgsync", "the config's mode and owner");
    assert!(Path::new("/usr/share/orgsync/prometheus/orgsync-alerts.yml").is_file());
    // The example names its org file: it ships beside it.
    assert!(Path::new("/usr/share/doc/orgsync/examples/example-org.json").is_file());
    // The reference the README links to ships beside it.
    for page in ["docs/configuration.md", "docs/operations.md", "docs/sources/ldap.md", "docs/targets/scim.md"] {
        assert!(Path::new("/usr/share/doc/orgsync").join(page).is_file(), "{page} is not shipped");
    }
    // Every file it ships: root's, and not writable by others; the binary executable.
    let files = run(Command::new("dpkg").args(["-L", "orgsync"]));
    for f in files.lines().filter(|f| Path::new(f).is_file()) {
        let stat = run(Command::new("stat").args(["-c", "%a %U", f]));
        let (mode, owner) = stat.trim().split_once(' ').unwrap();
        let mode = u32::from_str_radix(mode, 8).unwrap();
        assert_eq!(owner, "root", "{f}");
        assert_eq!(mode & 0o022, 0, "{f} is writable by group or others: {mode:o}");
        if f == "/usr/bin/orgsync" {
            assert_eq!(mode, 0o755);
        }
    }
    let postinst = std::fs::read_to_string("/var/lib/dpkg/info/orgsync.postinst").unwrap();
    assert!(postinst.contains("try-restart orgsync.service"), "an upgrade does not restart a running service");

    run(Command::new("dpkg").args(["--purge", "orgsync"]));
    assert!(!Path::new("/usr/bin/orgsync").exists(), "purged");
    assert!(!Path::new("/etc/orgsync/orgsync.toml").exists(), "purge removes the config");
}
