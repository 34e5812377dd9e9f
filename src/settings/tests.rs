use super::*;
use crate::config::{LogFormat, load_tree, validate_with};
use crate::reconcile::{MatchKey, Policy, TargetOnly};
use crate::schedule::Mode;
use crate::sources::SourceConfig;
use crate::sources::ldap::Departments;
use crate::targets::TargetConfig;
use crate::targets::scim::ScimAuth;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

fn write(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("orgsync.toml");
    let mut f = std::fs::File::create(&p).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    p
}

fn problems(text: &str, env: &[(&str, &str)]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), text);
    let vars = || env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    let tree = load_tree(&p, vars()).unwrap();
    match crate::config::validate_with_env::<crate::sources::SourceConfig, crate::targets::TargetConfig>(
        &tree,
        dir.path(),
        None,
        &crate::config::env_keys(vars()),
    ) {
        Ok(_) => vec![],
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

const MINIMAL: &str = r#"
[source]
kind = "file"
path = "org.json"
[target]
kind = "file"
path = "out.json"
"#;

#[test]
fn a_minimal_config_gets_the_documented_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), MINIMAL);
    let c = load(&p).unwrap();
    assert_eq!(c.state_dir, PathBuf::from("/var/lib/orgsync"));
    assert_eq!(c.policy, Policy::default());
    assert_eq!(c.policy.guard.max_deletes, 100);
    assert_eq!(c.policy.guard.max_delete_percent, 20);
    match c.source {
        SourceConfig::File { path } => assert_eq!(path, dir.path().join("org.json")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_problem_is_reported_at_once_with_its_key_and_allowed_values() {
    let errs = problems(
        r#"
colour = "blue"
[source]
kind = "file"
[target]
kind = "ftp"
[policy.users]
target_only = "remove"
match_by = ["email", "phone"]
[policy.departments]
target_only = "disable"
[policy.guard]
max_deletes = -3
"#,
        &[],
    );
    let want = [
        "colour: unknown key",
        "source.path: is required",
        "target.kind: \"ftp\" is not one of scim, ldap, rest, file",
        "policy.users.target_only: \"remove\" is not one of ignore, disable, delete",
        "policy.users.match_by[1]: \"phone\" is not one of email, username, mobile, employee_no",
        "policy.departments.target_only: \"disable\" is not one of ignore, delete",
        "policy.guard.max_deletes: expected a non-negative integer",
    ];
    for w in want {
        assert!(errs.iter().any(|e| e.starts_with(w)), "missing {w:?} in {errs:#?}");
    }
    assert_eq!(errs.len(), want.len(), "{errs:#?}");
}

#[test]
fn environment_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), MINIMAL);
    let tree = load_tree(
        &p,
        [
            ("ORGSYNC__POLICY__USERS__TARGET_ONLY".to_string(), "delete".to_string()),
            ("ORGSYNC__POLICY__GUARD__MAX_DELETES".to_string(), "7".to_string()),
        ],
    )
    .unwrap();
    let c = validate(&tree, dir.path()).unwrap();
    assert_eq!(c.policy.users.target_only, TargetOnly::Delete);
    assert_eq!(c.policy.guard.max_deletes, 7);
}

#[test]
fn an_invalid_environment_override_names_the_key() {
    let errs = problems(MINIMAL, &[("ORGSYNC__POLICY__USERS__SOURCE_ONLY", "create")]);
    assert_eq!(errs, vec!["policy.users.source_only: \"create\" is not one of ignore, create_and_bind"]);
}

#[test]
fn secrets_come_from_files_with_the_trailing_newline_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tok"), "s3cret\n").unwrap();
    let p = write(
        dir.path(),
        r#"
[source]
kind = "file"
path = "org.json"
[target]
kind = "scim"
base_url = "http://127.0.0.1:1/v2"
token_file = "tok"
"#,
    );
    let c = load(&p).unwrap();
    let TargetConfig::Scim(s) = c.target else { panic!("not scim") };
    let ScimAuth::Bearer(tok) = &s.auth else { panic!("not bearer") };
    assert_eq!(tok.expose(), "s3cret");
    assert!(!format!("{s:?}").contains("s3cret"));
}

