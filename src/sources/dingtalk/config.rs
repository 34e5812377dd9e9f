//! `[source] kind = "dingtalk"`: its keys, their defaults and their validation.

use crate::config::Secret;
use crate::config::reader::{Problems, Reader};
use crate::sources::SourceConfig;
use crate::sources::saas::{HttpSettings, config};

pub const DINGTALK_BASE: &str = "https://oapi.dingtalk.com";

/// `kind = "dingtalk"`.
#[derive(Clone, Debug)]
pub struct DingTalkConfig {
    /// `app_key` (AppKey, also called Client ID).
    pub app_key: String,
    /// `app_secret` / `app_secret_file`.
    pub app_secret: Secret,
    /// `agent_id`: kept for reference (the contact APIs do not need it).
    pub agent_id: Option<String>,
    pub http: HttpSettings,
    /// Department ids whose subtrees are read; `1` is the whole organisation.
    pub roots: Vec<i64>,
    /// `userid` (default) or `unionid`.
    pub user_id_type: String,
    pub concurrency: usize,
    /// `[source.events]`: the event subscription's `token` and `aes_key`
    /// (the app's Event Subscription page, HTTP push).
    pub events: Option<config::CallbackKeys>,
}

pub fn parse(s: &mut Reader<'_>, errs: &mut Problems) -> Option<SourceConfig> {
    // DingTalk documents 20 requests per second for internal apps.
    let http = config::http_settings(s, DINGTALK_BASE, 15, 20, errs);
    let concurrency = config::concurrency(s, errs);
    let roots = config::integer_roots(s, errs);
    let user_id_type = s.one_of::<String>("user_id_type", &["userid", "unionid"], errs).unwrap_or_else(|| "userid".into());
    let agent_id = s.string("agent_id", errs);
    let app_key = s.required_string("app_key", errs);
    let app_secret = config::required_secret(s, "app_secret", "app_secret_file", errs);
    let events = config::callback_keys(s, "aes_key", "aes_key_file", errs);
    Some(SourceConfig::DingTalk(Box::new(DingTalkConfig {
        app_key: app_key?,
        app_secret: app_secret?,
        agent_id,
        http,
        roots,
        user_id_type,
        concurrency,
        events,
    })))
}
