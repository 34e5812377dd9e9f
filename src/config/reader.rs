//! A small validating reader over the merged config tree: every lookup
//! records the key as known, every problem is collected with its full key
//! path, and `finish` reports the keys nobody asked for.

use super::secret::Secret;
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One thing wrong with the config, named by its key path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

#[derive(Debug)]
pub struct Reader<'a> {
    prefix: String,
    map: Option<&'a Map<String, Value>>,
    /// Values used where `map` has none (a preset); never reported unknown.
    defaults: Option<&'a Map<String, Value>>,
    used: BTreeSet<&'static str>,
    /// Directory that relative paths are resolved against (the config file's).
    base: &'a Path,
    /// `$CREDENTIALS_DIRECTORY`: where relative `*_file` secrets are, when set.
    credentials: Option<&'a Path>,
    /// Keys (`policy.users.protected`) set by an `ORGSYNC__…` variable:
    /// there a list is written comma-separated; in the file it is a list.
    from_env: Option<&'a BTreeSet<String>>,
}

pub type Problems = Vec<Problem>;

impl<'a> Reader<'a> {
    pub fn root(map: &'a Map<String, Value>, base: &'a Path, credentials: Option<&'a Path>) -> Self {
        Self { prefix: String::new(), map: Some(map), defaults: None, used: BTreeSet::new(), base, credentials, from_env: None }
    }

    /// The same root, knowing which keys the environment set.
    pub fn with_env_keys(mut self, keys: &'a BTreeSet<String>) -> Self {
        self.from_env = Some(keys);
        self
    }

    /// The same table with `defaults` under it (a preset): a key the config
    /// does not give is read from them, sub-tables included.
    pub fn with_defaults(mut self, defaults: &'a Map<String, Value>) -> Self {
        self.defaults = Some(defaults);
        self
    }

    /// [`Reader::with_defaults`] in place.
    pub fn set_defaults(&mut self, defaults: &'a Map<String, Value>) {
        self.defaults = Some(defaults);
    }

    /// Every key of table `k` with its value, the config's over the
    /// defaults' (for tables of free-form keys: headers, query, params).
    pub fn entries(&mut self, k: &'static str, errs: &mut Problems) -> Vec<(String, Value)> {
        self.used.insert(k);
        let mut out: Vec<(String, Value)> = Vec::new();
        for m in [self.defaults.and_then(|d| d.get(k)), self.map.and_then(|m| m.get(k))].into_iter().flatten() {
            match m {
                Value::Object(m) => {
                    for (key, v) in m {
                        out.retain(|(o, _)| o != key);
                        out.push((key.clone(), v.clone()));
                    }
                }
                other => errs.push(Problem { key: self.key(k), message: format!("expected a table, found {}", kind(other)) }),
            }
        }
        out
    }

    pub fn key(&self, k: &str) -> String {
        if self.prefix.is_empty() { k.to_owned() } else { format!("{}.{k}", self.prefix) }
    }

    pub fn problem(&self, errs: &mut Problems, k: &str, message: impl Into<String>) {
        errs.push(Problem { key: self.key(k), message: message.into() });
    }