#[test]
fn a_missing_secret_file_and_both_forms_are_errors() {
    let errs = problems(
        r#"
[source]
kind = "file"
path = "org.json"
[target]
kind = "scim"
base_url = "not a url"
token = "a"
token_file = "/nonexistent/tok"
"#,
        &[],
    );
    assert!(errs.iter().any(|e| e.starts_with("target.base_url: \"not a url\" is not a URL")), "{errs:?}");
    assert!(errs.iter().any(|e| e.starts_with("target.token: set either target.token or target.token_file")), "{errs:?}");
    let errs = problems(
        "[source]\nkind = \"file\"\npath = \"o.json\"\n[target]\nkind = \"scim\"\nbase_url = \"http://h/v2\"\ntoken_file = \"/nonexistent/tok\"\n",
        &[],
    );
    assert!(errs.iter().any(|e| e.starts_with("target.token_file: cannot read /nonexistent/tok")), "{errs:?}");
}

#[test]
fn credentials_in_the_scim_url_are_refused_without_echoing_them() {
    let errs = problems(
        "[source]\nkind = \"file\"\npath = \"o.json\"\n[target]\nkind = \"scim\"\nbase_url = \"https://svc:hunter2@idp.example/v2\"\n",
        &[],
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("target.base_url: must not contain credentials"), "{errs:?}");
    assert!(!errs[0].contains("hunter2"));
}

#[test]
fn schedule_and_daemon_default_to_manual_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let c = load(&write(dir.path(), MINIMAL)).unwrap();
    assert!(matches!(c.schedule.mode, Mode::Manual));
    assert!(c.schedule.run_on_start);
    assert_eq!(c.daemon.listen.to_string(), "127.0.0.1:9464");
    assert_eq!(c.daemon.grace_period, Duration::from_secs(30));
    assert_eq!(c.daemon.log_format, LogFormat::Text);
}

#[test]
fn every_schedule_mode_parses() {
    let dir = tempfile::tempdir().unwrap();
    for (extra, want) in [
        ("mode = \"interval\"\nevery = \"30m\"", "every 30m"),
        ("mode = \"daily\"\nat = \"02:30\"", "daily at 02:30"),
        ("mode = \"weekly\"\nweekday = \"mon\"\nat = \"06:00\"", "weekly on Mon at 06:00"),
        ("mode = \"monthly\"\nday = \"last\"\nat = \"23:00\"", "monthly on the last day at 23:00"),
        ("mode = \"monthly\"\nday = 1\nat = \"23:00\"", "monthly on day 1 at 23:00"),
        ("mode = \"cron\"\ncron = \"0 30 2 * * *\"\ntimezone = \"Europe/Berlin\"", "cron \"0 30 2 * * *\""),
    ] {
        let c = load(&write(dir.path(), &format!("{MINIMAL}\n[schedule]\n{extra}\n"))).unwrap();
        assert_eq!(c.schedule.describe(), want);
    }
}

#[test]
fn schedule_problems_name_the_key() {
    let errs = problems(
        &format!(
            "{MINIMAL}\n[schedule]\nmode = \"weekly\"\nat = \"25:00\"\nevery = \"1h\"\ntimezone = \"Mars/Olympus\"\njitter = \"soon\"\nrun_on_start = \"yes\"\n"
        ),
        &[],
    );
    let want = [
        "schedule.every: is only used with mode = interval (mode is \"weekly\")",
        "schedule.weekday: is required with mode = \"weekly\"",
        "schedule.at: \"25:00\" is not a time like \"02:30\"",
        "schedule.timezone: \"Mars/Olympus\" is not an IANA time zone like \"Europe/Berlin\" or \"Asia/Shanghai\"",
        "schedule.run_on_start: expected true or false, found \"yes\"",
    ];
    for w in want {
        assert!(errs.iter().any(|e| e == w), "missing {w:?} in {errs:#?}");
    }
    assert!(errs.iter().any(|e| e.starts_with("schedule.jitter: \"soon\" is not a duration")), "{errs:#?}");
    let cron = problems(&format!("{MINIMAL}\n[schedule]\nmode = \"cron\"\ncron = \"30 2 * * *\"\n"), &[]);
    assert!(cron[0].starts_with("schedule.cron: \"30 2 * * *\" is not a cron expression with six fields"), "{cron:?}");
    let day = problems(&format!("{MINIMAL}\n[schedule]\nmode = \"monthly\"\nday = 31\nat = \"01:00\"\n"), &[]);
    assert_eq!(day, vec!["schedule.day: \"31\" must be 1..=28 (every month has it) or \"last\""]);
}

