//! Identity sources. Each kind lives in its own folder and implements
//! [`IdentitySource`]: fetch the whole in-scope directory, all pages or
//! nothing (a failed fetch fails the run before anything is applied).

pub mod dingtalk;
pub mod feishu;
pub mod file;
pub mod http;
pub mod ldap;
pub mod wecom;

use crate::config::SourceConfig;
use crate::model::Snapshot;
use futures::future::BoxFuture;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read source file {path}: {source}")]
    Io { path: std::path::PathBuf, #[source] source: std::io::Error },
    #[error("source file {path} is not valid: {message}")]
    Invalid { path: std::path::PathBuf, message: String },
    #[error("LDAP {url}: {message}")]
    Ldap { url: String, message: String },
    /// A SaaS API: the vendor, the endpoint path, the code and message.
    #[error("{vendor} {path}: {message}")]
    Api { vendor: &'static str, path: String, message: String },
}

impl SourceError {
    /// A short, bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            SourceError::Io { .. } => "io",
            SourceError::Invalid { .. } => "invalid",
            SourceError::Ldap { .. } => "ldap",
            SourceError::Api { .. } => "api",
        }
    }
}

pub trait IdentitySource: Send + Sync {
    /// The whole in-scope directory.
    fn fetch(&self) -> BoxFuture<'_, Result<Snapshot, SourceError>>;
}

/// Users listed once per department -> one user per source id, with the
/// department lists merged in listing order (so the first listing's
/// primary department stays first).
pub fn merge_by_id(users: impl IntoIterator<Item = crate::model::User>) -> Vec<crate::model::User> {
    let mut out: Vec<crate::model::User> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for u in users {
        match index.get(&u.source_id.0) {
            Some(&i) => {
                for d in u.department_ids {
                    if !out[i].department_ids.contains(&d) {
                        out[i].department_ids.push(d);
                    }
                }
            }
            None => {
                index.insert(u.source_id.0.clone(), out.len());
                out.push(u);
            }
        }
    }
    out
}

pub fn build(config: &SourceConfig) -> Box<dyn IdentitySource> {
    match config {
        SourceConfig::File { path } => Box::new(file::FileSource::new(path.clone())),
        SourceConfig::Ldap(c) => Box::new(ldap::LdapSource::new(c.as_ref().clone())),
        SourceConfig::Feishu(c) => Box::new(feishu::FeishuSource::new(c.as_ref().clone())),
        SourceConfig::DingTalk(c) => Box::new(dingtalk::DingTalkSource::new(c.as_ref().clone())),
        SourceConfig::WeCom(c) => Box::new(wecom::WeComSource::new(c.as_ref().clone())),
    }
}
