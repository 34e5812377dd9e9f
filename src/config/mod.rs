//! Configuration: load (TOML file + `ORGSYNC__SECTION__KEY` environment
//! overrides) -> one merged tree -> pure validation that reports every
//! problem at once, each with its key path -> typed [`Config`].
//!
//! Relative paths in the file are resolved against the config file's directory.
//!
//! This module knows no source or target: each component parses its own
//! section through [`Section`]; [`crate::settings`] names the components.

pub mod notify;
pub mod reader;
pub mod secret;

pub use reader::Problem;
pub use secret::Secret;

use crate::reconcile::{DepartmentPolicy, Guard, MatchKey, Policy, SourceOnly, TargetOnly, UserField, UserPolicy};
use crate::schedule::{self, Mode, MonthDay, Schedule};
use reader::{Problems, Reader};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_PATH: &str = "/etc/orgsync/orgsync.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config {path}:\n{}", .problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid { path: PathBuf, problems: Vec<Problem> },
}

/// A component's section (`[source]`, `[target]`), read by the component.
pub trait Section: Clone + std::fmt::Debug + Sized {
    /// The section's typed config; every problem goes to `errs` by its key.
    fn parse(r: &mut Reader<'_>, errs: &mut Problems) -> Option<Self>;
}

/// What the policy's defaults need to know of the source.
pub trait SourceSection: Section {
    /// The default `policy.users.match_by`.
    fn default_match_by(&self) -> Vec<MatchKey>;
}

/// The whole, validated configuration, with the source's (`S`) and the
/// target's (`T`) sections; [`crate::settings::Config`] names them.
#[derive(Clone, Debug)]
pub struct Settings<S, T> {
    /// Where the mirror (`mirror.db`) and the lock live. Default `/var/lib/orgsync`.
    pub state_dir: PathBuf,
    /// `state.keep_runs`: the runs (with their items) the mirror keeps; older ones are pruned after each run. Default 100.
    pub keep_runs: u64,
    /// The one identity source (`[source]`).
    pub source: S,
    /// The target system (`[target]`).
    pub target: T,
    /// Discrepancy policies and the deletion guard (`[policy]`).
    pub policy: Policy,
    /// When `orgsync run` syncs (`[schedule]`). Default: manual, one run at start.
    pub schedule: Schedule,
    /// The service itself (`[daemon]`).
    pub daemon: DaemonConfig,
    /// Where runs are announced (`[[notify]]`).
    pub notify: Vec<notify::NotifyConfig>,
    /// Which part of the organisation is synced (`[scope]`).
    pub scope: crate::reconcile::scope::Scope,
    /// Model fields set by expressions over the source's records (`[mapping]`).
    pub mapping: crate::mapping::Mapping,
}

/// `daemon.log_format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[daemon]`: the HTTP listener, shutdown and logging of `orgsync run`.
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    /// `listen`: address of `/metrics`, `/healthz`, `/readyz`, `/status`, `POST /sync`. Default `127.0.0.1:9464`.
    pub listen: std::net::SocketAddr,
    /// `admin_token` / `admin_token_file`: bearer token for `POST /sync` and `GET /explain`; required when `listen` is not loopback.
    pub admin_token: Option<Secret>,
    /// `grace_period`: on SIGTERM, how long in-flight operations may take to finish. A hard
    /// deadline: what is still in flight at its end is abandoned and recorded `not_attempted`,
    /// and the run is recorded within it. Default `30s`.
    pub grace_period: Duration,
    /// `log_format`: `text` (default) or `json`.
    pub log_format: LogFormat,
    /// `log_level`: a tracing filter such as `info` or `orgsync=debug`; `RUST_LOG` overrides it. Default `info`.
    pub log_level: String,
    /// `unready_after_failures`: `/readyz` fails after this many failed runs in a row. Default 3.
    pub unready_after_failures: u64,
    /// `public_url`: where admins reach this service's HTTP endpoints (said in notifications).
    pub public_url: Option<String>,
    /// `name`: which orgsync this is, in notifications. Default the host name.
    pub name: Option<String>,
    /// `web_actions`: the admin page may approve or reject held-back
    /// deletions and release quarantined objects. Default false (read-only).
    pub web_actions: bool,
    /// `web_actions_over_plain_http`: allow those actions from clients
    /// beyond loopback over plain HTTP (not through a TLS proxy). Default false.
    pub web_actions_over_plain_http: bool,
}