#[test]
fn keys_that_do_nothing_in_the_mode_a_string_for_a_list_and_a_seven_field_cron_are_named() {
    let errs = problems(
        &format!(
            "{MINIMAL}\n[policy.users]\nprotected = \"admin\"\n[schedule]\nmode = \"interval\"\nevery = \"1h\"\ntimezone = \"Asia/Shanghai\"\njitter = \"2h\"\n"
        ),
        &[],
    );
    let want = [
        "policy.users.protected: expected a list of strings, found a string (write [\"admin\"])",
        "schedule.timezone: does nothing with mode = \"manual\" or \"interval\" (it places times of day: daily, weekly, monthly, cron)",
        "schedule.jitter: 2h is not shorter than every = 1h",
    ];
    for w in want {
        assert!(errs.iter().any(|e| e == w), "missing {w:?} in {errs:#?}");
    }
    let manual = problems(&format!("{MINIMAL}\n[schedule]\nmode = \"manual\"\njitter = \"5m\"\n"), &[]);
    assert_eq!(manual, ["schedule.jitter: does nothing with mode = \"manual\" (it delays scheduled runs)"]);
    let cron = problems(&format!("{MINIMAL}\n[schedule]\nmode = \"cron\"\ncron = \"0 0 * * * * 2030\"\n"), &[]);
    assert!(cron[0].starts_with("schedule.cron: \"0 0 * * * * 2030\" has 7 fields"), "{cron:?}");
    // From the environment a list is comma-separated, and stays a list.
    let env = problems(MINIMAL, &[("ORGSYNC__POLICY__USERS__PROTECTED", "admin, root")]);
    assert_eq!(env, Vec::<String>::new());
    assert!(
        problems(&format!("{MINIMAL}\n[schedule]\nmode = \"daily\"\nat = \"02:00\"\ntimezone = \"Asia/Shanghai\"\njitter = \"5m\"\n"), &[])
            .is_empty()
    );
}

#[test]
fn ranges_read_as_the_docs_write_them_and_paths_without_detours() {
    let errs = problems(&format!("{MINIMAL}\n[schedule]\nmode = \"interval\"\nevery = \"40d\"\n"), &[]);
    assert_eq!(errs, ["schedule.every: \"40d\" is out of range 1s..=31d"]);
    assert_eq!(crate::config::reader::plain(std::time::Duration::from_secs(90_061)), "1d 1h 1m 1s");
    let p = crate::config::reader::lexical(Path::new("config/../example-state/./x"));
    assert_eq!(p, Path::new("example-state/x"));
    assert_eq!(crate::config::reader::lexical(Path::new("../a")), Path::new("../a"));
}

#[test]
fn an_oauth2_client_without_its_secret_names_only_the_secret() {
    let text = "[source]\nkind = \"file\"\npath = \"org.json\"\n[target]\nkind = \"rest\"\nbase_url = \"https://hr.example.test/api\"\n\
                [target.auth]\nkind = \"oauth2_client_credentials\"\ntoken_url = \"https://hr.example.test/token\"\nclient_id = \"x\"\n\
                client_secret_file = \"missing\"\nscope = \"directory.write\"\n";
    let errs = problems(text, &[]);
    assert!(errs.iter().any(|e| e.starts_with("target.auth.client_secret_file: cannot read")), "{errs:#?}");
    assert!(!errs.iter().any(|e| e.contains("scope")), "scope is a known key: {errs:#?}");
}

#[test]
fn a_listener_beyond_loopback_needs_an_admin_token() {
    let errs = problems(&format!("{MINIMAL}\n[daemon]\nlisten = \"0.0.0.0:9464\"\n"), &[]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("daemon.admin_token_file: is required because daemon.listen (0.0.0.0:9464) is not a loopback address"),
        "{errs:?}"
    );
    let ok = problems(&format!("{MINIMAL}\n[daemon]\nlisten = \"0.0.0.0:9464\"\nadmin_token = \"s3cret\"\n"), &[]);
    assert!(ok.is_empty(), "{ok:?}");
    let bad = problems(&format!("{MINIMAL}\n[daemon]\nlisten = \"localhost\"\nlog_format = \"xml\"\nlog_level = \"info,,=[\"\n"), &[]);
    assert!(bad.iter().any(|e| e.starts_with("daemon.listen: \"localhost\" is not an address")), "{bad:?}");
    assert!(bad.iter().any(|e| e == "daemon.log_format: \"xml\" is not one of text, json"), "{bad:?}");
    assert!(bad.iter().any(|e| e.starts_with("daemon.log_level:")), "{bad:?}");
}

