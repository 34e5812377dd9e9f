//! The keys every SaaS source shares, read the same way for each vendor.

use super::HttpSettings;
use crate::config::Secret;
use crate::config::reader::{Problems, Reader};
use std::time::Duration;

/// The HTTP keys every SaaS source shares: `base_url`, `timeout`,
/// `rate_limit` (requests per second, at most `max_rate`), `max_retries`.
pub fn http_settings(s: &mut Reader<'_>, default_base: &str, default_rate: u32, max_rate: u32, errs: &mut Problems) -> HttpSettings {
    let base_url = if s.has("base_url") {
        s.url("base_url", &["https", "http"], "must be http(s)://host[:port]", "the source's secret keys", errs).map(|u| u.to_string())
    } else {
        None
    };
    let rate = s.u64("rate_limit", errs).unwrap_or(u64::from(default_rate));
    if !(1..=u64::from(max_rate)).contains(&rate) {
        s.problem(errs, "rate_limit", format!("{rate} is out of range 1..={max_rate} requests per second (the vendor's documented limit)"));
    }
    HttpSettings {
        base_url: base_url.unwrap_or_else(|| default_base.to_owned()),
        timeout: s.duration("timeout", crate::config::TIMEOUTS, errs).unwrap_or(Duration::from_secs(30)),
        rate_limit: rate.clamp(1, u64::from(max_rate)) as u32,
        max_retries: s.u64_in("max_retries", crate::config::RETRIES, errs).unwrap_or(5) as usize,
        token_margin: Duration::from_secs(300),
    }
}

/// `concurrency`: departments read at once (default 4, at most 32).
pub fn concurrency(s: &mut Reader<'_>, errs: &mut Problems) -> usize {
    let concurrency = s.u64("concurrency", errs).unwrap_or(4);
    if !(1..=32).contains(&concurrency) {
        s.problem(errs, "concurrency", format!("{concurrency} is out of range 1..=32"));
    }
    concurrency.clamp(1, 32) as usize
}

/// A secret that must be given inline as `k` or in the file `k_file`.
pub fn required_secret(s: &mut Reader<'_>, k: &'static str, k_file: &'static str, errs: &mut Problems) -> Option<Secret> {
    let secret = s.secret(k, k_file, errs);
    if secret.is_none() && !errs.iter().any(|e| e.key.starts_with(&s.key(k))) {
        s.problem(errs, k, format!("is required (or {k_file})"));
    }
    secret
}

/// Department ids to read from (`roots`, default `[1]`, the whole organisation).
pub fn integer_roots(s: &mut Reader<'_>, errs: &mut Problems) -> Vec<i64> {
    let roots = s.integers("roots", errs).unwrap_or_else(|| vec![1]);
    if roots.is_empty() {
        s.problem(errs, "roots", "is empty: list department ids, or leave it out for the whole organisation (1)");
    }
    roots
}

/// `[source.events]` of a source whose callbacks use the shared message
/// crypto ([`crate::sources::saas::callback`]): a token and a 43-character
/// AES key (`key` / `key_file`), the key checked here.
#[derive(Clone, Debug)]
pub struct CallbackKeys {
    pub token: Secret,
    pub aes_key: Secret,
    /// `window`: events this close together make one run.
    pub window: Duration,
}

/// `[source.events] window`: how long the first event of a run waits for
/// others (default 1 s, at most 5 minutes).
pub fn event_window(e: &mut Reader<'_>, errs: &mut Problems) -> Duration {
    e.duration("window", Duration::ZERO..=Duration::from_secs(300), errs).unwrap_or(Duration::from_secs(1))
}

/// `[source.events]`, when there is one: `token` / `token_file` and the key.
pub fn callback_keys(s: &mut Reader<'_>, key: &'static str, key_file: &'static str, errs: &mut Problems) -> Option<CallbackKeys> {
    if !s.has("events") {
        return None;
    }
    let mut e = s.table("events", errs);
    let keys = callback_keys_in(&mut e, key, key_file, errs);
    e.finish(errs);
    keys
}

/// The callback's keys in an open `[source.events]` table.
pub fn callback_keys_in(e: &mut Reader<'_>, key: &'static str, key_file: &'static str, errs: &mut Problems) -> Option<CallbackKeys> {
    let token = required_secret(e, "token", "token_file", errs);
    let aes_key = required_secret(e, key, key_file, errs);
    let window = event_window(e, errs);
    if let Some(k) = &aes_key
        && let Err(why) = super::callback::Callback::new(Secret::new(""), k.expose(), "")
    {
        e.problem(errs, key, why);
    }
    token.zip(aes_key).map(|(token, aes_key)| CallbackKeys { token, aes_key, window })
}

/// `[scope] include_departments` as integer department ids (DingTalk,
/// WeCom), to read only their subtrees; ids that are not all numbers leave
/// the fetch whole (none).
pub fn integer_include(include: &[String]) -> Vec<i64> {
    let ids: Vec<i64> = include.iter().filter_map(|i| i.trim().parse().ok()).collect();
    if ids.len() == include.len() { ids } else { Vec::new() }
}

/// The departments whose subtrees are read, and whether they are the
/// included departments (real departments) rather than the configured
/// roots (containers; `[1]` is the whole organisation).
pub fn read_roots<'a>(roots: &'a [i64], include: &'a [i64]) -> (&'a [i64], bool) {
    if !include.is_empty() && roots == [1] { (include, true) } else { (roots, false) }
}