    fn raw(&mut self, k: &'static str) -> Option<&'a Value> {
        self.used.insert(k);
        self.map.and_then(|m| m.get(k)).or_else(|| self.defaults.and_then(|d| d.get(k)))
    }

    pub fn has(&self, k: &str) -> bool {
        self.map.is_some_and(|m| m.contains_key(k)) || self.defaults.is_some_and(|d| d.contains_key(k))
    }

    /// A sub-table; absent means empty.
    pub fn table(&mut self, k: &'static str, errs: &mut Problems) -> Reader<'a> {
        let prefix = self.key(k);
        self.used.insert(k);
        let map = match self.map.and_then(|m| m.get(k)) {
            None => None,
            Some(Value::Object(m)) => Some(m),
            Some(other) => {
                errs.push(Problem { key: prefix.clone(), message: format!("expected a table, found {}", kind(other)) });
                None
            }
        };
        let defaults = match self.defaults.and_then(|d| d.get(k)) {
            Some(Value::Object(m)) => Some(m),
            _ => None,
        };
        Reader { prefix, map, defaults, used: BTreeSet::new(), base: self.base, credentials: self.credentials, from_env: self.from_env }
    }

    /// An array of tables (`[[k]]`), each as its own reader (`k[0]`, `k[1]`, …); absent means none.
    pub fn tables(&mut self, k: &'static str, errs: &mut Problems) -> Vec<Reader<'a>> {
        let prefix = self.key(k);
        match self.raw(k) {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| match v {
                    Value::Object(m) => Some(Reader {
                        prefix: format!("{prefix}[{i}]"),
                        map: Some(m),
                        defaults: None,
                        used: BTreeSet::new(),
                        base: self.base,
                        credentials: self.credentials,
                        from_env: self.from_env,
                    }),
                    other => {
                        errs.push(Problem { key: format!("{prefix}[{i}]"), message: format!("expected a table, found {}", kind(other)) });
                        None
                    }
                })
                .collect(),
            Some(other) => {
                errs.push(Problem { key: prefix, message: format!("expected [[{k}]] tables, found {}", kind(other)) });
                Vec::new()
            }
        }
    }

    pub fn string(&mut self, k: &'static str, errs: &mut Problems) -> Option<String> {
        match self.raw(k)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            other => {
                self.problem(errs, k, format!("expected a string, found {}", kind(other)));
                None
            }
        }
    }

    pub fn required_string(&mut self, k: &'static str, errs: &mut Problems) -> Option<String> {
        let v = self.string(k, errs);
        if v.as_deref().is_none_or(|s| s.trim().is_empty()) && !errs.iter().any(|e| e.key == self.key(k)) {
            self.problem(errs, k, "is required");
            return None;
        }
        v
    }

    pub fn u64(&mut self, k: &'static str, errs: &mut Problems) -> Option<u64> {
        match self.raw(k)? {
            Value::Number(n) if n.as_u64().is_some() => n.as_u64(),
            Value::String(s) if s.trim().parse::<u64>().is_ok() => s.trim().parse().ok(),
            other => {
                self.problem(errs, k, format!("expected a non-negative integer, found {}", show(other)));
                None
            }
        }
    }

    pub fn bool(&mut self, k: &'static str, errs: &mut Problems) -> Option<bool> {
        match self.raw(k)? {
            Value::Bool(b) => Some(*b),
            // From the environment every value is a string.
            Value::String(s) if s == "true" || s == "false" => Some(s == "true"),
            other => {
                self.problem(errs, k, format!("expected true or false, found {}", show(other)));
                None
            }
        }
    }

    /// A duration like "30s" within `range` (every duration key has one:
    /// "0s" timeouts and 10^18-second waits are mistakes, not settings).
    pub fn duration(&mut self, k: &'static str, range: std::ops::RangeInclusive<Duration>, errs: &mut Problems) -> Option<Duration> {
        let s = self.string(k, errs)?;
        match humantime::parse_duration(s.trim()) {
            Ok(d) if range.contains(&d) => Some(d),
            Ok(_) => {
                let (lo, hi) = (plain(*range.start()), plain(*range.end()));
                self.problem(errs, k, format!("{s:?} is out of range {lo}..={hi}"));
                None
            }
            Err(e) => {
                self.problem(errs, k, format!("{s:?} is not a duration like \"30s\" or \"5m\" ({e})"));
                None
            }
        }
    }

    /// A non-negative integer within `range`.
    pub fn u64_in(&mut self, k: &'static str, range: std::ops::RangeInclusive<u64>, errs: &mut Problems) -> Option<u64> {
        let v = self.u64(k, errs)?;
        if range.contains(&v) {
            return Some(v);
        }
        self.problem(errs, k, format!("{v} is out of range {}..={}", range.start(), range.end()));
        None
    }

    /// A required URL with one of `schemes` and a host. Credentials inside
    /// it are refused (`use_instead` says where they go): transport errors
    /// print the URL, and those reach logs, the mirror and `status`.
    /// `shape` is the message for a URL of the wrong kind.
    pub fn url(&mut self, k: &'static str, schemes: &[&str], shape: &str, use_instead: &str, errs: &mut Problems) -> Option<url::Url> {
        let u = self.required_string(k, errs)?;
        match url::Url::parse(&u) {
            Ok(url) if !url.username().is_empty() || url.password().is_some() => {
                self.problem(errs, k, format!("must not contain credentials: use {use_instead}"));
                None
            }
            Ok(url) if schemes.contains(&url.scheme()) && url.host().is_some() => Some(url),
            Ok(_) => {
                self.problem(errs, k, format!("{u:?} {shape}"));
                None
            }
            Err(e) => {
                self.problem(errs, k, format!("{u:?} is not a URL ({e})"));
                None
            }
        }
    }

    pub fn path(&mut self, k: &'static str, errs: &mut Problems) -> Option<PathBuf> {
        self.string(k, errs).map(|s| lexical(&self.base.join(s)))
    }

    pub fn strings(&mut self, k: &'static str, errs: &mut Problems) -> Option<Vec<String>> {
        match self.raw(k)? {
            Value::Array(items) => {
                let mut out = Vec::new();
                for (i, it) in items.iter().enumerate() {
                    match it {
                        Value::String(s) => out.push(s.clone()),
                        other => errs.push(Problem {
                            key: format!("{}[{i}]", self.key(k)),
                            message: format!("expected a string, found {}", kind(other)),
                        }),
                    }
                }
                Some(out)
            }
            // From the environment: a comma-separated list.
            Value::String(s) if self.from_env.is_some_and(|keys| keys.contains(&self.key(k))) => {
                Some(s.split(',').map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect())
            }
            // In the file, a list is a list: `protected = "admin"` is a mistake, not one name.
            Value::String(s) => {
                self.problem(errs, k, format!("expected a list of strings, found a string (write [{s:?}])"));
                None
            }
            other => {
                self.problem(errs, k, format!("expected a list of strings, found {}", kind(other)));
                None
            }
        }
    }

    /// A list of integer ids (`[1, 2]`, `["1"]`, or `1,2` from the environment).
    pub fn integers(&mut self, k: &'static str, errs: &mut Problems) -> Option<Vec<i64>> {
        let items: Vec<Value> = match self.raw(k)? {
            Value::Array(items) => items.clone(),
            Value::String(s) => s.split(',').map(|p| Value::String(p.trim().to_owned())).filter(|p| p != "").collect(),
            other => {
                self.problem(errs, k, format!("expected a list of integers, found {}", kind(other)));
                return None;
            }
        };
        let mut out = Vec::new();
        for (i, it) in items.iter().enumerate() {
            match it.as_i64().or_else(|| it.as_str().and_then(|s| s.trim().parse().ok())) {
                Some(n) => out.push(n),
                None => errs.push(Problem { key: format!("{}[{i}]", self.key(k)), message: format!("expected an integer id, found {it}") }),
            }
        }
        Some(out)
    }

    /// A value that must be one of a fixed set.
    pub fn one_of<T: std::str::FromStr>(&mut self, k: &'static str, allowed: &[&str], errs: &mut Problems) -> Option<T> {
        let s = self.string(k, errs)?;
        match s.parse() {
            Ok(v) if allowed.contains(&s.as_str()) => Some(v),
            _ => {
                self.problem(errs, k, format!("{s:?} is not one of {}", allowed.join(", ")));
                None
            }
        }
    }

    /// A secret given inline as `k` or in a file as `k_file` (trailing newline trimmed).
    pub fn secret(&mut self, k: &'static str, k_file: &'static str, errs: &mut Problems) -> Option<Secret> {
        let inline = self.string(k, errs);
        // systemd hands credentials over in $CREDENTIALS_DIRECTORY: a
        // relative *_file names one there when it is set.
        let file = self.string(k_file, errs).map(|f| match self.credentials {
            Some(dir) if Path::new(&f).is_relative() => dir.join(f),
            _ => lexical(&self.base.join(f)),
        });
        match (inline, file) {
            (Some(_), Some(_)) => {
                self.problem(errs, k, format!("set either {} or {}, not both", self.key(k), self.key(k_file)));
                None
            }
            (Some(v), None) => self.checked_secret(k, v, errs),
            (None, Some(p)) => match std::fs::read_to_string(&p) {
                Ok(s) => self.checked_secret(k_file, s.trim_end_matches(['\r', '\n']).to_owned(), errs),
                Err(e) => {
                    self.problem(errs, k_file, format!("cannot read {}: {e}", p.display()));
                    None
                }
            },
            (None, None) => None,
        }
    }

    /// A secret must be a single non-empty line (it goes into HTTP headers
    /// and query strings); the problem never shows the value.
    fn checked_secret(&self, k: &str, v: String, errs: &mut Problems) -> Option<Secret> {
        if v.trim().is_empty() {
            self.problem(errs, k, "is empty");
            return None;
        }
        if v.chars().any(char::is_control) {
            self.problem(errs, k, "contains a line break or another control character (only a trailing newline is trimmed)");
            return None;
        }
        Some(Secret::new(v))
    }

    /// Report every key in this table that was never asked for.
    pub fn finish(self, errs: &mut Problems) {
        if let Some(m) = self.map {
            for k in m.keys() {
                if !self.used.contains(k.as_str()) {
                    let known: Vec<&str> = self.used.iter().copied().collect();
                    errs.push(Problem { key: self.key(k), message: format!("unknown key (known keys here: {})", known.join(", ")) });
                }
            }
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => kind(other).to_owned(),
    }
}

/// A duration as the docs write it: days, hours, minutes, seconds
/// (`31d`, `1h 30m`; never humantime's 30.44-day months).
pub fn plain(d: Duration) -> String {
    let mut left = d.as_secs();
    let mut parts = Vec::new();
    for (unit, secs) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if left >= secs {
            parts.push(format!("{}{unit}", left / secs));
            left %= secs;
        }
    }
    if parts.is_empty() {
        return format!("{}ms", d.as_millis());
    }
    parts.join(" ")
}

/// `path` with `.` dropped and each `..` taking away the name before it
/// (`config/../example-state` -> `example-state`), as errors and logs
/// should show it. Lexical only: a `..` with no name before it stays.
pub fn lexical(path: &std::path::Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.components().next_back(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() { PathBuf::from(".") } else { out }
}