impl DaemonConfig {
    /// `name`, else the host name, else `orgsync`.
    pub fn instance(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "orgsync".into())
        })
    }
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 9464)),
            admin_token: None,
            grace_period: Duration::from_secs(30),
            log_format: LogFormat::Text,
            log_level: "info".into(),
            unready_after_failures: 3,
            public_url: None,
            name: None,
            web_actions: false,
            web_actions_over_plain_http: false,
        }
    }
}

/// Every timeout: per request or operation.
pub const TIMEOUTS: std::ops::RangeInclusive<Duration> = Duration::from_secs(1)..=Duration::from_secs(600);
/// Every `max_retries`: beyond 20, backoff has long reached its cap.
pub const RETRIES: std::ops::RangeInclusive<u64> = 0..=20;

/// Read and validate the config at `path`, with environment overrides.
pub fn load<S: SourceSection, T: Section>(path: &Path) -> Result<Settings<S, T>, ConfigError> {
    let tree = load_tree(path, std::env::vars())?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let invalid = |problems| ConfigError::Invalid { path: path.to_owned(), problems: blame_env(problems, std::env::vars()) };
    let env_keys = env_keys(std::env::vars());
    validate_with_env(&tree, &base, credentials.as_deref(), &env_keys).map_err(invalid)
}

/// The keys the `ORGSYNC__…` variables set, dotted and lower-case.
pub fn env_keys(env: impl IntoIterator<Item = (String, String)>) -> BTreeSet<String> {
    env.into_iter()
        .filter_map(|(var, _)| Some(var.strip_prefix("ORGSYNC__")?.split("__").map(str::to_lowercase).collect::<Vec<_>>().join(".")))
        .collect()
}

/// Say which problems come from an `ORGSYNC__…` variable rather than the file.
fn blame_env(mut problems: Vec<Problem>, env: impl IntoIterator<Item = (String, String)>) -> Vec<Problem> {
    let overrides: Vec<(String, String)> = env
        .into_iter()
        .filter_map(|(var, _)| {
            let key = var.strip_prefix("ORGSYNC__")?.split("__").map(str::to_lowercase).collect::<Vec<_>>().join(".");
            Some((key, var))
        })
        .collect();
    for p in &mut problems {
        let from =
            overrides.iter().find(|(k, _)| p.key == *k || p.key.starts_with(&format!("{k}.")) || p.key.starts_with(&format!("{k}[")));
        if let Some((_, var)) = from {
            p.message = format!("{} (set by the environment variable {var})", p.message);
        }
    }
    problems
}

/// Merge the file and the `ORGSYNC__*` variables into one tree.
pub fn load_tree(
    path: &Path,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<serde_json::Map<String, serde_json::Value>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    // A syntax error is reported by line and column only: the line itself
    // may hold a secret, and the error goes to logs and terminals.
    if let Err(e) = toml::from_str::<toml::Table>(&text) {
        let at = e.span().map(|span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: ")
        });
        let message = format!("TOML syntax error at {}{}", at.unwrap_or_default(), e.message().trim_end());
        return Err(ConfigError::Parse { path: path.to_owned(), message });
    }
    let env: Vec<(String, String)> = env.into_iter().filter(|(k, _)| k.starts_with("ORGSYNC__")).collect();
    let merge = |env: &[(String, String)]| {
        config::Config::builder()
            .add_source(config::File::from_str(&text, config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix("ORGSYNC")
                    .prefix_separator("__")
                    .separator("__")
                    .source(Some(env.iter().cloned().collect())),
            )
            .build()
            .and_then(|merged| merged.try_deserialize::<serde_json::Map<String, serde_json::Value>>())
    };
    merge(&env).map_err(|_| {
        // The file alone is valid TOML: the environment is at fault. Name
        // the variables that break it (not their values: they may be secrets).
        let culprits: Vec<&str> = env.iter().filter(|v| merge(std::slice::from_ref(*v)).is_err()).map(|(k, _)| k.as_str()).collect();
        let message = if culprits.is_empty() {
            format!(
                "the environment overrides ({}) together do not fit the file's structure",
                env.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", ")
            )
        } else {
            format!(
                "environment override {} does not fit the config's structure (a value where the file has a table, or the reverse)",
                culprits.join(", ")
            )
        };
        ConfigError::Parse { path: path.to_owned(), message }
    })
}

/// Pure validation of a merged tree: every problem at once.
pub fn validate<S: SourceSection, T: Section>(
    tree: &serde_json::Map<String, serde_json::Value>,
    base: &Path,
) -> Result<Settings<S, T>, Vec<Problem>> {
    validate_with(tree, base, None)
}

