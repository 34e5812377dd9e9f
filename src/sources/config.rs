//! `[source]`: `kind` picks the source; each kind reads its own keys.

use crate::config::reader::{Problems, Reader};
use crate::reconcile::MatchKey;
use std::path::PathBuf;

pub const SOURCE_KINDS: &[&str] = &["file", "ldap", "feishu", "lark", "dingtalk", "wecom", "welink", "entra"];

/// `[source]`: `kind` selects the source; the other keys depend on it.
#[derive(Clone, Debug)]
pub enum SourceConfig {
    /// `kind = "file"`: a JSON document of departments and users.
    File {
        /// `path`: the JSON file (required).
        path: PathBuf,
    },
    /// `kind = "ldap"`: OpenLDAP or Active Directory.
    Ldap(Box<super::ldap::LdapConfig>),
    /// `kind = "feishu"` or `"lark"`: contact v3.
    Feishu(Box<super::feishu::FeishuConfig>),
    /// `kind = "dingtalk"`: the oapi contact APIs.
    DingTalk(Box<super::dingtalk::DingTalkConfig>),
    /// `kind = "wecom"`: the contact APIs with the Contact Sync secret.
    WeCom(Box<super::wecom::WeComConfig>),
    /// `kind = "welink"`: Huawei WeLink's contact APIs.
    WeLink(Box<super::welink::WeLinkConfig>),
    /// `kind = "entra"`: Microsoft Entra ID through Microsoft Graph.
    Entra(Box<super::entra::EntraConfig>),
}

impl SourceConfig {
    /// `[source.events] window`, where the source takes events.
    pub fn event_window(&self) -> Option<std::time::Duration> {
        match self {
            SourceConfig::Feishu(c) => c.events.as_ref().map(|e| e.window),
            SourceConfig::DingTalk(c) => c.events.as_ref().map(super::dingtalk::Events::window),
            SourceConfig::WeCom(c) => c.events.as_ref().map(|e| e.window),
            SourceConfig::WeLink(c) => c.events.as_ref().map(|e| e.window),
            _ => None,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::File { .. } => "file",
            SourceConfig::Ldap(_) => "ldap",
            SourceConfig::Feishu(c) => c.kind(),
            SourceConfig::DingTalk(_) => "dingtalk",
            SourceConfig::WeCom(_) => "wecom",
            SourceConfig::WeLink(_) => "welink",
            SourceConfig::Entra(_) => "entra",
        }
    }

    /// The default `policy.users.match_by` for this source. WeCom apps
    /// created since 2022-06-20 receive neither email nor mobile: match on
    /// the userid, which WeCom always returns.
    pub fn default_match_by(&self) -> Vec<MatchKey> {
        match self {
            SourceConfig::WeCom(_) => vec![MatchKey::Username],
            _ => vec![MatchKey::Email],
        }
    }
}

impl crate::config::Section for SourceConfig {
    fn parse(r: &mut Reader<'_>, errs: &mut Problems) -> Option<Self> {
        parse(r, errs)
    }
}

impl crate::config::SourceSection for SourceConfig {
    fn default_match_by(&self) -> Vec<MatchKey> {
        SourceConfig::default_match_by(self)
    }
}

/// The `[source]` table, by its `kind`.
pub fn parse(s: &mut Reader<'_>, errs: &mut Problems) -> Option<SourceConfig> {
    match s.one_of::<String>("kind", SOURCE_KINDS, errs).as_deref() {
        Some("file") => s.path("path", errs).map(|path| SourceConfig::File { path }).or_else(|| {
            s.problem(errs, "path", "is required for source kind \"file\"");
            None
        }),
        Some("ldap") => super::ldap::parse(s, errs),
        Some("feishu") => super::feishu::parse(s, "Feishu", super::feishu::FEISHU_BASE, errs),
        Some("lark") => super::feishu::parse(s, "Lark", super::feishu::LARK_BASE, errs),
        Some("dingtalk") => super::dingtalk::parse(s, errs),
        Some("wecom") => super::wecom::parse(s, errs),
        Some("welink") => super::welink::parse(s, errs),
        Some("entra") => super::entra::parse(s, errs),
        None if !s.has("kind") => {
            s.problem(errs, "kind", format!("is required (one of {})", SOURCE_KINDS.join(", ")));
            None
        }
        _ => None,
    }
}
