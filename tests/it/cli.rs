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

fn file_to_file(env: &Env) {
    env.write_org(&crate::harness::org(3, 10));
    std::fs::write(
        env.path("orgsync.toml"),
        "state_dir = \"state\"\n[source]\nkind = \"file\"\npath = \"org.json\"\n[target]\nkind = \"file\"\npath = \"out.json\"\n",
    )
    .unwrap();
}

#[test]
fn closed_stdout_and_stderr_never_fail_a_run_and_a_bad_rust_log_is_said() {
    let env = Env::new();
    file_to_file(&env);
    // Both ends closed before a single line is written (`2>&1 | head -0`).
    let mut c = env.command(&["sync"]);
    c.env("RUST_LOG", "trace").stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    drop(child.stdout.take());
    drop(child.stderr.take());
    assert_eq!(child.wait().unwrap().code(), Some(0), "a closed stderr/stdout ended the run");
    let s = env.status_json();
    assert_eq!(s["runs"][0]["status"], "succeeded", "{s:#}");
    let status = {
        let mut c = env.command(&["status"]);
        let mut child = c.stdout(std::process::Stdio::piped()).spawn().unwrap();
        drop(child.stdout.take());
        child.wait().unwrap().code()
    };
    assert_eq!(status, Some(0), "`orgsync status | head -0` panicked");

    let r: crate::harness::Run = env.command(&["sync"]).env("RUST_LOG", "orgsync=loud").output().unwrap().into();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr.matches("RUST_LOG is not a valid filter").count(), 1, "{}", r.stderr);
}

#[test]
fn under_journald_each_event_is_one_entry_at_its_priority() {
    let env = Env::new();
    file_to_file(&env);
    let r: crate::harness::Run = env.command(&["sync"]).env("JOURNAL_STREAM", "8:12345").env("RUST_LOG", "info").output().unwrap().into();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.is_empty());
    for line in r.stderr.lines() {
        assert!(line.starts_with("<6>") || line.starts_with("<4>") || line.starts_with("<3>"), "no priority: {line:?}");
    }
    // A warning is found by `journalctl -p warning`.
    std::fs::write(env.path("org.json"), "{ not json").unwrap();
    let r: crate::harness::Run = env.command(&["sync"]).env("JOURNAL_STREAM", "8:12345").output().unwrap().into();
    assert_ne!(r.code, 0);
    assert!(r.stderr.lines().any(|l| l.starts_with("<3>") || l.starts_with("<4>")), "{}", r.stderr);
}

#[test]
fn a_damaged_mirror_names_the_file_and_the_way_out_and_moving_it_aside_rebinds() {
    let env = Env::new();
    file_to_file(&env);
    assert_eq!(env.sync(&[]).code, 0);
    // Half of it gone, as after a disk failure or a bad copy.
    let db = env.path("state/mirror.db");
    let bytes = std::fs::read(&db).unwrap();
    std::fs::write(&db, &bytes[..bytes.len() / 2]).unwrap();
    let _ = std::fs::remove_file(env.path("state/mirror.db-wal"));
    let _ = std::fs::remove_file(env.path("state/mirror.db-shm"));
    let overwritten = |p: &std::path::Path| std::fs::write(p, b"not a database at all, just text").unwrap();
    for (damage, cmd) in [(None, "status"), (None, "sync"), (Some(overwritten), "status")] {
        if let Some(d) = damage {
            d(&db);
        }
        let r = env.orgsync(&[cmd]);
        assert_ne!(r.code, 0, "{cmd}: {}", r.stdout);
        assert!(r.stderr.contains("is damaged") && r.stderr.contains("move the file aside"), "{cmd}: {}", r.stderr);
        assert!(r.stderr.contains("mirror.db"), "names the file: {}", r.stderr);
    }
    // The way out works: a new mirror, everything bound again, nothing duplicated.
    std::fs::rename(&db, env.path("state/mirror.db.damaged")).unwrap();
    assert_eq!(env.sync(&[]).code, 0);
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(env.path("out.json")).unwrap()).unwrap();
    assert_eq!(doc["users"].as_array().unwrap().len(), 10, "no duplicates after the rebind");
}