/// [`validate`], with relative `*_file` secrets read from `credentials`
/// (`$CREDENTIALS_DIRECTORY`, where systemd puts them) when given.
pub fn validate_with<S: SourceSection, T: Section>(
    tree: &serde_json::Map<String, serde_json::Value>,
    base: &Path,
    credentials: Option<&Path>,
) -> Result<Settings<S, T>, Vec<Problem>> {
    validate_with_env(tree, base, credentials, &BTreeSet::new())
}

/// [`validate_with`], knowing which keys the environment set (a list given
/// there is comma-separated).
pub fn validate_with_env<S: SourceSection, T: Section>(
    tree: &serde_json::Map<String, serde_json::Value>,
    base: &Path,
    credentials: Option<&Path>,
    env_keys: &BTreeSet<String>,
) -> Result<Settings<S, T>, Vec<Problem>> {
    let mut errs: Problems = Vec::new();
    let mut root = Reader::root(tree, base, credentials).with_env_keys(env_keys);
    let state_dir = root.path("state_dir", &mut errs).unwrap_or_else(|| PathBuf::from("/var/lib/orgsync"));
    let mut st = root.table("state", &mut errs);
    let keep_runs = st.u64_in("keep_runs", 1..=1_000_000, &mut errs).unwrap_or(100);
    st.finish(&mut errs);

    let mut s = root.table("source", &mut errs);
    let source = S::parse(&mut s, &mut errs);
    s.finish(&mut errs);

    let mut t = root.table("target", &mut errs);
    let target = T::parse(&mut t, &mut errs);
    t.finish(&mut errs);

    let policy = policy(&mut root, source.as_ref(), &mut errs);
    let schedule = schedule(&mut root, &mut errs);
    let daemon = daemon(&mut root, &mut errs);
    let notify = notify::parse(&mut root, &mut errs);
    let scope = scope(&mut root, &mut errs);
    let (mapping, unique) = mapping(&mut root, &mut errs);
    let mut policy = policy;
    policy.users.unique = unique;
    policy.users.attributes = mapping.attribute_names();
    root.finish(&mut errs);
    match (source, target) {
        (Some(source), Some(target)) if errs.is_empty() => {
            Ok(Settings { state_dir, keep_runs, source, target, policy, schedule, daemon, notify, scope, mapping })
        }
        _ => Err(errs),
    }
}

/// `[mapping.users]` and `[mapping.departments]`: each expression compiled,
/// a syntax error named by its key, line and column.
fn mapping(root: &mut Reader<'_>, errs: &mut Problems) -> (crate::mapping::Mapping, Vec<MatchKey>) {
    use crate::mapping::{Builder, Field};
    let mut b = Builder::default();
    let mut m = root.table("mapping", errs);
    let mut u = m.table("users", errs);
    let unique = list_of(&mut u, "unique", &["username", "email"], errs).unwrap_or_default();
    for field in Field::ALL {
        if let Some(expr) = u.string(field.key(), errs)
            && let Err(e) = b.user(field, &expr)
        {
            u.problem(errs, field.key(), e);
        }
    }
    u.finish(errs);
    let attributes = m.entries("attributes", errs);
    let at = |name: &str| format!("mapping.attributes.{name}");
    for (name, v) in &attributes {
        let named = name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
        // orgsync's own fields' names in some target: two writers of one attribute never agree.
        const OWN: &[&str] = &[
            "id",
            "externalId",
            "userName",
            "displayName",
            "name",
            "emails",
            "phoneNumbers",
            "nickName",
            "title",
            "active",
            "employeeNumber",
            "department",
            "manager",
            "orgsync_id",
            "mobile",
            "employee_no",
            "username",
            "email",
            "enabled",
            "firstName",
            "attributes",
            "groups",
            "members",
        ];
        let result = match v {
            _ if !named => Err("is not an attribute name (a letter, then letters, digits, _ - . or :)".to_owned()),
            _ if OWN.iter().any(|o| o.eq_ignore_ascii_case(name)) => Err(format!(
                "is one of orgsync's own fields in some target ({}): map that field under [mapping.users] instead",
                OWN.join(", ")
            )),
            serde_json::Value::String(expr) => b.attribute(name, expr),
            _ => Err("expected a string (an expression)".to_owned()),
        };
        if let Err(e) = result {
            errs.push(Problem { key: at(name), message: e });
        }
    }
    let mut d = m.table("departments", errs);
    if let Some(expr) = d.string("name", errs)
        && let Err(e) = b.department_name(&expr)
    {
        d.problem(errs, "name", e);
    }
    d.finish(errs);
    m.finish(errs);
    (b.build(), unique)
}

