//! Configuration: load (TOML file + `ORGSYNC__SECTION__KEY` environment
//! overrides) -> one merged tree -> pure validation that reports every
//! problem at once, each with its key path -> typed [`Config`].
//!
//! Relative paths in the file are resolved against the config file's directory.

mod reader;
pub mod secret;

pub use reader::Problem;
pub use secret::Secret;

use crate::reconcile::{
    DepartmentPolicy, Guard, MatchKey, Policy, SourceOnly, TargetOnly, UserField, UserPolicy,
};
use reader::{Problems, Reader};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_PATH: &str = "/etc/orgsync/orgsync.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: PathBuf, #[source] source: std::io::Error },
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
}

/// `[source]`: `kind` selects the source; the other keys depend on it.
#[derive(Clone, Debug)]
pub enum SourceConfig {
    /// `kind = "file"`: a JSON document of departments and users.
    File {
        /// `path`: the JSON file (required).
        path: PathBuf,
    },
}

impl SourceConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::File { .. } => "file",
        }
    }
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

const SOURCE_KINDS: &[&str] = &["file"];
const TARGET_KINDS: &[&str] = &["scim", "file"];

/// Read and validate the config at `path`, with environment overrides.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let tree = load_tree(path, std::env::vars())?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    validate(&tree, &base).map_err(|problems| ConfigError::Invalid { path: path.to_owned(), problems })
}

/// Merge the file and the `ORGSYNC__*` variables into one tree.
pub fn load_tree(
    path: &Path,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<serde_json::Map<String, serde_json::Value>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    let env: config::Map<String, String> = env.into_iter().filter(|(k, _)| k.starts_with("ORGSYNC__")).collect();
    let merged = config::Config::builder()
        .add_source(config::File::from_str(&text, config::FileFormat::Toml))
        .add_source(
            config::Environment::with_prefix("ORGSYNC")
                .prefix_separator("__")
                .separator("__")
                .source(Some(env)),
        )
        .build()
        .map_err(|e| ConfigError::Parse { path: path.to_owned(), message: e.to_string() })?;
    merged
        .try_deserialize::<serde_json::Map<String, serde_json::Value>>()
        .map_err(|e| ConfigError::Parse { path: path.to_owned(), message: e.to_string() })
}

/// Pure validation of a merged tree: every problem at once.
pub fn validate(tree: &serde_json::Map<String, serde_json::Value>, base: &Path) -> Result<Config, Vec<Problem>> {
    let mut errs: Problems = Vec::new();
    let mut root = Reader::root(tree, base);
    let state_dir = root.path("state_dir", &mut errs).unwrap_or_else(|| PathBuf::from("/var/lib/orgsync"));

    let mut s = root.table("source", &mut errs);
    let source = match s.one_of::<String>("kind", SOURCE_KINDS, &mut errs).as_deref() {
        Some("file") => s.path("path", &mut errs).map(|path| SourceConfig::File { path }).or_else(|| {
            s.problem(&mut errs, "path", "is required for source kind \"file\"");
            None
        }),
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

    let policy = policy(&mut root, &mut errs);
    root.finish(&mut errs);
    match (source, target) {
        (Some(source), Some(target)) if errs.is_empty() => Ok(Config { state_dir, source, target, policy }),
        _ => Err(errs),
    }
}

fn scim(t: &mut Reader<'_>, errs: &mut Problems) -> Option<TargetConfig> {
    let base_url = t.required_string("base_url", errs).and_then(|u| match url::Url::parse(&u) {
        // Credentials in the URL would be printed with every transport error.
        Ok(url) if !url.username().is_empty() || url.password().is_some() => {
            t.problem(errs, "base_url", "must not contain credentials: use username + password_file, or token_file");
            None
        }
        Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url),
        Ok(_) => {
            t.problem(errs, "base_url", format!("{u:?} must be an http:// or https:// URL"));
            None
        }
        Err(e) => {
            t.problem(errs, "base_url", format!("{u:?} is not a URL ({e})"));
            None
        }
    });
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
    let timeout = t.duration("timeout", errs).unwrap_or(Duration::from_secs(30));
    let concurrency = t.u64("concurrency", errs).unwrap_or(8);
    if !(1..=256).contains(&concurrency) {
        t.problem(errs, "concurrency", format!("{concurrency} is out of range 1..=256"));
    }
    let max_retries = t.u64("max_retries", errs).unwrap_or(5);
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

fn policy(root: &mut Reader<'_>, errs: &mut Problems) -> Policy {
    let mut p = root.table("policy", errs);
    let mut u = p.table("users", errs);
    let du = UserPolicy::default();
    let users = UserPolicy {
        target_only: u.one_of("target_only", TargetOnly::ALLOWED, errs).unwrap_or(du.target_only),
        source_only: u.one_of("source_only", SourceOnly::ALLOWED, errs).unwrap_or(du.source_only),
        match_by: list_of(&mut u, "match_by", MatchKey::ALLOWED, errs).unwrap_or(du.match_by),
        protected: u.strings("protected", errs).unwrap_or_default(),
        fields: list_of(&mut u, "fields", UserField::ALLOWED, errs).unwrap_or(du.fields),
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

fn list_of<T: std::str::FromStr>(
    r: &mut Reader<'_>,
    k: &'static str,
    allowed: &[&str],
    errs: &mut Problems,
) -> Option<Vec<T>> {
    let items = r.strings(k, errs)?;
    let mut out = Vec::new();
    for (i, s) in items.iter().enumerate() {
        match s.parse() {
            Ok(v) if allowed.contains(&s.as_str()) => out.push(v),
            _ => errs.push(Problem {
                key: format!("{}[{i}]", r.key(k)),
                message: format!("{s:?} is not one of {}", allowed.join(", ")),
            }),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests;
