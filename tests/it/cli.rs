//! The command line: check-config, exit codes, the shipped examples.

use crate::harness::Env;

/// Every example config in `config/` is valid, with the secret files they
/// name (systemd credentials) stood in for through the environment.
#[test]
fn every_example_config_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&p).unwrap();
            // Each secret file it names sits in the credentials directory, as
            // under systemd, and the example says how it gets there.
            let creds = tempfile::tempdir().unwrap();
            for line in text.lines().map(str::trim_start).filter(|l| !l.starts_with('#')) {
                let Some((key, value)) = line.split_once(" = ") else { continue };
                if key.ends_with("_file") && key != "ca_file" {
                    let name = value.trim().trim_matches('"');
                    assert!(!name.starts_with('/'), "{}: {key} should name a credential, not a path", p.display());
                    std::fs::write(creds.path().join(name), "a-test-secret\n").unwrap();
                    assert!(
                        text.contains(&format!("LoadCredential={name}:/etc/orgsync/{name}")),
                        "{}: no LoadCredential= line for {name}",
                        p.display()
                    );
                }
            }
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_orgsync"))
                .env("CREDENTIALS_DIRECTORY", creds.path())
                .arg("--config")
                .arg(&p)
                .arg("check-config")
                .output()
                .unwrap();
            assert!(out.status.success(), "{}: {}", p.display(), String::from_utf8_lossy(&out.stderr));
            n += 1;
        }
    }
    assert!(n >= 6, "{n} example configs");
}

#[test]
fn an_invalid_config_exits_2_and_lists_every_problem() {
    let env = Env::new();
    std::fs::write(
        env.path("orgsync.toml"),
        "[source]\nkind = \"file\"\npath = \"o.json\"\n[target]\nkind = \"file\"\npath = \"t.json\"\n\
         [policy.users]\ntarget_only = \"remove\"\nmatchby = [\"email\"]\n",
    )
    .unwrap();
    let r = env.orgsync(&["check-config"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("policy.users.target_only: \"remove\" is not one of ignore, disable, delete"), "{}", r.stderr);
    assert!(r.stderr.contains("policy.users.matchby: unknown key"), "{}", r.stderr);
    let r = env.sync(&[]);
    assert_eq!(r.code, 2);
}

#[test]
fn a_usage_error_exits_2() {
    let env = Env::new();
    assert_eq!(env.orgsync(&["sync", "--allow-deletes", "many"]).code, 2);
    assert_eq!(env.orgsync(&["frobnicate"]).code, 2);
}

#[test]
fn status_before_any_run_says_never_synced() {
    let env = Env::new();
    std::fs::write(
        env.path("orgsync.toml"),
        "state_dir = \"state\"\n[source]\nkind = \"file\"\npath = \"o.json\"\n[target]\nkind = \"file\"\npath = \"t.json\"\n",
    )
    .unwrap();
    assert_eq!(env.status_json()["status"], "never_synced");
}

#[test]
fn the_quickstart_example_syncs_to_the_file_target() {
    // The example writes under example-state/ next to config/: run on a copy.
    // The org is a committed copy of the Quickstart's, which newcomers are
    // invited to edit: the test must not depend on their edits.
    let env = Env::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(env.path("config")).unwrap();
    std::fs::copy(root.join("config/example.toml"), env.path("config/example.toml")).unwrap();
    std::fs::copy(root.join("tests/fixtures/quickstart-org.json"), env.path("config/example-org.json")).unwrap();
    let run = |args: &[&str]| -> crate::harness::Run {
        std::process::Command::new(env!("CARGO_BIN_EXE_orgsync"))
            .arg("--config")
            .arg(env.path("config/example.toml"))
            .args(args)
            .output()
            .unwrap()
            .into()
    };
    let r = run(&["sync"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let dir: serde_json::Value = serde_json::from_slice(&std::fs::read(env.path("example-state/target-directory.json")).unwrap()).unwrap();
    assert_eq!(dir["departments"].as_array().unwrap().len(), 4);
    assert_eq!(dir["users"].as_array().unwrap().len(), 3, "the inactive user is not provisioned");
    let r = run(&["sync", "--dry-run"]);
    assert!(r.stdout.contains("Nothing to do"), "{}", r.stdout);
}

#[test]
fn the_state_directory_and_the_mirror_are_private_whatever_the_umask_or_an_older_release_left() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    env.write_org(&crate::harness::org(3, 10));
    std::fs::write(
        env.path("orgsync.toml"),
        "state_dir = \"state\"\n[source]\nkind = \"file\"\npath = \"org.json\"\n[target]\nkind = \"file\"\npath = \"out.json\"\n",
    )
    .unwrap();
    let mode = |p: &str| std::fs::metadata(env.path(p)).unwrap().permissions().mode() & 0o777;
    // A umask that would leave everything readable by all.
    let mut c = env.command(&["sync"]);
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut c, || {
            libc_umask(0o022);
            Ok(())
        });
    }
    assert!(c.status().unwrap().success());
    assert_eq!((mode("state"), mode("state/mirror.db")), (0o700, 0o600));
    // An older release's modes are narrowed on the next run.
    std::fs::set_permissions(env.path("state"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(env.path("state/mirror.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(env.sync(&[]).code, 0);
    assert_eq!((mode("state"), mode("state/mirror.db")), (0o700, 0o600));
    for f in std::fs::read_dir(env.path("state")).unwrap() {
        let f = f.unwrap();
        assert_eq!(f.metadata().unwrap().permissions().mode() & 0o077, 0, "{:?} is readable by others", f.path());
    }
}

unsafe extern "C" {
    #[link_name = "umask"]
    fn libc_umask(mask: u32) -> u32;
}