fn policy<S: SourceSection>(root: &mut Reader<'_>, source: Option<&S>, errs: &mut Problems) -> Policy {
    let mut p = root.table("policy", errs);
    let mut u = p.table("users", errs);
    let mut du = UserPolicy::default();
    if let Some(source) = source {
        du.match_by = source.default_match_by();
    }
    let users = UserPolicy {
        target_only: u.one_of("target_only", TargetOnly::ALLOWED, errs).unwrap_or(du.target_only),
        source_only: u.one_of("source_only", SourceOnly::ALLOWED, errs).unwrap_or(du.source_only),
        match_by: list_of(&mut u, "match_by", MatchKey::ALLOWED, errs).unwrap_or(du.match_by),
        protected: u.strings("protected", errs).unwrap_or_default(),
        fields: list_of(&mut u, "fields", UserField::ALLOWED, errs).unwrap_or(du.fields),
        create_without_match_keys: u.bool("create_without_match_keys", errs).unwrap_or(du.create_without_match_keys),
        clear_when_empty: u.bool("clear_when_empty", errs).unwrap_or(du.clear_when_empty),
        delete_after: u
            .duration("delete_after", Duration::from_secs(1)..=Duration::from_secs(3650 * 86_400), errs)
            .unwrap_or(du.delete_after),
        unique: Vec::new(),
        attributes: Vec::new(),
    };
    if u.has("delete_after") && users.target_only != TargetOnly::DisableThenDelete {
        u.problem(errs, "delete_after", "applies only with target_only = \"disable_then_delete\"");
    }
    if u.has("match_by") && users.match_by.is_empty() {
        u.problem(errs, "match_by", format!("must name at least one of {}", MatchKey::ALLOWED.join(", ")));
    }
    u.finish(errs);

    let mut d = p.table("departments", errs);
    let departments = DepartmentPolicy {
        target_only: d.one_of("target_only", &["ignore", "delete"], errs).unwrap_or_default(),
        source_only: d.one_of("source_only", SourceOnly::ALLOWED, errs).unwrap_or_default(),
        protected: d.strings("protected", errs).unwrap_or_default(),
        delete_after: d.duration("delete_after", Duration::ZERO..=Duration::from_secs(3650 * 86_400), errs).unwrap_or_default(),
    };
    if d.has("delete_after") && departments.target_only != TargetOnly::Delete {
        d.problem(errs, "delete_after", "applies only with target_only = \"delete\"");
    }
    d.finish(errs);

    let mut g = p.table("guard", errs);
    let dg = Guard::default();
    let guard = Guard {
        max_deletes: g.u64("max_deletes", errs).unwrap_or(dg.max_deletes),
        max_delete_percent: g.u64("max_delete_percent", errs).unwrap_or(dg.max_delete_percent),
        max_department_deletes: g.u64("max_department_deletes", errs).unwrap_or(dg.max_department_deletes),
        max_department_delete_percent: g.u64("max_department_delete_percent", errs).unwrap_or(dg.max_department_delete_percent),
    };
    for (key, pct) in
        [("max_delete_percent", guard.max_delete_percent), ("max_department_delete_percent", guard.max_department_delete_percent)]
    {
        if pct > 100 {
            g.problem(errs, key, format!("{pct} is out of range 0..=100"));
        }
    }
    g.finish(errs);
    let retry = crate::reconcile::Retry {
        quarantine_after: p
            .u64_in("quarantine_after", 1..=100, errs)
            .map_or(crate::reconcile::Retry::default().quarantine_after, |n| n as u32),
    };
    p.finish(errs);
    Policy { users, departments, guard, retry }
}

