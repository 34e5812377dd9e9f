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
    for key in ["Type=notify", "WatchdogSec=", "ExecReload=/bin/kill -HUP $MAINPID", "StateDirectory=orgsync", "LoadCredential=", "CapabilityBoundingSet=\n"] {
        assert!(unit.contains(key), "the unit lacks {key}");
    }
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
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCESS: 4 rules found"));
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
}
