//! Configuration: load (TOML file + `ORGSYNC__SECTION__KEY` environment
//! overrides) -> one merged tree -> pure validation that reports every
//! problem at once, each with its key path -> typed [`Config`].
//!
//! Relative paths in the file are resolved against the config file's directory.

mod reader;
pub mod secret;

pub use reader::Problem;
pub use secret::Secret;

use crate::reconcile::{DepartmentPolicy, Guard, MatchKey, Policy, SourceOnly, TargetOnly, UserField, UserPolicy};
use crate::schedule::{self, Mode, MonthDay, Schedule};
use reader::{Problems, Reader};
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

/// The whole, validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the mirror (`mirror.db`) and the lock live. Default `/var/lib/orgsync`.
    pub state_dir: PathBuf,
    /// The one identity source (`[source]`).
    pub source: SourceConfig,
    /// The target system (`[target]`).
    pub target: TargetConfig,
    /// Discrepancy policies and the deletion guard (`[policy]`).
    pub policy: Policy,
    /// When `orgsync run` syncs (`[schedule]`). Default: manual, one run at start.
    pub schedule: Schedule,
    /// The service itself (`[daemon]`).
    pub daemon: DaemonConfig,
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
    /// `admin_token` / `admin_token_file`: bearer token for `POST /sync`; required when `listen` is not loopback.
    pub admin_token: Option<Secret>,
    /// `grace_period`: on SIGTERM, how long in-flight operations may take to finish. Default `30s`.
    pub grace_period: Duration,
    /// `log_format`: `text` (default) or `json`.
    pub log_format: LogFormat,
    /// `log_level`: a tracing filter such as `info` or `orgsync=debug`; `RUST_LOG` overrides it. Default `info`.
    pub log_level: String,
    /// `unready_after_failures`: `/readyz` fails after this many failed runs in a row. Default 3.
    pub unready_after_failures: u64,
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
        }
    }
}

/// `[source]`: `kind` selects the source; the other keys depend on it.
#[derive(Clone, Debug)]
pub enum SourceConfig {
    /// `kind = "file"`: a JSON document of departments and users.
    File {
        /// `path`: the JSON file (required).
        path: PathBuf,
    },
    /// `kind = "ldap"`: OpenLDAP or Active Directory.
    Ldap(Box<LdapConfig>),
    /// `kind = "feishu"` or `"lark"`: contact v3.
    Feishu(Box<crate::source::feishu::FeishuConfig>),
    /// `kind = "dingtalk"`: the oapi contact APIs.
    DingTalk(Box<crate::source::dingtalk::DingTalkConfig>),
    /// `kind = "wecom"`: the contact APIs with the Contact Sync secret.
    WeCom(Box<crate::source::wecom::WeComConfig>),
}

impl SourceConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::File { .. } => "file",
            SourceConfig::Ldap(_) => "ldap",
            SourceConfig::Feishu(c) if c.vendor == "Lark" => "lark",
            SourceConfig::Feishu(_) => "feishu",
            SourceConfig::DingTalk(_) => "dingtalk",
            SourceConfig::WeCom(_) => "wecom",
        }
    }
}

/// `kind = "ldap"`.
#[derive(Clone, Debug)]
pub struct LdapConfig {
    /// `url`: `ldap://host:389` or `ldaps://host:636` (required).
    pub url: url::Url,
    /// `starttls`: upgrade an `ldap://` connection with StartTLS. Default false.
    pub starttls: bool,
    /// `ca_file`: PEM CA certificates to trust; default the system's roots.
    pub ca_file: Option<PathBuf>,
    /// `tls_insecure`: skip certificate checks (logged as a warning every run). Default false.
    pub tls_insecure: bool,
    /// `bind_dn`; anonymous when absent.
    pub bind_dn: Option<String>,
    /// `bind_password` / `bind_password_file`.
    pub bind_password: Option<Secret>,
    /// `base_dn`: where users and OUs are searched (required).
    pub base_dn: String,
    /// `user_filter`: default per flavor.
    pub user_filter: String,
    /// `page_size`: paged-results page size. Default 500 (AD caps pages at 1000).
    pub page_size: u32,
    /// `timeout`: connect and per-operation. Default `30s`.
    pub timeout: Duration,
    /// `flavor`: `openldap` (default), `active_directory` or `389ds`.
    pub flavor: crate::source::ldap::Flavor,
    /// `[source.attributes]`: user field -> LDAP attribute; defaults per flavor.
    pub attributes: crate::source::ldap::Attributes,
    /// `departments.from`: `ou_tree` (default), `attribute` (with
    /// `departments.attribute`) or `groups` (with optional `departments.base_dn`
    /// and `departments.filter`).
    pub departments: crate::source::ldap::Departments,
}

