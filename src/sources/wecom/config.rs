//! `[source] kind = "wecom"`: its keys, their defaults and their validation.

use crate::config::Secret;
use crate::config::reader::{Problems, Reader};
use crate::sources::SourceConfig;
use crate::sources::saas::{HttpSettings, config};

pub const WECOM_BASE: &str = "https://qyapi.weixin.qq.com";

/// `source.api`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    Simplelist,
    List,
}

impl std::str::FromStr for Api {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "simplelist" => Ok(Api::Simplelist),
            "list" => Ok(Api::List),
            _ => Err(()),
        }
    }
}

/// `kind = "wecom"`.
#[derive(Clone, Debug)]
pub struct WeComConfig {
    /// `corp_id`: the company id (My Company → Company Information).
    pub corp_id: String,
    /// `corp_secret` / `corp_secret_file`: the Contact Sync secret.
    pub corp_secret: Secret,
    pub http: HttpSettings,
    pub api: Api,
    /// Department ids whose subtrees are read; `1` is the whole company.
    pub roots: Vec<i64>,
    /// `page_size`: rows per `user/list_id` page (1..=10000, default 10000).
    pub page_size: u32,
    pub concurrency: usize,
    /// `[source.events]`: the contact-change callback's `token` and
    /// `encoding_aes_key` (Contact Sync → Receive event server).
    pub events: Option<config::CallbackKeys>,
}

pub fn parse(s: &mut Reader<'_>, errs: &mut Problems) -> Option<SourceConfig> {
    use {Api, WECOM_BASE, WeComConfig};
    // WeCom allows 10,000 calls a minute per API (about 166/s); stay far under.
    let http = config::http_settings(s, WECOM_BASE, 50, 150, errs);
    let concurrency = config::concurrency(s, errs);
    let roots = config::integer_roots(s, errs);
    let api = s.one_of::<Api>("api", &["simplelist", "list"], errs).unwrap_or(Api::Simplelist);
    let page_size = s.u64("page_size", errs).unwrap_or(10_000);
    if !(1..=10_000).contains(&page_size) {
        s.problem(errs, "page_size", format!("{page_size} is out of range 1..=10000 (user/list_id's limit)"));
    }
    let corp_id = s.required_string("corp_id", errs);
    let corp_secret = config::required_secret(s, "corp_secret", "corp_secret_file", errs);
    let events = config::callback_keys(s, "encoding_aes_key", "encoding_aes_key_file", errs);
    Some(SourceConfig::WeCom(Box::new(WeComConfig {
        corp_id: corp_id?,
        corp_secret: corp_secret?,
        http,
        api,
        roots,
        page_size: page_size.clamp(1, 10_000) as u32,
        concurrency,
        events,
    })))
}
