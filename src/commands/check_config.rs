//! `orgsync check-config`: the config and the files it names, every problem at once.

use super::{EXIT_CONFIG, ExitCode, Result};
use orgsync::config::ConfigError;
use orgsync::settings;
use std::path::Path;

pub fn exec(path: &Path, cfg: &settings::Config) -> Result<ExitCode> {
    let problems = settings::preflight(cfg);
    if !problems.is_empty() {
        esay!("error: {}", orgsync::redact::redact(&ConfigError::Invalid { path: path.to_owned(), problems }.to_string()));
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    say!("{}: ok (source {}, state_dir {})", path.display(), cfg.source.kind(), cfg.state_dir.display());
    Ok(ExitCode::SUCCESS)
}