#[test]
fn the_schedule_can_come_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), MINIMAL);
    let env = [("ORGSYNC__SCHEDULE__MODE", "interval"), ("ORGSYNC__SCHEDULE__EVERY", "5m"), ("ORGSYNC__SCHEDULE__RUN_ON_START", "false")];
    let tree = load_tree(&p, env.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap();
    let c = validate(&tree, dir.path()).unwrap();
    assert_eq!(c.schedule.describe(), "every 5m");
    assert!(!c.schedule.run_on_start);
}

const LDAP_TARGET: &str = "[target]\nkind = \"file\"\npath = \"out.json\"\n";

#[test]
fn an_ldap_source_gets_flavor_defaults() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "secret\n").unwrap();
    let text = format!(
        "[source]\nkind = \"ldap\"\nurl = \"ldaps://dc1.example.test\"\nflavor = \"active_directory\"\n\
         bind_dn = \"EXAMPLE\\\\svc\"\nbind_password_file = \"pw\"\nbase_dn = \"DC=example,DC=test\"\n{LDAP_TARGET}"
    );
    let c = load(&write(dir.path(), &text)).unwrap();
    let SourceConfig::Ldap(l) = c.source else { panic!() };
    assert_eq!(l.attributes.username, "sAMAccountName");
    assert_eq!(l.attributes.employee_no, "employeeID");
    assert_eq!(l.user_filter, "(&(objectCategory=person)(objectClass=user))");
    assert_eq!(l.page_size, 500);
    assert_eq!(l.bind_password.unwrap().expose(), "secret");
    assert_eq!(format!("{:?}", l.departments), "OuTree");
}

#[test]
fn groups_as_departments_default_to_the_flavor_filter_and_the_source_base() {
    let text = format!(
        "[source]\nkind = \"ldap\"\nurl = \"ldap://127.0.0.1\"\nbase_dn = \"dc=ex\"\n\
         [source.departments]\nfrom = \"groups\"\n{LDAP_TARGET}"
    );
    let dir = tempfile::tempdir().unwrap();
    let SourceConfig::Ldap(l) = load(&write(dir.path(), &text)).unwrap().source else { panic!() };
    assert_eq!(
        l.departments,
        Departments::Groups { base_dn: None, filter: "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))".into() }
    );
}

#[test]
fn ldap_problems_name_the_key() {
    let errs = problems(
        &format!(
            "[source]\nkind = \"ldap\"\nurl = \"http://x\"\nbind_dn = \"cn=a\"\npage_size = 5000\n\
             [source.departments]\nfrom = \"group\"\nfilter = \"(cn=*)\"\n{LDAP_TARGET}"
        ),
        &[],
    );
    for want in [
        "source.url: \"http://x\" must be ldap://host[:port] or ldaps://host[:port]",
        "source.base_dn: is required",
        "source.page_size: 5000 is out of range 1..=1000 (Active Directory caps pages at 1000)",
        "source.departments.from: \"group\" is not one of ou_tree, attribute, groups",
        "source.departments.filter: is only used with from = \"groups\"",
    ] {
        assert!(errs.iter().any(|e| e == want), "missing {want:?} in {errs:#?}");
    }
    assert!(errs.iter().any(|e| e.starts_with("source.bind_password: bind_dn and bind_password")), "{errs:#?}");
}

fn load_text(text: &str) -> Config {
    let dir = tempfile::tempdir().unwrap();
    load(&write(dir.path(), text)).unwrap()
}

const FILE_TARGET: &str = "[target]\nkind = \"file\"\npath = \"out.json\"\n";