/// `[target]`: `kind` selects the target.
#[derive(Clone, Debug)]
pub enum TargetConfig {
    Scim(ScimConfig),
    /// `kind = "file"`: the target directory as one JSON document.
    File {
        /// `path`: the JSON file written after each run (required).
        path: PathBuf,
    },
}

impl TargetConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            TargetConfig::Scim(_) => "scim",
            TargetConfig::File { .. } => "file",
        }
    }
}

/// How orgsync authenticates to a SCIM service.
#[derive(Clone, Debug)]
pub enum ScimAuth {
    /// `token` / `token_file`: `Authorization: Bearer ...`.
    Bearer(Secret),
    /// `username` + `password` / `password_file`: HTTP basic auth.
    Basic { username: String, password: Secret },
    /// Neither given (only for services that need no auth).
    None,
}

/// `kind = "scim"`.
#[derive(Clone, Debug)]
pub struct ScimConfig {
    /// `base_url`: the SCIM base, e.g. `https://idp.example.com/scim/v2` (required).
    pub base_url: url::Url,
    pub auth: ScimAuth,
    /// `timeout`: per request. Default `30s`.
    pub timeout: Duration,
    /// `concurrency`: requests in flight at once. Default 8.
    pub concurrency: usize,
    /// `max_retries`: retries of a transient failure (timeout, 429, 5xx). Default 5.
    pub max_retries: usize,
    /// `page_size`: `count` per list request. Default 100.
    pub page_size: usize,
}

/// Every timeout: per request or operation.
const TIMEOUTS: std::ops::RangeInclusive<Duration> = Duration::from_secs(1)..=Duration::from_secs(600);
/// Every `max_retries`: beyond 20, backoff has long reached its cap.
const RETRIES: std::ops::RangeInclusive<u64> = 0..=20;

const SOURCE_KINDS: &[&str] = &["file", "ldap", "feishu", "lark", "dingtalk", "wecom"];
const TARGET_KINDS: &[&str] = &["scim", "file"];

/// Read and validate the config at `path`, with environment overrides.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let tree = load_tree(path, std::env::vars())?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let invalid = |problems| ConfigError::Invalid { path: path.to_owned(), problems: blame_env(problems, std::env::vars()) };
    validate_with(&tree, &base, credentials.as_deref()).map_err(invalid)
}

