//! `[source] kind = "dingtalk"`: its keys, their defaults and their validation.

use crate::config::Secret;
use crate::config::reader::{Problems, Reader};
use crate::sources::SourceConfig;
use crate::sources::saas::{HttpSettings, config};

pub const DINGTALK_BASE: &str = "https://oapi.dingtalk.com";
/// Where Stream mode's connections are opened (`/v1.0/gateway/connections/open`).
pub const DINGTALK_GATEWAY: &str = "https://api.dingtalk.com";

/// `[source.events]` of a `dingtalk` source: how events arrive.
#[derive(Clone, Debug)]
pub enum Events {
    /// Stream mode (`delivery = "stream"`, the default without a `token`):
    /// a WebSocket the service opens with the app's credentials.
    Stream {
        /// `gateway_url`: where the connection is opened.
        gateway: String,
        window: std::time::Duration,
    },
    /// HTTP push (`delivery = "http"`): the subscription's `token` and `aes_key`.
    Http(config::CallbackKeys),
}

impl Events {
    pub fn window(&self) -> std::time::Duration {
        match self {
            Events::Stream { window, .. } => *window,
            Events::Http(k) => k.window,
        }
    }
}

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
    /// `[source.events]`: Stream mode, or HTTP push with the event
    /// subscription's `token` and `aes_key` (the app's Event Subscription page).
    pub events: Option<Events>,
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
    let events = events(s, errs);
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

/// `[source.events]`: `delivery` (`stream`, the default without a `token`,
/// or `http`), `gateway_url` for Stream mode, the keys for HTTP push.
fn events(s: &mut Reader<'_>, errs: &mut Problems) -> Option<Events> {
    if !s.has("events") {
        return None;
    }
    let mut e = s.table("events", errs);
    let keyed = e.has("token") || e.has("token_file");
    let stream = e.one_of::<String>("delivery", &["stream", "http"], errs).map_or(!keyed, |d| d == "stream");
    let events = if stream {
        let gateway = if e.has("gateway_url") {
            e.url("gateway_url", &["https", "http"], "must be http(s)://host[:port]", "the app's credentials", errs).map(|u| u.to_string())
        } else {
            Some(DINGTALK_GATEWAY.to_owned())
        };
        let window = config::event_window(&mut e, errs);
        if keyed {
            e.problem(errs, "token", "is for delivery = \"http\"; Stream mode uses the app's credentials");
        }
        gateway.map(|gateway| Events::Stream { gateway: gateway.trim_end_matches('/').to_owned(), window })
    } else {
        config::callback_keys_in(&mut e, "aes_key", "aes_key_file", errs).map(Events::Http)
    };
    e.finish(errs);
    events
}