#[test]
fn saas_sources_get_their_vendor_defaults() {
    let c = load_text(&format!("[source]\nkind = \"lark\"\napp_id = \"cli_1\"\napp_secret = \"s\"\n{FILE_TARGET}"));
    let SourceConfig::Feishu(f) = &c.source else { panic!("{:?}", c.source) };
    assert_eq!((f.vendor, f.http.base_url.as_str(), f.http.rate_limit), ("Lark", crate::sources::feishu::LARK_BASE, 20));
    assert_eq!((c.source.kind(), f.roots.as_slice()), ("lark", ["0".to_owned()].as_slice()));

    let c = load_text(&format!(
        "[source]\nkind = \"dingtalk\"\napp_key = \"k\"\napp_secret = \"s\"\nroots = [1, \"9007199254740993\"]\n{FILE_TARGET}"
    ));
    let SourceConfig::DingTalk(d) = &c.source else { panic!("{:?}", c.source) };
    assert_eq!(
        (d.http.base_url.as_str(), d.http.rate_limit, d.user_id_type.as_str()),
        (crate::sources::dingtalk::DINGTALK_BASE, 15, "userid")
    );
    assert_eq!(d.roots, [1, 9_007_199_254_740_993]);
    assert_eq!(c.policy.users.match_by, [MatchKey::Email]);

    let c = load_text(&format!("[source]\nkind = \"wecom\"\ncorp_id = \"ww1\"\ncorp_secret = \"s\"\n{FILE_TARGET}"));
    let SourceConfig::WeCom(w) = &c.source else { panic!("{:?}", c.source) };
    assert_eq!(
        (w.api, w.page_size, w.roots.as_slice(), w.concurrency),
        (crate::sources::wecom::Api::Simplelist, 10_000, [1_i64].as_slice(), 4)
    );
    assert_eq!(c.policy.users.match_by, [MatchKey::Username], "WeCom may return no email or mobile");
    let c = load_text(&format!(
        "[source]\nkind = \"wecom\"\ncorp_id = \"ww1\"\ncorp_secret = \"s\"\n{FILE_TARGET}[policy.users]\nmatch_by = [\"email\"]\n"
    ));
    assert_eq!(c.policy.users.match_by, [MatchKey::Email], "an explicit match_by wins");

    let c = load_text(&format!("[source]\nkind = \"welink\"\nclient_id = \"2019\"\nclient_secret = \"s\"\n{FILE_TARGET}"));
    let SourceConfig::WeLink(w) = &c.source else { panic!("{:?}", c.source) };
    let welink = (w.http.base_url.clone(), w.http.rate_limit, w.roots.clone(), w.concurrency);

    let c = load_text(&format!(
        "[source]\nkind = \"entra\"\ntenant = \"contoso.onmicrosoft.com\"\nclient_id = \"a\"\nclient_secret = \"s\"\n{FILE_TARGET}"
    ));
    let SourceConfig::Entra(e) = &c.source else { panic!("{:?}", c.source) };
    assert_eq!(
        (e.authority_host.as_str(), e.http.base_url.as_str(), e.departments_from, e.delta, e.full_every),
        (
            crate::sources::entra::AUTHORITY_HOST,
            crate::sources::entra::GRAPH_HOST,
            crate::sources::entra::DepartmentsFrom::Groups,
            true,
            Duration::from_secs(86_400)
        )
    );
    assert_eq!(
        (welink.0.as_str(), welink.1, welink.2.as_slice(), welink.3),
        (crate::sources::welink::WELINK_BASE, 20, ["0".to_owned()].as_slice(), 4)
    );
}

#[test]
fn saas_problems_name_the_key() {
    let p = problems(&format!("[source]\nkind = \"dingtalk\"\napp_key = \"k\"\nrate_limit = 40\nroots = [\"x\"]\n{FILE_TARGET}"), &[]);
    assert!(p.iter().any(|e| e.starts_with("source.app_secret: is required (or app_secret_file)")), "{p:?}");
    assert!(p.iter().any(|e| e.starts_with("source.rate_limit: 40 is out of range 1..=20")), "{p:?}");
    assert!(p.iter().any(|e| e.starts_with("source.roots[0]: expected an integer id")), "{p:?}");
    let p = problems(
        &format!(
            "[source]\nkind = \"wecom\"\ncorp_secret = \"s\"\napi = \"all\"\npage_size = 20000\nbase_url = \"https://u:p@proxy\"\n{FILE_TARGET}"
        ),
        &[],
    );
    assert!(p.iter().any(|e| e.starts_with("source.corp_id: ")), "{p:?}");
    assert!(p.iter().any(|e| e.starts_with("source.api: \"all\" is not one of simplelist, list")), "{p:?}");
    assert!(p.iter().any(|e| e.starts_with("source.page_size: 20000 is out of range")), "{p:?}");
    assert!(p.iter().any(|e| e.starts_with("source.base_url: must not contain credentials")), "{p:?}");
    let p = problems(&format!("[source]\nkind = \"feishu\"\napp_id = \"a\"\napp_secret = \"s\"\nconcurrency = 0\n{FILE_TARGET}"), &[]);
    assert!(p.iter().any(|e| e.starts_with("source.concurrency: 0 is out of range 1..=32")), "{p:?}");
    let p = problems(&format!("[source]\nkind = \"welink\"\nclient_secret = \"s\"\nrate_limit = 41\nroots = [\"\"]\n{FILE_TARGET}"), &[]);
    assert!(p.iter().any(|e| e.starts_with("source.client_id: ")), "{p:?}");
    assert!(p.iter().any(|e| e.starts_with("source.rate_limit: 41 is out of range 1..=40")), "{p:?}");
    assert!(p.iter().any(|e| e.starts_with("source.roots: lists an empty department code")), "{p:?}");
    let p = problems(
        &format!(
            "[source]\nkind = \"entra\"\ntenant = \"bad tenant!\"\nclient_id = \"a\"\nfull_every = \"1s\"\n\
             [source.departments]\nfrom = \"ous\"\ngroup_filter = \"x\"\n{FILE_TARGET}"
        ),
        &[],
    );
    assert!(p.iter().any(|e| e.starts_with("source.tenant: \"bad tenant!\" is neither")), "{p:?}");
    assert!(p.iter().any(|e| e.starts_with("source.client_secret: is required")), "{p:?}");
    assert!(p.iter().any(|e| e.starts_with("source.full_every: ")), "{p:?}");
    assert!(p.iter().any(|e| e.starts_with("source.departments.from: \"ous\" is not one of")), "{p:?}");
}