fn daemon(root: &mut Reader<'_>, errs: &mut Problems) -> DaemonConfig {
    let mut d = root.table("daemon", errs);
    let dd = DaemonConfig::default();
    let listen = d.string("listen", errs).and_then(|s| match s.parse::<std::net::SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            d.problem(errs, "listen", format!("{s:?} is not an address like \"127.0.0.1:9464\" or \"[::1]:9464\""));
            None
        }
    });
    let listen = listen.unwrap_or(dd.listen);
    let admin_token = d.secret("admin_token", "admin_token_file", errs);
    if admin_token.as_ref().is_some_and(|t| t.expose().trim().is_empty()) {
        d.problem(errs, "admin_token_file", "the token is empty");
    }
    if !listen.ip().is_loopback() && admin_token.is_none() && !errs.iter().any(|e| e.key.starts_with("daemon.admin_token")) {
        d.problem(
            errs,
            "admin_token_file",
            format!("is required because daemon.listen ({listen}) is not a loopback address: without a token anyone who can reach it could start runs"),
        );
    }
    let log_level = d.string("log_level", errs).unwrap_or(dd.log_level);
    if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&log_level) {
        d.problem(errs, "log_level", format!("{log_level:?} is not a log filter like \"info\" or \"orgsync=debug,warn\" ({e})"));
    }
    let config = DaemonConfig {
        listen,
        admin_token,
        grace_period: d.duration("grace_period", Duration::from_secs(1)..=Duration::from_secs(3600), errs).unwrap_or(dd.grace_period),
        log_format: match d.one_of::<String>("log_format", &["text", "json"], errs).as_deref() {
            Some("json") => LogFormat::Json,
            _ => LogFormat::Text,
        },
        log_level,
        unready_after_failures: d.u64_in("unready_after_failures", 1..=1000, errs).unwrap_or(dd.unready_after_failures),
        name: d.string("name", errs).filter(|n| !n.trim().is_empty()),
        web_actions: d.bool("web_actions", errs).unwrap_or(dd.web_actions),
        web_actions_over_plain_http: d.bool("web_actions_over_plain_http", errs).unwrap_or(dd.web_actions_over_plain_http),
        public_url: if d.has("public_url") {
            d.url("public_url", &["http", "https"], "must be an http(s):// URL", "nothing secret", errs)
                .map(|u| u.as_str().trim_end_matches('/').to_owned())
        } else {
            None
        },
    };
    d.finish(errs);
    config
}

fn scope(root: &mut Reader<'_>, errs: &mut Problems) -> crate::reconcile::scope::Scope {
    let mut s = root.table("scope", errs);
    let filter = s.string("filter", errs).and_then(|f| match crate::reconcile::scope::compile(&f) {
        Ok(node) => Some((f, node)),
        Err(e) => {
            s.problem(errs, "filter", e.to_string());
            None
        }
    });
    let scope = crate::reconcile::scope::Scope {
        include_departments: s.strings("include_departments", errs).unwrap_or_default(),
        exclude_departments: s.strings("exclude_departments", errs).unwrap_or_default(),
        exclude_users: s.strings("exclude_users", errs).unwrap_or_default(),
        filter,
    };
    s.finish(errs);
    scope
}

