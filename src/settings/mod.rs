//! orgsync's configuration: the generic loading and validation of
//! [`crate::config`] with this product's components — the sources of
//! [`crate::sources`] and the targets of [`crate::targets`]. `config` knows no
//! component; this module is where they meet (docs/design.md, "Layout").

use crate::config::{ConfigError, Problem};
use crate::sources::SourceConfig;
use crate::targets::TargetConfig;
use std::path::Path;

/// The whole, validated configuration.
pub type Config = crate::config::Settings<SourceConfig, TargetConfig>;

/// Read and validate the config at `path`, with environment overrides.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    crate::config::load(path)
}

/// Pure validation of a merged tree: every problem at once.
pub fn validate(tree: &serde_json::Map<String, serde_json::Value>, base: &Path) -> Result<Config, Vec<Problem>> {
    crate::config::validate(tree, base)
}

/// What `check-config` checks beyond the text: the input files it names
/// exist (the other commands meet them only when a run reads them).
pub fn preflight(config: &Config) -> Vec<Problem> {
    let mut problems = Vec::new();
    if let SourceConfig::File { path } = &config.source
        && !path.is_file()
    {
        problems.push(Problem { key: "source.path".into(), message: format!("{} is not a readable file", path.display()) });
    }
    problems
}

/// [`preflight`] for a config that did not validate: what it can say from
/// the merged tree alone, so that `check-config` lists every problem at once
/// (a missing secret does not hide a missing source file).
pub fn preflight_tree(path: &Path) -> Vec<Problem> {
    let Ok(tree) = crate::config::load_tree(path, std::env::vars()) else { return Vec::new() };
    let source = tree.get("source").and_then(|s| s.as_object());
    let file = source.filter(|s| s.get("kind").and_then(|k| k.as_str()) == Some("file")).and_then(|s| s.get("path")?.as_str());
    let Some(file) = file else { return Vec::new() };
    let full = path.parent().unwrap_or(Path::new("")).join(file);
    if full.is_file() {
        return Vec::new();
    }
    vec![Problem { key: "source.path".into(), message: format!("{} is not a readable file", full.display()) }]
}

#[cfg(test)]
mod tests;
