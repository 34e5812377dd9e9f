//! `[source] kind = "feishu"`: its keys, their defaults and their validation.

use crate::config::Secret;
use crate::config::reader::{Problems, Reader};
use crate::sources::SourceConfig;
use crate::sources::saas::{HttpSettings, config};

pub const FEISHU_BASE: &str = "https://open.feishu.cn";
pub const LARK_BASE: &str = "https://open.larksuite.com";

/// `kind = "feishu" | "lark"`.
#[derive(Clone, Debug)]
pub struct FeishuConfig {
    /// "Feishu" or "Lark", for messages.
    pub vendor: &'static str,
    pub app_id: String,
    pub app_secret: Secret,
    pub http: HttpSettings,
    /// Department ids whose subtrees are read; `"0"` is the whole tenant.
    pub roots: Vec<String>,
    /// `open_department_id` (default) or `department_id`.
    pub department_id_type: String,
    /// `union_id` (default), `open_id` or `user_id`.
    pub user_id_type: String,
    pub concurrency: usize,
    /// `[source.events]`: the HTTP callback's Verification Token and, when
    /// the app sets one, its Encrypt Key (Events and Callbacks → Encryption).
    pub events: Option<Events>,
}

/// `[source.events]` of a `feishu` or `lark` source.
#[derive(Clone, Debug)]
pub struct Events {
    /// `delivery = "long_connection"` (the default without a
    /// `verification_token`): the connection the service opens, as the
    /// official SDKs do; else `"http"`, the callback.
    pub long_connection: bool,
    /// `verification_token` / `verification_token_file` (the callback's).
    pub verification_token: Option<Secret>,
    /// `encrypt_key` / `encrypt_key_file`: bodies must then be encrypted and signed.
    pub encrypt_key: Option<Secret>,
    /// `window`: events this close together make one run.
    pub window: std::time::Duration,
}

impl FeishuConfig {
    /// The source kind: `lark` for Lark, else `feishu`.
    pub fn kind(&self) -> &'static str {
        if self.vendor == "Lark" { "lark" } else { "feishu" }
    }
}

pub fn parse(s: &mut Reader<'_>, vendor: &'static str, default_base: &str, errs: &mut Problems) -> Option<SourceConfig> {
    let http = config::http_settings(s, default_base, 20, 50, errs);
    let concurrency = config::concurrency(s, errs);
    let department_id_type = s
        .one_of::<String>("department_id_type", &["open_department_id", "department_id"], errs)
        .unwrap_or_else(|| "open_department_id".into());
    let user_id_type = s.one_of::<String>("user_id_type", &["union_id", "open_id", "user_id"], errs).unwrap_or_else(|| "union_id".into());
    let roots = s.strings("roots", errs).unwrap_or_else(|| vec!["0".into()]);
    if roots.is_empty() {
        s.problem(errs, "roots", "is empty: list department ids, or leave it out for the whole tenant (\"0\")");
    }
    let app_id = s.required_string("app_id", errs);
    let app_secret = config::required_secret(s, "app_secret", "app_secret_file", errs);
    let events = if s.has("events") {
        let mut e = s.table("events", errs);
        let keyed = e.has("verification_token") || e.has("verification_token_file");
        let long_connection = e.one_of::<String>("delivery", &["long_connection", "http"], errs).map_or(!keyed, |d| d == "long_connection");
        let window = config::event_window(&mut e, errs);
        let events = if long_connection {
            for k in ["verification_token", "encrypt_key"] {
                if e.has(k) || e.has(&format!("{k}_file")) {
                    e.problem(errs, k, "is for delivery = \"http\"; the long connection uses the app's credentials");
                }
            }
            Some(Events { long_connection, verification_token: None, encrypt_key: None, window })
        } else {
            let verification_token = config::required_secret(&mut e, "verification_token", "verification_token_file", errs);
            let encrypt_key = e.secret("encrypt_key", "encrypt_key_file", errs);
            verification_token.map(|t| Events { long_connection, verification_token: Some(t), encrypt_key, window })
        };
        e.finish(errs);
        events
    } else {
        None
    };
    Some(SourceConfig::Feishu(Box::new(FeishuConfig {
        vendor,
        app_id: app_id?,
        app_secret: app_secret?,
        http,
        roots,
        department_id_type,
        user_id_type,
        concurrency,
        events,
    })))
}
