//! orgsync's configuration: the generic loading and validation of
//! [`crate::config`] with this product's components — the sources of
//! [`crate::source`] and the targets of [`crate::target`]. `config` knows no
//! component; this module is where they meet (docs/design.md, "Layout").

use crate::config::{ConfigError, Problem};
use crate::source::SourceConfig;
use crate::target::TargetConfig;
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

#[cfg(test)]
mod tests;