#[test]
fn durations_retries_and_secrets_have_ranges_and_shapes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty"), "\n").unwrap();
    std::fs::write(dir.path().join("two-lines"), "abcd\nefgh\n").unwrap();
    let text = format!(
        "{MINIMAL}[daemon]\ngrace_period = \"1000000000000000000s\"\nadmin_token_file = \"{}\"\n\
         [schedule]\nmode = \"interval\"\nevery = \"0s\"\n",
        dir.path().join("empty").display()
    );
    let got = problems(&text, &[]);
    assert!(got.iter().any(|p| p.starts_with("daemon.grace_period: ") && p.contains("out of range")), "{got:?}");
    assert!(got.iter().any(|p| p.starts_with("schedule.every: ") && p.contains("out of range")), "{got:?}");
    assert!(got.iter().any(|p| p == "daemon.admin_token_file: is empty"), "{got:?}");
    let scim = |extra: &str| {
        format!(
            "[source]\nkind = \"file\"\npath = \"org.json\"\n[target]\nkind = \"scim\"\nbase_url = \"https://idp.example/scim/v2\"\n{extra}"
        )
    };
    let got = problems(
        &scim(&format!(
            "timeout = \"0s\"\nmax_retries = 9223372036854775807\ntoken_file = \"{}\"\n",
            dir.path().join("two-lines").display()
        )),
        &[],
    );
    assert!(got.iter().any(|p| p.starts_with("target.timeout: \"0s\" is out of range 1s..=10m")), "{got:?}");
    assert!(got.iter().any(|p| p.starts_with("target.max_retries: ") && p.contains("0..=20")), "{got:?}");
    assert!(got.iter().any(|p| p.starts_with("target.token_file: contains a line break")), "{got:?}");
    assert!(got.iter().all(|p| !p.contains("abcd")), "a problem showed the secret: {got:?}");
}

#[test]
fn a_missing_source_file_is_a_problem_of_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("orgsync.toml");
    std::fs::write(&p, MINIMAL).unwrap();
    let problems = preflight(&load(&p).unwrap());
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].to_string().starts_with("source.path: ") && problems[0].message.ends_with("org.json is not a readable file"),
        "{problems:?}"
    );
}

#[test]
fn relative_secret_files_are_read_from_the_credentials_directory_when_given() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(creds.join("scim_token"), "from-credentials\n").unwrap();
    let text = "[source]\nkind = \"file\"\npath = \"org.json\"\n[target]\nkind = \"scim\"\nbase_url = \"https://idp.example/scim/v2\"\ntoken_file = \"scim_token\"\n";
    let tree: serde_json::Map<String, serde_json::Value> = toml::from_str(text).unwrap();
    let c: Config = validate_with(&tree, dir.path(), Some(&creds)).unwrap();
    match c.target {
        TargetConfig::Scim(s) => assert!(matches!(s.auth, ScimAuth::Bearer(t) if t.expose() == "from-credentials")),
        other => panic!("{other:?}"),
    }
    assert!(validate(&tree, dir.path()).is_err(), "without it the file is looked for next to the config");
}

