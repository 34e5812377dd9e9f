//! `[target]`: `kind` picks the target; each kind reads its own keys.

use crate::config::reader::{Problems, Reader};
use std::path::PathBuf;

pub const TARGET_KINDS: &[&str] = &["scim", "ldap", "rest", "file"];

/// `[target]`: `kind` selects the target.
#[derive(Clone, Debug)]
pub enum TargetConfig {
    Scim(Box<super::scim::ScimConfig>),
    Ldap(Box<super::ldap::LdapTargetConfig>),
    Rest(Box<super::rest::RestConfig>),
    /// `kind = "file"`: the target directory as one JSON document.
    File {
        /// `path`: the JSON file written after each run (required).
        path: PathBuf,
    },
}

impl TargetConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            TargetConfig::Scim(_) => "scim",
            TargetConfig::Ldap(_) => "ldap",
            TargetConfig::Rest(_) => "rest",
            TargetConfig::File { .. } => "file",
        }
    }

    /// Operations in flight at once.
    pub fn concurrency(&self) -> usize {
        match self {
            TargetConfig::Scim(c) => c.concurrency,
            TargetConfig::Ldap(c) => c.concurrency,
            TargetConfig::Rest(c) => c.concurrency,
            TargetConfig::File { .. } => 1,
        }
    }

    /// Operations in a row that could not reach the target before the run
    /// gives up on it (`unreachable_after`); none for a file.
    pub fn unreachable_after(&self) -> Option<usize> {
        match self {
            TargetConfig::Scim(c) => Some(c.unreachable_after),
            TargetConfig::Ldap(c) => Some(c.unreachable_after),
            TargetConfig::Rest(c) => Some(c.unreachable_after),
            TargetConfig::File { .. } => None,
        }
    }
}

impl crate::config::Section for TargetConfig {
    fn parse(r: &mut Reader<'_>, errs: &mut Problems) -> Option<Self> {
        parse(r, errs)
    }
}

/// The `[target]` table, by its `kind`.
pub fn parse(t: &mut Reader<'_>, errs: &mut Problems) -> Option<TargetConfig> {
    match t.one_of::<String>("kind", TARGET_KINDS, errs).as_deref() {
        Some("file") => super::file::config::parse(t, errs),
        Some("scim") => super::scim::parse(t, errs),
        Some("ldap") => super::ldap::parse(t, errs),
        Some("rest") => super::rest::parse(t, errs),
        None if !t.has("kind") => {
            t.problem(errs, "kind", format!("is required (one of {})", TARGET_KINDS.join(", ")));
            None
        }
        _ => None,
    }
}
