//! `[source] kind = "welink"`: its keys, their defaults and their validation.

use crate::config::Secret;
use crate::config::reader::{Problems, Reader};
use crate::sources::SourceConfig;
use crate::sources::saas::{HttpSettings, config};

pub const WELINK_BASE: &str = "https://open.welink.huaweicloud.com";

/// `kind = "welink"`.
#[derive(Clone, Debug)]
pub struct WeLinkConfig {
    /// `client_id`: the WeLink open platform app's client id.
    pub client_id: String,
    /// `client_secret` / `client_secret_file`.
    pub client_secret: Secret,
    pub http: HttpSettings,
    /// Department codes whose subtrees are read; `"0"` is the whole organisation.
    pub roots: Vec<String>,
    pub concurrency: usize,
    /// `[source.events]`: the event callback.
    pub events: Option<Events>,
}

/// `[source.events]` of a `welink` source.
#[derive(Clone, Debug)]
pub struct Events {
    /// `aes_key` / `aes_key_file`: the callback's AES-GCM key, when not the
    /// client secret.
    pub aes_key: Option<Secret>,
    /// `window`: events this close together make one run.
    pub window: std::time::Duration,
}

pub fn parse(s: &mut Reader<'_>, errs: &mut Problems) -> Option<SourceConfig> {
    // WeLink allows 40 requests/s (and 1,500/min) per client_id per API: stay well under.
    let http = config::http_settings(s, WELINK_BASE, 20, 40, errs);
    let concurrency = config::concurrency(s, errs);
    let roots = s.strings("roots", errs).unwrap_or_else(|| vec!["0".into()]);
    if roots.is_empty() || roots.iter().any(|r| r.trim().is_empty()) {
        s.problem(errs, "roots", "lists an empty department code: list deptCodes, or leave it out for the whole organisation (\"0\")");
    }
    let client_id = s.required_string("client_id", errs);
    let client_secret = config::required_secret(s, "client_secret", "client_secret_file", errs);
    let events = if s.has("events") {
        let mut e = s.table("events", errs);
        let aes_key = e.secret("aes_key", "aes_key_file", errs);
        let window = config::event_window(&mut e, errs);
        match aes_key.as_ref().or(client_secret.as_ref()).map(|k| super::events::Callback::new(k.expose())) {
            Some(Err(why)) if aes_key.is_some() => e.problem(errs, "aes_key", why),
            Some(Err(_)) => {
                e.problem(errs, "aes_key", "is required: the client secret is not 16, 24 or 32 characters, so it cannot be the AES key")
            }
            _ => {}
        }
        e.finish(errs);
        Some(Events { aes_key, window })
    } else {
        None
    };
    Some(SourceConfig::WeLink(Box::new(WeLinkConfig {
        client_id: client_id?,
        client_secret: client_secret?,
        http,
        roots,
        concurrency,
        events,
    })))
}