#[test]
fn notify_channels_name_every_problem_and_never_echo_a_url() {
    let p = problems(
        &format!(
            "{MINIMAL}\n[[notify]]\nkind = \"slack\"\nurl = \"ftp://secret-hook\"\n[[notify]]\nkind = \"webhook\"\nsecret = \"s\"\non = [\"failed\", \"always\"]\n\
             [[notify]]\nkind = \"dingtalk\"\nurl = \"https://oapi.dingtalk.com/robot/send?access_token=T\"\nmin_interval = \"2h\"\nlanguage = \"zh\"\n"
        ),
        &[],
    );
    assert!(p.iter().any(|e| e.starts_with("notify[0].kind: \"slack\" is not one of")), "{p:?}");
    assert!(p.iter().any(|e| e.starts_with("notify[0].url: must be an http(s):// URL")), "{p:?}");
    assert!(p.iter().any(|e| e.starts_with("notify[1].url: is required (or url_file)")), "{p:?}");
    assert!(p.iter().any(|e| e.starts_with("notify[1].secret: signs only feishu and dingtalk")), "{p:?}");
    assert!(p.iter().any(|e| e.starts_with("notify[1].on: \"always\" is not one of")), "{p:?}");
    assert!(!p.iter().any(|e| e.contains("secret-hook") || e.contains("access_token=T")), "a URL echoed: {p:?}");
    assert!(!p.iter().any(|e| e.starts_with("notify[2]")), "{p:?}");
}

#[test]
fn delete_after_belongs_to_disable_then_delete() {
    let p = problems(&format!("{MINIMAL}\n[policy.users]\ntarget_only = \"disable\"\ndelete_after = \"7d\"\n"), &[]);
    assert!(p.iter().any(|e| e.starts_with("policy.users.delete_after: applies only with target_only = \"disable_then_delete\"")), "{p:?}");
    let p = problems(&format!("{MINIMAL}\n[policy.users]\ntarget_only = \"disable_then_delete\"\ndelete_after = \"7d\"\n"), &[]);
    assert!(p.is_empty(), "{p:?}");
}

#[test]
fn a_scope_filter_is_checked_when_the_config_is_read() {
    let p = problems(&format!("{MINIMAL}\n[scope]\nexclude_departments = [\"d9\"]\nfilter = \"employee_type != \\\"intern\\\"\"\n"), &[]);
    assert!(p.iter().any(|e| e.starts_with("scope.filter: unknown field \"employee_type\"")), "{p:?}");
    let dir = tempfile::tempdir().unwrap();
    let c =
        load(&write(dir.path(), &format!("{MINIMAL}\n[scope]\ninclude_departments = [\"d1\"]\nfilter = \"title != \\\"Intern\\\"\"\n")))
            .unwrap();
    assert_eq!(c.scope.include_departments, ["d1"]);
    assert!(c.scope.filter.is_some());
}

const FILE_SOURCE: &str = "[source]\nkind = \"file\"\npath = \"org.json\"\n";

#[test]
fn an_ldap_target_gets_its_defaults() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "secret\n").unwrap();
    let p = write(
        dir.path(),
        &format!(
            "{FILE_SOURCE}[target]\nkind = \"ldap\"\nurl = \"ldap://127.0.0.1:389\"\nbind_dn = \"cn=admin,dc=x\"\n\
             bind_password_file = \"pw\"\nusers_dn = \"ou=People,dc=x\"\ndepartments_dn = \"ou=Departments,dc=x\"\n\
             disable = \"attribute\"\ndisable_attribute = \"nsAccountLock\"\ndisable_value = \"true\"\n"
        ),
    );
    let cfg = load(&p).unwrap();
    let TargetConfig::Ldap(t) = &cfg.target else { panic!("{:?}", cfg.target) };
    assert_eq!(t.layout, crate::targets::ldap::Layout::OuTree);
    assert_eq!(t.user_rdn, "uid");
    assert_eq!(t.user_object_classes, ["top", "person", "organizationalPerson", "inetOrgPerson"]);
    assert_eq!(t.attributes, crate::targets::ldap::Attributes::default());
    assert_eq!(t.disable, crate::targets::ldap::Disable::Attribute { name: "nsAccountLock".into(), value: "true".into() });
    assert_eq!(t.connection.bind_password.as_ref().unwrap().expose(), "secret");
    assert_eq!((t.concurrency, t.connection.page_size), (4, 500));
    assert!(!format!("{t:?}").contains("secret"), "the password stays out of Debug");
}