fn schedule(root: &mut Reader<'_>, errs: &mut Problems) -> Schedule {
    let mut s = root.table("schedule", errs);
    let dflt = Schedule::default();
    let mode = s.one_of::<String>("mode", schedule::MODES, errs).unwrap_or_else(|| "manual".into());
    // Every mode-specific key is read, so one set for another mode is named.
    let every = s.duration("every", Duration::from_secs(1)..=Duration::from_secs(31 * 86_400), errs);
    let at = s.string("at", errs);
    let weekday = s.string("weekday", errs);
    let day = s.string("day", errs);
    let cron = s.string("cron", errs);
    let uses: &[(&str, bool, &[&str])] = &[
        ("every", every.is_some(), &["interval"]),
        ("at", at.is_some(), &["daily", "weekly", "monthly"]),
        ("weekday", weekday.is_some(), &["weekly"]),
        ("day", day.is_some(), &["monthly"]),
        ("cron", cron.is_some(), &["cron"]),
    ];
    for (key, set, modes) in uses {
        if *set && !modes.contains(&mode.as_str()) {
            s.problem(errs, key, format!("is only used with mode = {} (mode is {mode:?})", modes.join(" | ")));
        }
        if !*set && modes.contains(&mode.as_str()) && !errs.iter().any(|e| e.key == s.key(key)) {
            s.problem(errs, key, format!("is required with mode = {mode:?}"));
        }
    }
    let at = at.and_then(|a| {
        let parsed =
            chrono::NaiveTime::parse_from_str(a.trim(), "%H:%M").or_else(|_| chrono::NaiveTime::parse_from_str(a.trim(), "%H:%M:%S"));
        parsed.map_err(|_| s.problem(errs, "at", format!("{a:?} is not a time like \"02:30\""))).ok()
    });
    let weekday = weekday.and_then(|w| {
        w.trim()
            .parse::<chrono::Weekday>()
            .map_err(|_| s.problem(errs, "weekday", format!("{w:?} is not one of mon, tue, wed, thu, fri, sat, sun")))
            .ok()
    });
    let day = day.and_then(|d| match d.trim() {
        "last" => Some(MonthDay::Last),
        n => match n.parse::<u32>() {
            Ok(n) if (1..=28).contains(&n) => Some(MonthDay::Day(n)),
            _ => {
                s.problem(errs, "day", format!("{d:?} must be 1..=28 (every month has it) or \"last\""));
                None
            }
        },
    });
    let cron = cron.and_then(|c| cron_key(&s, errs, c));
    let mode = match (mode.as_str(), every, at, weekday, day, cron) {
        ("interval", Some(every), ..) => Mode::Interval { every },
        ("daily", _, Some(at), ..) => Mode::Daily { at },
        ("weekly", _, Some(at), Some(weekday), ..) => Mode::Weekly { weekday, at },
        ("monthly", _, Some(at), _, Some(day), _) => Mode::Monthly { day, at },
        ("cron", .., Some((expr, cron))) => Mode::Cron { expr, cron: Box::new(cron) },
        _ => Mode::Manual,
    };
    let timezone = s.string("timezone", errs).and_then(|z| {
        z.trim()
            .parse::<chrono_tz::Tz>()
            .map_err(|_| s.problem(errs, "timezone", format!("{z:?} is not an IANA time zone like \"Europe/Berlin\" or \"Asia/Shanghai\"")))
            .ok()
    });
    let schedule = Schedule {
        mode,
        timezone,
        run_on_start: s.bool("run_on_start", errs).unwrap_or(dflt.run_on_start),
        jitter: s.duration("jitter", Duration::ZERO..=Duration::from_secs(86_400), errs).unwrap_or(dflt.jitter),
    };
    // Keys that would do nothing in this mode are mistakes worth naming.
    if schedule.timezone.is_some() && matches!(mode_name(&schedule.mode, errs, &s), "manual" | "interval") {
        s.problem(
            errs,
            "timezone",
            "does nothing with mode = \"manual\" or \"interval\" (it places times of day: daily, weekly, monthly, cron)",
        );
    }
    match &schedule.mode {
        Mode::Manual if !schedule.jitter.is_zero() && mode_name(&schedule.mode, errs, &s) == "manual" => {
            s.problem(errs, "jitter", "does nothing with mode = \"manual\" (it delays scheduled runs)");
        }
        Mode::Interval { every } if schedule.jitter >= *every => {
            s.problem(errs, "jitter", format!("{} is not shorter than every = {}", reader::plain(schedule.jitter), reader::plain(*every)))
        }
        _ => {}
    }
    s.finish(errs);
    schedule
}

/// `schedule.cron`: six fields, parsed by croner.
fn cron_key(s: &Reader<'_>, errs: &mut Problems, c: String) -> Option<(String, croner::Cron)> {
    match schedule::parse_cron(c.trim()) {
        // croner takes a seventh field (years); the documented form has six.
        Ok(_) if c.split_whitespace().count() != 6 => {
            s.problem(
                errs,
                "cron",
                format!(
                    "{c:?} has {} fields; write six, like \"0 30 2 * * *\" (sec min hour day month weekday)",
                    c.split_whitespace().count()
                ),
            );
            None
        }
        Ok(parsed) => Some((c, parsed)),
        Err(e) => {
            s.problem(errs, "cron", format!("{c:?} is not a cron expression with six fields, like \"0 30 2 * * *\" ({e})"));
            None
        }
    }
}

/// The mode's name as configured (`Manual` also stands for a mode whose keys
/// were wrong: then nothing more is said of it).
fn mode_name(mode: &Mode, errs: &Problems, s: &Reader<'_>) -> &'static str {
    match mode {
        Mode::Manual if errs.iter().any(|e| e.key.starts_with(&s.key(""))) => "invalid",
        Mode::Manual => "manual",
        Mode::Interval { .. } => "interval",
        _ => "timed",
    }
}

fn list_of<T: std::str::FromStr>(r: &mut Reader<'_>, k: &'static str, allowed: &[&str], errs: &mut Problems) -> Option<Vec<T>> {
    let items = r.strings(k, errs)?;
    let mut out = Vec::new();
    for (i, s) in items.iter().enumerate() {
        match s.parse() {
            Ok(v) if allowed.contains(&s.as_str()) => out.push(v),
            _ => errs.push(Problem { key: format!("{}[{i}]", r.key(k)), message: format!("{s:?} is not one of {}", allowed.join(", ")) }),
        }
    }
    Some(out)
}
