//! `[[notify]]`: where a run's failures, recoveries and held-back deletions
//! are announced (docs in README, "Notifications").

use super::Secret;
use super::reader::{Problems, Reader};
use std::time::Duration;

/// `notify.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifyKind {
    /// A generic JSON POST.
    Webhook,
    /// A Feishu (or Lark) custom bot; `secret` signs.
    Feishu,
    /// A DingTalk robot; `secret` signs.
    DingTalk,
    /// A WeCom group robot (its URL carries the `key`).
    WeCom,
}

impl NotifyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyKind::Webhook => "webhook",
            NotifyKind::Feishu => "feishu",
            NotifyKind::DingTalk => "dingtalk",
            NotifyKind::WeCom => "wecom",
        }
    }
}

impl std::str::FromStr for NotifyKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "webhook" => Ok(NotifyKind::Webhook),
            "feishu" => Ok(NotifyKind::Feishu),
            "dingtalk" => Ok(NotifyKind::DingTalk),
            "wecom" => Ok(NotifyKind::WeCom),
            _ => Err(()),
        }
    }
}

/// What a run can be worth announcing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Condition {
    Failed,
    Partial,
    /// A run succeeded after one announced as failed, partial or held back.
    Recovered,
    /// Deletions held back by the guard, waiting for approval.
    HeldBack,
}

impl Condition {
    pub const ALLOWED: &'static [&'static str] = &["failed", "partial", "recovered", "held_back"];

    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Failed => "failed",
            Condition::Partial => "partial",
            Condition::Recovered => "recovered",
            Condition::HeldBack => "held_back",
        }
    }

    pub fn parse(s: &str) -> Option<Condition> {
        [Condition::Failed, Condition::Partial, Condition::Recovered, Condition::HeldBack].into_iter().find(|c| c.as_str() == s)
    }
}

/// `notify.language`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Language {
    #[default]
    En,
    Zh,
}

/// One `[[notify]]` channel.
#[derive(Clone, Debug)]
pub struct NotifyConfig {
    pub kind: NotifyKind,
    /// `url` / `url_file`: the webhook URL, a secret (it grants posting).
    pub url: Secret,
    /// `secret` / `secret_file`: the signing secret (Feishu, DingTalk).
    pub secret: Option<Secret>,
    /// `on`: the conditions announced. Default failed, recovered, held_back.
    pub on: Vec<Condition>,
    /// `min_interval`: the same condition is not announced again within it. Default 1h.
    pub min_interval: Duration,
    /// `timeout`: per request, and the most a one-shot `sync` waits for it. Default 10s.
    pub timeout: Duration,
    pub language: Language,
}

/// Every `[[notify]]` table.
pub fn parse(root: &mut Reader<'_>, errs: &mut Problems) -> Vec<NotifyConfig> {
    let mut out = Vec::new();
    for mut n in root.tables("notify", errs) {
        let kind = n.one_of::<NotifyKind>("kind", &["webhook", "feishu", "dingtalk", "wecom"], errs);
        if kind.is_none() && !n.has("kind") {
            n.problem(errs, "kind", "is required (one of webhook, feishu, dingtalk, wecom)");
        }
        let url = n.secret("url", "url_file", errs);
        match &url {
            None if !errs.iter().any(|e| e.key.starts_with(&n.key("url"))) => n.problem(errs, "url", "is required (or url_file)"),
            // Never echo the URL: it is a secret.
            Some(u) if !matches!(url::Url::parse(u.expose()).map(|u| u.scheme().to_owned()).as_deref(), Ok("https" | "http")) => {
                n.problem(errs, "url", "must be an http(s):// URL (not shown: it is a secret)")
            }
            _ => {}
        }
        let secret = n.secret("secret", "secret_file", errs);
        if secret.is_some() && matches!(kind, Some(NotifyKind::Webhook | NotifyKind::WeCom)) {
            n.problem(errs, "secret", "signs only feishu and dingtalk messages");
        }
        let on = match n.strings("on", errs) {
            None => vec![Condition::Failed, Condition::Recovered, Condition::HeldBack],
            Some(list) => list
                .iter()
                .filter_map(|c| {
                    let parsed = Condition::parse(c);
                    if parsed.is_none() {
                        n.problem(errs, "on", format!("{c:?} is not one of {}", Condition::ALLOWED.join(", ")));
                    }
                    parsed
                })
                .collect(),
        };
        let min_interval =
            n.duration("min_interval", Duration::ZERO..=Duration::from_secs(30 * 86_400), errs).unwrap_or(Duration::from_secs(3600));
        let timeout = n.duration("timeout", super::TIMEOUTS, errs).unwrap_or(Duration::from_secs(10));
        let language = match n.one_of::<String>("language", &["en", "zh"], errs).as_deref() {
            Some("zh") => Language::Zh,
            _ => Language::En,
        };
        n.finish(errs);
        if let (Some(kind), Some(url)) = (kind, url) {
            out.push(NotifyConfig { kind, url, secret, on, min_interval, timeout, language });
        }
    }
    out
}