#[test]
fn ldap_target_problems_name_the_key() {
    let errs = problems(
        &format!(
            "{FILE_SOURCE}[target]\nkind = \"ldap\"\nurl = \"ldaps://x\"\nstarttls = true\nbind_dn = \"cn=admin,dc=x\"\n\
             users_dn = \"People\"\nuser_rdn = \"cn2\"\ndisable = \"move\"\n\
             [target.departments]\nas = \"tree\"\n[target.attributes]\nphone = \"telephoneNumber\"\n"
        ),
        &[],
    );
    for want in [
        "target.starttls: is for ldap:// URLs; ldaps:// is TLS from the start",
        "target.bind_password: is required (or bind_password_file): orgsync binds to write",
        "target.users_dn: \"People\" is not a DN (e.g. ou=People,dc=example,dc=com)",
        "target.departments_dn: is required",
        "target.departments.as: \"tree\" is not one of ou_tree, groups",
        "target.disabled_dn: is required with disable = \"move\"",
    ] {
        assert!(errs.iter().any(|e| e == want), "missing {want:?} in {errs:#?}");
    }
    assert!(errs.iter().any(|e| e.starts_with("target.user_rdn: \"cn2\" is not written from a field")), "{errs:#?}");
    assert!(errs.iter().any(|e| e.starts_with("target.attributes.phone: unknown key")), "{errs:#?}");
    let errs = problems(
        &format!(
            "{FILE_SOURCE}[target]\nkind = \"ldap\"\nurl = \"ldap://x\"\nbind_dn = \"cn=a\"\nbind_password = \"p\"\n\
             users_dn = \"ou=People,dc=x\"\ndepartments_dn = \"ou=D,dc=x\"\n"
        ),
        &[],
    );
    assert!(errs.iter().any(|e| e.starts_with("target.disable: is required")), "{errs:#?}");
}

#[test]
fn rest_target_template_and_jsonpath_errors_name_the_key_line_and_column() {
    let errs = problems(
        &format!(
            "{FILE_SOURCE}[target]\nkind = \"rest\"\nbase_url = \"https://hr.example.com\"\n\
             [target.users.list]\npath = \"/users\"\nitems = \"$.data[\"\npaging = \"cursor\"\n\
             [target.users.fields]\nid = \"$.id\"\nphone = \"$.phone\"\n\
             [target.users.create]\npath = \"/users\"\nbody = '''\n{{\"name\": {{{{ user.name | tojson }}}},\n \"x\": {{{{ user.name | }}}}}}\n'''\n"
        ),
        &[],
    );
    assert!(errs.iter().any(|e| e.starts_with("target.users.list.items: not a JSONPath")), "{errs:#?}");
    assert!(errs.iter().any(|e| e.starts_with("target.users.list.next: is required with paging = \"cursor\"")), "{errs:#?}");
    assert!(errs.iter().any(|e| e.starts_with("target.users.fields.phone: unknown key")), "{errs:#?}");
    assert!(errs.iter().any(|e| e.starts_with("target.users.create.body: template error at line 2, column")), "{errs:#?}");
    let errs = problems(&format!("{FILE_SOURCE}[target]\nkind = \"rest\"\npreset = \"keycloak\"\nbase_url = \"http://kc\"\n"), &[]);
    assert!(errs.iter().any(|e| e.starts_with("target.params: needs realm")), "{errs:#?}");
    assert!(errs.iter().any(|e| e.starts_with("target.auth.client_secret: is required")), "{errs:#?}");
    assert_eq!(errs.len(), 2, "the preset fills everything else: {errs:#?}");
}

#[test]
fn the_keycloak_preset_fills_every_operation_and_the_config_overrides_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s"), "kc-secret\n").unwrap();
    let p = write(
        dir.path(),
        &format!(
            "{FILE_SOURCE}[target]\nkind = \"rest\"\npreset = \"keycloak\"\nbase_url = \"http://kc:8080\"\n\
             [target.params]\nrealm = \"corp\"\n[target.auth]\nclient_secret_file = \"s\"\n\
             [target.users.list]\npage_size = 7\n"
        ),
    );
    let cfg = load(&p).unwrap();
    let TargetConfig::Rest(r) = &cfg.target else { panic!("{:?}", cfg.target) };
    assert!(matches!(&r.auth, crate::targets::rest::Auth::OAuth2 { client_id, .. } if client_id == "orgsync"));
    assert_eq!(r.users.list.page_size, 7, "the config's key wins");
    assert!(r.users.disable.is_some() && r.users.add_member.is_some() && r.users.remove_member.is_some());
    let d = r.departments.as_ref().unwrap();
    assert!(d.set_parent.is_some() && d.members.is_some() && d.list.children.is_some());
    let ctx = serde_json::json!({"params": {"realm": "corp"}, "parent": null, "base_url": "http://kc:8080"});
    assert_eq!(r.templates.render("target.departments.create.path", &ctx).unwrap(), "/admin/realms/corp/groups");
    assert_eq!(r.templates.render("target.auth.token_url", &ctx).unwrap(), "http://kc:8080/realms/corp/protocol/openid-connect/token");
}