/// What `check-config` checks beyond the text: the input files it names
/// exist (the other commands meet them only when a run reads them).
pub fn preflight(config: &Config) -> Vec<Problem> {
    let mut problems = Vec::new();
    if let SourceConfig::File { path } = &config.source
        && !path.is_file()
    {
        problems.push(Problem { key: "source.path".into(), message: format!("{} is not a readable file", path.display()) });
    }
    problems
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
    merge(&env).map_err(|e| {
        // The file alone is valid TOML: the environment is at fault. Name
        // the variables that break it (not their values: they may be secrets).
        let culprits: Vec<&str> = env.iter().filter(|v| merge(std::slice::from_ref(*v)).is_err()).map(|(k, _)| k.as_str()).collect();
        let message = if culprits.is_empty() {
            format!(
                "the environment overrides ({}) do not fit the file's structure: {e}",
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
pub fn validate(tree: &serde_json::Map<String, serde_json::Value>, base: &Path) -> Result<Config, Vec<Problem>> {
    validate_with(tree, base, None)
}

/// [`validate`], with relative `*_file` secrets read from `credentials`
/// (`$CREDENTIALS_DIRECTORY`, where systemd puts them) when given.
pub fn validate_with(
    tree: &serde_json::Map<String, serde_json::Value>,
    base: &Path,
    credentials: Option<&Path>,
) -> Result<Config, Vec<Problem>> {
    let mut errs: Problems = Vec::new();
    let mut root = Reader::root(tree, base, credentials);
    let state_dir = root.path("state_dir", &mut errs).unwrap_or_else(|| PathBuf::from("/var/lib/orgsync"));

    let mut s = root.table("source", &mut errs);
    let source = match s.one_of::<String>("kind", SOURCE_KINDS, &mut errs).as_deref() {
        Some("file") => s.path("path", &mut errs).map(|path| SourceConfig::File { path }).or_else(|| {
            s.problem(&mut errs, "path", "is required for source kind \"file\"");
            None
        }),
        Some("ldap") => ldap(&mut s, &mut errs),
        Some("feishu") => feishu(&mut s, "Feishu", crate::source::feishu::FEISHU_BASE, &mut errs),
        Some("lark") => feishu(&mut s, "Lark", crate::source::feishu::LARK_BASE, &mut errs),
        Some("dingtalk") => dingtalk(&mut s, &mut errs),
        Some("wecom") => wecom(&mut s, &mut errs),
        None if !s.has("kind") => {
            s.problem(&mut errs, "kind", format!("is required (one of {})", SOURCE_KINDS.join(", ")));
            None
        }
        _ => None,
    };
    s.finish(&mut errs);

    let mut t = root.table("target", &mut errs);
    let target = match t.one_of::<String>("kind", TARGET_KINDS, &mut errs).as_deref() {
        Some("file") => t.path("path", &mut errs).map(|path| TargetConfig::File { path }).or_else(|| {
            t.problem(&mut errs, "path", "is required for target kind \"file\"");
            None
        }),
        Some("scim") => scim(&mut t, &mut errs),
        None if !t.has("kind") => {
            t.problem(&mut errs, "kind", format!("is required (one of {})", TARGET_KINDS.join(", ")));
            None
        }
        _ => None,
    };
    t.finish(&mut errs);

    let policy = policy(&mut root, source.as_ref(), &mut errs);
    let schedule = schedule(&mut root, &mut errs);
    let daemon = daemon(&mut root, &mut errs);
    root.finish(&mut errs);
    match (source, target) {
        (Some(source), Some(target)) if errs.is_empty() => Ok(Config { state_dir, source, target, policy, schedule, daemon }),
        _ => Err(errs),
    }
}

/// The HTTP keys every SaaS source shares: `base_url`, `timeout`,
/// `rate_limit` (requests per second, at most `max_rate`), `max_retries`.
fn http_settings(
    s: &mut Reader<'_>,
    default_base: &str,
    default_rate: u32,
    max_rate: u32,
    errs: &mut Problems,
) -> crate::source::saas::HttpSettings {
    let base_url = if s.has("base_url") {
        s.url("base_url", &["https", "http"], "must be http(s)://host[:port]", "the source's secret keys", errs).map(|u| u.to_string())
    } else {
        None
    };
    let rate = s.u64("rate_limit", errs).unwrap_or(u64::from(default_rate));
    if !(1..=u64::from(max_rate)).contains(&rate) {
        s.problem(errs, "rate_limit", format!("{rate} is out of range 1..={max_rate} requests per second (the vendor's documented limit)"));
    }
    crate::source::saas::HttpSettings {
        base_url: base_url.unwrap_or_else(|| default_base.to_owned()),
        timeout: s.duration("timeout", TIMEOUTS, errs).unwrap_or(Duration::from_secs(30)),
        rate_limit: rate.clamp(1, u64::from(max_rate)) as u32,
        max_retries: s.u64_in("max_retries", RETRIES, errs).unwrap_or(5) as usize,
        token_margin: Duration::from_secs(300),
    }
}

/// `concurrency`: departments read at once (default 4, at most 32).
fn concurrency(s: &mut Reader<'_>, errs: &mut Problems) -> usize {
    let concurrency = s.u64("concurrency", errs).unwrap_or(4);
    if !(1..=32).contains(&concurrency) {
        s.problem(errs, "concurrency", format!("{concurrency} is out of range 1..=32"));
    }
    concurrency.clamp(1, 32) as usize
}

/// A secret that must be given inline as `k` or in the file `k_file`.
fn required_secret(s: &mut Reader<'_>, k: &'static str, k_file: &'static str, errs: &mut Problems) -> Option<Secret> {
    let secret = s.secret(k, k_file, errs);
    if secret.is_none() && !errs.iter().any(|e| e.key.starts_with(&s.key(k))) {
        s.problem(errs, k, format!("is required (or {k_file})"));
    }
    secret
}

fn feishu(s: &mut Reader<'_>, vendor: &'static str, default_base: &str, errs: &mut Problems) -> Option<SourceConfig> {
    let http = http_settings(s, default_base, 20, 50, errs);
    let concurrency = concurrency(s, errs);
    let department_id_type = s
        .one_of::<String>("department_id_type", &["open_department_id", "department_id"], errs)
        .unwrap_or_else(|| "open_department_id".into());
    let user_id_type = s.one_of::<String>("user_id_type", &["union_id", "open_id", "user_id"], errs).unwrap_or_else(|| "union_id".into());
    let roots = s.strings("roots", errs).unwrap_or_else(|| vec!["0".into()]);
    if roots.is_empty() {
        s.problem(errs, "roots", "is empty: list department ids, or leave it out for the whole tenant (\"0\")");
    }
    let app_id = s.required_string("app_id", errs);
    let app_secret = required_secret(s, "app_secret", "app_secret_file", errs);
    Some(SourceConfig::Feishu(Box::new(crate::source::feishu::FeishuConfig {
        vendor,
        app_id: app_id?,
        app_secret: app_secret?,
        http,
        roots,
        department_id_type,
        user_id_type,
        concurrency,
    })))
}

/// Department ids to read from (`roots`, default `[1]`, the whole organisation).
fn integer_roots(s: &mut Reader<'_>, errs: &mut Problems) -> Vec<i64> {
    let roots = s.integers("roots", errs).unwrap_or_else(|| vec![1]);
    if roots.is_empty() {
        s.problem(errs, "roots", "is empty: list department ids, or leave it out for the whole organisation (1)");
    }
    roots
}

fn dingtalk(s: &mut Reader<'_>, errs: &mut Problems) -> Option<SourceConfig> {
    // DingTalk documents 20 requests per second for internal apps.
    let http = http_settings(s, crate::source::dingtalk::DINGTALK_BASE, 15, 20, errs);
    let concurrency = concurrency(s, errs);
    let roots = integer_roots(s, errs);
    let user_id_type = s.one_of::<String>("user_id_type", &["userid", "unionid"], errs).unwrap_or_else(|| "userid".into());
    let agent_id = s.string("agent_id", errs);
    let app_key = s.required_string("app_key", errs);
    let app_secret = required_secret(s, "app_secret", "app_secret_file", errs);
    Some(SourceConfig::DingTalk(Box::new(crate::source::dingtalk::DingTalkConfig {
        app_key: app_key?,
        app_secret: app_secret?,
        agent_id,
        http,
        roots,
        user_id_type,
        concurrency,
    })))
}

fn wecom(s: &mut Reader<'_>, errs: &mut Problems) -> Option<SourceConfig> {
    use crate::source::wecom::{Api, WECOM_BASE, WeComConfig};
    // WeCom allows 10,000 calls a minute per API (about 166/s); stay far under.
    let http = http_settings(s, WECOM_BASE, 50, 150, errs);
    let concurrency = concurrency(s, errs);
    let roots = integer_roots(s, errs);
    let api = s.one_of::<Api>("api", &["simplelist", "list"], errs).unwrap_or(Api::Simplelist);
    let page_size = s.u64("page_size", errs).unwrap_or(10_000);
    if !(1..=10_000).contains(&page_size) {
        s.problem(errs, "page_size", format!("{page_size} is out of range 1..=10000 (user/list_id's limit)"));
    }
    let corp_id = s.required_string("corp_id", errs);
    let corp_secret = required_secret(s, "corp_secret", "corp_secret_file", errs);
    Some(SourceConfig::WeCom(Box::new(WeComConfig {
        corp_id: corp_id?,
        corp_secret: corp_secret?,
        http,
        api,
        roots,
        page_size: page_size.clamp(1, 10_000) as u32,
        concurrency,
    })))
}

fn ldap(s: &mut Reader<'_>, errs: &mut Problems) -> Option<SourceConfig> {
    use crate::source::ldap::{Departments, Flavor};
    let url = s.url("url", &["ldap", "ldaps"], "must be ldap://host[:port] or ldaps://host[:port]", "bind_dn + bind_password_file", errs);
    let starttls = s.bool("starttls", errs).unwrap_or(false);
    if starttls && url.as_ref().is_some_and(|u| u.scheme() == "ldaps") {
        s.problem(errs, "starttls", "is for ldap:// URLs; ldaps:// is TLS from the start");
    }
    let flavor = match s.one_of::<String>("flavor", &["openldap", "active_directory", "389ds"], errs).as_deref() {
        Some("active_directory") => Flavor::ActiveDirectory,
        Some("389ds") => Flavor::Ds389,
        _ => Flavor::OpenLdap,
    };
    let mut a = s.table("attributes", errs);
    let d = flavor.default_attributes();
    let attributes = crate::source::ldap::Attributes {
        username: a.string("username", errs).unwrap_or(d.username),
        name: a.string("name", errs).unwrap_or(d.name),
        email: a.string("email", errs).unwrap_or(d.email),
        mobile: a.string("mobile", errs).unwrap_or(d.mobile),
        employee_no: a.string("employee_no", errs).unwrap_or(d.employee_no),
        nickname: a.string("nickname", errs).unwrap_or(d.nickname),
        title: a.string("title", errs).unwrap_or(d.title),
    };
    a.finish(errs);
    let mut dp = s.table("departments", errs);
    let from = dp.one_of::<String>("from", &["ou_tree", "attribute", "groups"], errs);
    let attribute = dp.string("attribute", errs);
    let group_base = dp.string("base_dn", errs);
    let group_filter = dp.string("filter", errs);
    let from = from.as_deref().unwrap_or("ou_tree");
    if from != "attribute" && attribute.is_some() {
        dp.problem(errs, "attribute", "is only used with from = \"attribute\"");
    }
    for (key, set) in [("base_dn", group_base.is_some()), ("filter", group_filter.is_some())] {
        if from != "groups" && set {
            dp.problem(errs, key, "is only used with from = \"groups\"");
        }
    }
    let departments = match (from, attribute) {
        ("attribute", Some(a)) => Departments::Attribute(a),
        ("attribute", None) => {
            dp.problem(errs, "attribute", "is required with from = \"attribute\"");
            Departments::OuTree
        }
        ("groups", _) => {
            Departments::Groups { base_dn: group_base, filter: group_filter.unwrap_or_else(|| flavor.default_group_filter().to_owned()) }
        }
        _ => Departments::OuTree,
    };
    dp.finish(errs);
    let page_size = s.u64("page_size", errs).unwrap_or(500);
    if !(1..=1000).contains(&page_size) {
        s.problem(errs, "page_size", format!("{page_size} is out of range 1..=1000 (Active Directory caps pages at 1000)"));
    }
    let bind_dn = s.string("bind_dn", errs);
    let bind_password = s.secret("bind_password", "bind_password_file", errs);
    if bind_dn.is_some() != bind_password.is_some() && !errs.iter().any(|e| e.key.starts_with(&s.key("bind_password"))) {
        s.problem(
            errs,
            "bind_password",
            "bind_dn and bind_password (or bind_password_file) go together; leave both out for an anonymous bind",
        );
    }
    let config = LdapConfig {
        starttls,
        ca_file: s.path("ca_file", errs),
        tls_insecure: s.bool("tls_insecure", errs).unwrap_or(false),
        bind_dn,
        bind_password,
        base_dn: s.required_string("base_dn", errs).unwrap_or_default(),
        user_filter: s.string("user_filter", errs).unwrap_or_else(|| flavor.default_user_filter().to_owned()),
        page_size: page_size as u32,
        timeout: s.duration("timeout", TIMEOUTS, errs).unwrap_or(Duration::from_secs(30)),
        flavor,
        attributes,
        departments,
        url: url?,
    };
    Some(SourceConfig::Ldap(Box::new(config)))
}

fn scim(t: &mut Reader<'_>, errs: &mut Problems) -> Option<TargetConfig> {
    let base_url =
        t.url("base_url", &["http", "https"], "must be an http:// or https:// URL", "username + password_file, or token_file", errs);
    let token = t.secret("token", "token_file", errs);
    let username = t.string("username", errs);
    let password = t.secret("password", "password_file", errs);
    let auth = match (token, username, password) {
        (Some(tok), None, None) => ScimAuth::Bearer(tok),
        (None, Some(username), Some(password)) => ScimAuth::Basic { username, password },
        (None, None, None) => ScimAuth::None,
        (Some(_), _, _) => {
            t.problem(errs, "token", "use either token or username + password, not both");
            ScimAuth::None
        }
        (None, _, _) => {
            t.problem(errs, "password", "basic auth needs both username and password (or password_file)");
            ScimAuth::None
        }
    };
    let timeout = t.duration("timeout", TIMEOUTS, errs).unwrap_or(Duration::from_secs(30));
    let concurrency = t.u64("concurrency", errs).unwrap_or(8);
    if !(1..=256).contains(&concurrency) {
        t.problem(errs, "concurrency", format!("{concurrency} is out of range 1..=256"));
    }
    let max_retries = t.u64_in("max_retries", RETRIES, errs).unwrap_or(5);
    let page_size = t.u64("page_size", errs).unwrap_or(100);
    if !(1..=1000).contains(&page_size) {
        t.problem(errs, "page_size", format!("{page_size} is out of range 1..=1000"));
    }
    Some(TargetConfig::Scim(ScimConfig {
        base_url: base_url?,
        auth,
        timeout,
        concurrency: concurrency as usize,
        max_retries: max_retries as usize,
        page_size: page_size as usize,
    }))
}

fn policy(root: &mut Reader<'_>, source: Option<&SourceConfig>, errs: &mut Problems) -> Policy {
    let mut p = root.table("policy", errs);
    let mut u = p.table("users", errs);
    let mut du = UserPolicy::default();
    // WeCom apps created since 2022-06-20 receive neither email nor mobile:
    // match on the userid, which WeCom always returns.
    if matches!(source, Some(SourceConfig::WeCom(_))) {
        du.match_by = vec![MatchKey::Username];
    }
    let users = UserPolicy {
        target_only: u.one_of("target_only", TargetOnly::ALLOWED, errs).unwrap_or(du.target_only),
        source_only: u.one_of("source_only", SourceOnly::ALLOWED, errs).unwrap_or(du.source_only),
        match_by: list_of(&mut u, "match_by", MatchKey::ALLOWED, errs).unwrap_or(du.match_by),
        protected: u.strings("protected", errs).unwrap_or_default(),
        fields: list_of(&mut u, "fields", UserField::ALLOWED, errs).unwrap_or(du.fields),
        create_without_match_keys: u.bool("create_without_match_keys", errs).unwrap_or(du.create_without_match_keys),
        clear_when_empty: u.bool("clear_when_empty", errs).unwrap_or(du.clear_when_empty),
    };
    if u.has("match_by") && users.match_by.is_empty() {
        u.problem(errs, "match_by", format!("must name at least one of {}", MatchKey::ALLOWED.join(", ")));
    }
    u.finish(errs);

    let mut d = p.table("departments", errs);
    let departments = DepartmentPolicy {
        target_only: d.one_of("target_only", &["ignore", "delete"], errs).unwrap_or_default(),
        source_only: d.one_of("source_only", SourceOnly::ALLOWED, errs).unwrap_or_default(),
        protected: d.strings("protected", errs).unwrap_or_default(),
    };
    d.finish(errs);

    let mut g = p.table("guard", errs);
    let dg = Guard::default();
    let guard = Guard {
        max_deletes: g.u64("max_deletes", errs).unwrap_or(dg.max_deletes),
        max_delete_percent: g.u64("max_delete_percent", errs).unwrap_or(dg.max_delete_percent),
    };
    if guard.max_delete_percent > 100 {
        g.problem(errs, "max_delete_percent", format!("{} is out of range 0..=100", guard.max_delete_percent));
    }
    g.finish(errs);
    p.finish(errs);
    Policy { users, departments, guard }
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
    };
    d.finish(errs);
    config
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
    let cron = cron.and_then(|c| match schedule::parse_cron(c.trim()) {
        Ok(parsed) => Some((c, parsed)),
        Err(e) => {
            s.problem(errs, "cron", format!("{c:?} is not a cron expression with six fields, like \"0 30 2 * * *\" ({e})"));
            None
        }
    });
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
    s.finish(errs);
    schedule
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

#[cfg(test)]
mod tests;