#[test]
fn check_config_lists_a_missing_secret_and_a_missing_source_file_at_once_each_error_said_once() {
    let env = Env::new();
    std::fs::write(
        env.path("orgsync.toml"),
        "state_dir = \"state\"\n[source]\nkind = \"file\"\npath = \"missing-org.json\"\n\
         [target]\nkind = \"scim\"\nbase_url = \"https://scim.example.test/v2\"\ntoken_file = \"missing-token\"\n",
    )
    .unwrap();
    let r = env.orgsync(&["check-config"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.starts_with("error: invalid config"), "{}", r.stderr);
    assert!(r.stderr.contains("target.token_file: cannot read"), "{}", r.stderr);
    assert!(r.stderr.contains("source.path: ") && r.stderr.contains("missing-org.json is not a readable file"), "{}", r.stderr);
    assert_eq!(r.stderr.matches("os error 2").count(), 1, "said once: {}", r.stderr);
    // The source file alone missing: the same prefix as every other error.
    std::fs::write(env.path("missing-token"), "t\n").unwrap();
    let r = env.orgsync(&["check-config"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.starts_with("error: invalid config") && r.stderr.contains("missing-org.json"), "{}", r.stderr);
}

/// A mirror as each earlier release left it: schema version 1 up to this
/// release's, built by the very migrations those releases ran, with a run
/// and an item in it. Every command works on each.
#[test]
fn every_command_works_on_a_mirror_from_any_earlier_release() {
    let latest = orgsync::mirror::schema::latest();
    for version in 1..=latest {
        let env = Env::new();
        file_to_file(&env);
        std::fs::create_dir_all(env.path("state")).unwrap();
        {
            let mut c = rusqlite::Connection::open(env.path("state/mirror.db")).unwrap();
            orgsync::mirror::schema::migrations().to_version(&mut c, version).unwrap();
            c.execute_batch(
                "INSERT INTO runs (id, trigger, started_at, finished_at, status, counts, message)
                   VALUES (1, 'manual', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:01.000Z', 'partial', '{\"user.create.failed\":1}', 'one failed');
                 INSERT INTO run_items (run_id, kind, op, source_id, target_id, outcome, error, at)
                   VALUES (1, 'user', 'create', 'u1', NULL, 'failed', 'HTTP 500', '2026-01-01T00:00:01.000Z');",
            )
            .unwrap();
        }
        for args in [&["status"][..], &["runs", "show", "1"], &["runs", "show", "1", "--changes"], &["sync", "--dry-run"], &["sync"]] {
            let r = env.orgsync(args);
            assert_eq!(r.code, 0, "schema version {version}, {args:?}:\n{}\n{}", r.stdout, r.stderr);
        }
        let s = env.status_json();
        assert_eq!(s["runs"][1]["message"], "one failed", "version {version}: the old run is kept: {s:#}");
        assert_eq!(s["runs"][0]["status"], "succeeded", "version {version}");
    }
}

/// A user the target keeps refusing is tried at the next run, then waits,
/// then is quarantined: later runs succeed without it, `status` lists it,
/// and `orgsync retry` releases it.
#[test]
fn a_user_the_target_keeps_refusing_is_quarantined_listed_and_released_by_retry() {
    let env = Env::new();
    let scim = crate::harness::Scim::start(env.dir.path());
    env.scim_config(&scim, "[policy]\nquarantine_after = 2\n");
    let mut doc = crate::harness::org(1, 3);
    // No userName scim2-server takes: an empty one is refused (400) on every create.
    doc["users"][2]["username"] = serde_json::json!("");
    doc["users"][2]["email"] = serde_json::Value::Null;
    env.write_org(&doc);
    let codes: Vec<i32> = (0..3).map(|_| env.sync(&[]).code).collect();
    assert_eq!(codes[..2], [3, 1], "partial, then failed alone: {codes:?}");
    assert_eq!(codes[2], 0, "quarantined after 2 failures: not a failure of later runs");
    let s = env.status_json();
    let failing = s["failing"].as_array().unwrap();
    assert_eq!(failing.len(), 1, "{s:#}");
    assert_eq!((failing[0]["id"].as_str(), failing[0]["quarantined"].as_bool()), (Some("u2"), Some(true)), "{s:#}");
    assert_eq!(s["runs"][0]["counts"]["user.create.quarantined"], 1, "{s:#}");
    let table = env.orgsync(&["status"]);
    assert!(table.stdout.contains("1 quarantined") && table.stdout.contains("orgsync retry"), "{}", table.stdout);
    // Fixed in the source, then released: created at the next run.
    doc["users"][2]["username"] = serde_json::json!("user2");
    env.write_org(&doc);
    assert_eq!(env.sync(&[]).code, 0);
    assert!(scim.user_by_name("user2").is_none(), "quarantined: not tried");
    assert_eq!(env.orgsync(&["retry"]).code, 2, "an id or --all is needed");
    let r = env.orgsync(&["retry", "u2"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("released 1"), "{}", r.stdout);
    assert_eq!(env.orgsync(&["retry", "u2"]).code, 1, "nothing left to release");
    assert_eq!(env.sync(&[]).code, 0);
    assert!(scim.user_by_name("user2").is_some());
    assert!(env.status_json()["failing"].as_array().unwrap().is_empty());
}
